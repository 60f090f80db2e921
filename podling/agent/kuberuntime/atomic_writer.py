"""Writing a volume's files the kubelet's way (``AtomicWriter``): a reader inside the
container sees either the old set of files or the new one, never a mix.

Layout of a target directory::

    <target>/..2026_12_03_18_40_43.2387461029/     the current files (0755 directories)
    <target>/..data -> ..2026_12_03_18_40_43.2387461029
    <target>/<key> -> ..data/<key>                  one symlink per top-level name

:func:`write_payload` (blocking; run it in a thread):

1. compare the payload with what ``..data`` holds (content and mode of every file, and no
   extra file): equal → nothing is touched, returns False;
2. write every file into a new timestamped directory;
3. add the missing top-level symlinks;
4. point ``..data`` at the new directory atomically (a ``..data_tmp`` symlink renamed over
   it);
5. remove the top-level symlinks of names no longer in the payload, and the old directory.

A crash between steps leaves either the old or the new directory current; the next write
cleans up. Payload paths are relative, without ``..`` components, and do not start with
``..`` (the API validates them; :class:`PayloadError` otherwise). With ``fs_group`` every
file and directory gets that group and the group bits of read-only volume ownership
(kubelet ``SetVolumeOwnership``: files ``| 0440``, directories ``| 02550``).
"""

from __future__ import annotations

import errno
import os
import posixpath
import random
import shutil
import stat
import time
from dataclasses import dataclass
from typing import Callable, Mapping

DATA_DIR = "..data"
DATA_TMP = "..data_tmp"
_FILE_GROUP_BITS = 0o440
_DIR_GROUP_BITS = 0o2550


class PayloadError(Exception):
    """A payload path the writer refuses."""


@dataclass(frozen=True)
class FileProjection:
    """One file of a payload: its bytes and permission bits."""

    data: bytes
    mode: int


def clean_path(path: str) -> str:
    """``path`` normalised; PayloadError for an absolute path, ``..`` or a ``..`` prefix."""
    if not path or path.startswith("/"):
        raise PayloadError(f"invalid path: {path!r} must be relative")
    clean = posixpath.normpath(path)
    if clean == "." or ".." in clean.split("/") or clean.startswith(".."):
        raise PayloadError(f"invalid path: {path!r} must not contain '..'")
    return clean


def write_payload(target: str, payload: Mapping[str, FileProjection], *,
                  fs_group: int | None = None, now: Callable[[], float] = time.time) -> bool:
    """Make ``target`` hold exactly ``payload`` (see the module docstring); True when
    something was written. ``target`` must exist."""
    files = {clean_path(p): _with_group(f, fs_group) for p, f in payload.items()}
    data_link = os.path.join(target, DATA_DIR)
    try:
        old = os.readlink(data_link)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EINVAL):
            raise
        old = ""
    old_dir = os.path.join(target, old) if old else ""
    old_files = _list_files(old_dir) if old_dir and os.path.isdir(old_dir) else {}
    if old and set(old_files) == set(files) and all(
            old_files[p] == files[p].mode and _same_data(os.path.join(old_dir, p), files[p].data)
            for p in files):
        return False
    new = _make_timestamped_dir(target, now())
    _write_files(os.path.join(target, new), files, fs_group)
    new_top = {p.split("/")[0] for p in files}
    for name in sorted(new_top):
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_DIR, name), link)
    tmp = os.path.join(target, DATA_TMP)
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(new, tmp)
    os.rename(tmp, data_link)
    for name in {p.split("/")[0] for p in old_files} - new_top:
        link = os.path.join(target, name)
        if os.path.islink(link):
            os.unlink(link)
    _remove_stale_dirs(target, keep=new)
    return True


def _with_group(projection: FileProjection, fs_group: int | None) -> FileProjection:
    if fs_group is None:
        return projection
    return FileProjection(projection.data, projection.mode | _FILE_GROUP_BITS)


def _list_files(root: str) -> dict[str, int]:
    """Relative path → permission bits of every regular file under ``root``."""
    found: dict[str, int] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[os.path.relpath(full, root)] = stat.S_IMODE(st.st_mode) \
                if stat.S_ISREG(st.st_mode) else -1
    return found


def _same_data(path: str, data: bytes) -> bool:
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


def _make_timestamped_dir(target: str, when: float) -> str:
    prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime(when))
    for _ in range(100):
        name = f"{prefix}{random.randrange(10**9, 2**32)}"
        try:
            os.mkdir(os.path.join(target, name), 0o700)
        except FileExistsError:
            continue
        os.chmod(os.path.join(target, name), 0o755)
        return name
    raise OSError(errno.EEXIST, f"no free timestamped directory name in {target}")


def _write_files(root: str, files: Mapping[str, FileProjection], fs_group: int | None) -> None:
    for path, projection in files.items():
        full = os.path.join(root, path)
        parent = os.path.dirname(full)
        if parent != root and not os.path.isdir(parent):
            os.makedirs(parent, mode=0o755)
        fd = os.open(full, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            _write_all(fd, projection.data)
            if fs_group is not None:
                os.fchown(fd, -1, fs_group)
            os.fchmod(fd, projection.mode)
        finally:
            os.close(fd)
    if fs_group is not None:
        for dirpath, _dirs, _names in os.walk(root):
            os.chown(dirpath, -1, fs_group)
            os.chmod(dirpath, stat.S_IMODE(os.stat(dirpath).st_mode) | _DIR_GROUP_BITS)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _remove_stale_dirs(target: str, *, keep: str) -> None:
    """Remove every timestamped directory but ``keep`` (the old one, and any a crash left)."""
    for name in os.listdir(target):
        if name.startswith("..") and name not in (keep, DATA_DIR, DATA_TMP):
            path = os.path.join(target, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
