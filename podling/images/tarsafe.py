"""Confined filesystem writes for layer extraction: every write goes through directory fds.

``SafeTree`` owns one directory (the layer being extracted) and creates entries in it by
archive path. Every path is resolved component by component from the tree's root fd with
``O_NOFOLLOW | O_DIRECTORY``: a symlink or a non-directory in a parent position is refused,
so no ``..``, absolute name, symlink or hardlink can redirect a write outside the tree —
whatever earlier entries of the layer created. The last component is never followed either:
files are created with ``O_EXCL | O_NOFOLLOW`` after the old entry is removed, metadata is
set through the fd just created (or ``*at`` calls with ``AT_SYMLINK_NOFOLLOW`` for symlinks,
or an ``O_PATH`` fd for fifos and devices).

Symlink *targets* are stored verbatim (absolute ones too): they are resolved later, inside
the container, never by us.

Contract: the tree directory is private to one extraction (nobody else writes into it while
it runs); entries are applied in archive order; ``finish()`` applies directory modes and
times after all contents, deepest first. Not thread-safe; one tree per thread.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import IO

from podling.images.errors import UnsafeLayer

log = logging.getLogger(__name__)

PATH_MAX = 4096
OPAQUE_XATTR = "trusted.overlay.opaque"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
# Layers may carry these xattr namespaces; overlayfs' own (trusted.overlay.*) never.
_XATTR_PREFIXES = ("user.", "security.", "trusted.", "system.posix_acl_")

Path = tuple[str, ...]


@dataclass(frozen=True)
class Meta:
    """Ownership, permission bits (incl. setuid/setgid/sticky), times and xattrs of an entry."""

    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    mtime_ns: int = 0
    atime_ns: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def normalize(name: str, entry: str) -> Path:
    """Archive name → path components relative to the layer root.

    Leading ``/`` and ``./`` are stripped, ``.`` and empty components dropped, and ``..``
    resolved lexically; a ``..`` that would climb above the root, a NUL, or a name longer
    than PATH_MAX is refused with UnsafeLayer naming ``entry``. ``()`` is the root itself."""
    if "\x00" in name:
        raise UnsafeLayer(f"layer entry {entry!r}: NUL byte in path")
    if len(os.fsencode(name)) > PATH_MAX:
        raise UnsafeLayer(f"layer entry {entry[:80]!r}...: path longer than {PATH_MAX} bytes")
    out: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not out:
                raise UnsafeLayer(f"layer entry {entry!r}: path escapes the layer via '..'")
            out.pop()
            continue
        out.append(comp)
    return tuple(out)


def _show(path: Path) -> str:
    return "/".join(path) or "."


def _unsafe(entry: str, what: str) -> UnsafeLayer:
    return UnsafeLayer(f"layer entry {entry!r}: {what}")


class SafeTree:
    """Creates entries under one root directory without ever following a link out of it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._whiteouts: set[Path] = set()
        self._dir_meta: dict[Path, Meta] = {(): Meta(mode=0o755)}
        self.is_root = os.geteuid() == 0

    def close(self) -> None:
        """Release the root fd. Idempotent."""
        fd, self._root_fd = self._root_fd, -1  # forget it first: never closed twice
        if fd >= 0:
            os.close(fd)

    # -- resolution -----------------------------------------------------------------------

    def open_dir(self, path: Path, entry: str, *, create: bool = True) -> int:
        """An fd of the directory at ``path``, walked with O_NOFOLLOW from the root.

        Missing directories are created (0755, root-owned) when ``create``; a whiteout we
        created in this layer is replaced by an opaque directory; a symlink or any other
        non-directory on the way is refused. The caller closes the fd."""
        fd = os.dup(self._root_fd)
        try:
            for i, comp in enumerate(path):
                parent, fd = fd, self._step(fd, path[: i + 1], entry, create)
                os.close(parent)  # fd is the child already: the except never re-closes parent
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _step(self, fd: int, sub: Path, entry: str, create: bool) -> int:
        comp = sub[-1]
        if comp.startswith(".wh."):
            raise _unsafe(entry, f"whiteout name {_show(sub)!r} used as a directory")
        try:
            return os.open(comp, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise _unsafe(entry, f"{_show(sub)!r} does not exist in this layer") from None
            self._mkdir(fd, comp, opaque=False)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if sub not in self._whiteouts:
                raise _unsafe(entry, f"parent {_show(sub)!r} is {_kind(fd, comp)}") from None
            os.unlink(comp, dir_fd=fd)  # our whiteout gives way to an opaque directory
            self._whiteouts.discard(sub)
            self._mkdir(fd, comp, opaque=True)
        return os.open(comp, _DIR_FLAGS, dir_fd=fd)

    @staticmethod
    def _mkdir(parent_fd: int, name: str, *, opaque: bool) -> None:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            os.fchmod(fd, 0o755)
            if opaque:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)

    def _clear(self, parent_fd: int, path: Path, *, keep_dir: bool) -> os.stat_result | None:
        """Remove what is at ``path`` so a new entry can take its place (tar semantics).

        A directory stays if ``keep_dir``; its stat is returned. Never follows links."""
        name = path[-1]
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return st
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        self._whiteouts.discard(path)
        return None

    # -- entries --------------------------------------------------------------------------

    def make_dir(self, path: Path, meta: Meta, entry: str) -> None:
        """Create (or keep) a directory; mode and times are applied by ``finish()``."""
        if path:
            was_whiteout = path in self._whiteouts
            pfd = self.open_dir(path[:-1], entry)
            try:
                if self._clear(pfd, path, keep_dir=True) is None:
                    self._mkdir(pfd, path[-1], opaque=was_whiteout)
            finally:
                os.close(pfd)
        fd = self.open_dir(path, entry, create=False)
        try:
            self._own(fd, meta)
            self._set_xattrs(fd, meta, entry)
        finally:
            os.close(fd)
        self._dir_meta[path] = meta

    def make_file(self, path: Path, src: IO[bytes], size: int, meta: Meta, entry: str) -> None:
        """Create a regular file from ``size`` bytes of ``src`` (O_EXCL | O_NOFOLLOW)."""
        if not path:
            raise _unsafe(entry, "a regular file cannot replace the layer root")
        pfd = self.open_dir(path[:-1], entry)
        try:
            self._clear(pfd, path, keep_dir=False)
            fd = os.open(path[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        finally:
            os.close(pfd)
        try:
            _copy(src, fd, size, entry)
            self._own(fd, meta)
            self._set_xattrs(fd, meta, entry)
            os.fchmod(fd, meta.mode & 0o7777)  # after chown, which clears setuid/setgid
            os.utime(fd, ns=(meta.atime_ns, meta.mtime_ns))
        finally:
            os.close(fd)

    def make_symlink(self, path: Path, target: str, meta: Meta, entry: str) -> None:
        """Create a symlink with ``target`` stored as-is; its mode bits are meaningless."""
        if not path:
            raise _unsafe(entry, "a symlink cannot replace the layer root")
        if not target or "\x00" in target or len(os.fsencode(target)) > PATH_MAX:
            raise _unsafe(entry, "empty, NUL-containing or overlong symlink target")
        pfd = self.open_dir(path[:-1], entry)
        try:
            self._clear(pfd, path, keep_dir=False)
            os.symlink(target, path[-1], dir_fd=pfd)
            name = path[-1]
            if self.is_root:
                os.chown(name, meta.uid, meta.gid, dir_fd=pfd, follow_symlinks=False)
            self._set_xattrs(f"/proc/self/fd/{pfd}/{name}", meta, entry)
            os.utime(name, ns=(meta.atime_ns, meta.mtime_ns), dir_fd=pfd,
                     follow_symlinks=False)
        finally:
            os.close(pfd)

    def make_hardlink(self, path: Path, target: Path, entry: str) -> None:
        """Link ``path`` to an entry this layer already created (never a directory).

        The target is resolved like any path (no symlinked parents) and its last component
        is not followed: a hardlink to a symlink is a second name of that symlink."""
        if not path or not target:
            raise _unsafe(entry, "hardlink to or from the layer root")
        if path == target:
            return  # a self-link is a no-op
        tfd = self.open_dir(target[:-1], entry, create=False)
        try:
            try:
                st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise _unsafe(entry, f"hardlink target {_show(target)!r} is not in this layer"
                              ) from None
            if stat.S_ISDIR(st.st_mode):
                raise _unsafe(entry, f"hardlink to directory {_show(target)!r}")
            pfd = self.open_dir(path[:-1], entry)
            try:
                self._clear(pfd, path, keep_dir=False)
                os.link(target[-1], path[-1], src_dir_fd=tfd, dst_dir_fd=pfd,
                        follow_symlinks=False)
            finally:
                os.close(pfd)
        finally:
            os.close(tfd)

    def make_node(self, path: Path, kind: int, rdev: int, meta: Meta, entry: str) -> None:
        """Create a fifo (``stat.S_IFIFO``) or a device (``S_IFCHR``/``S_IFBLK``).

        Whether a device is allowed at all is the caller's policy decision."""
        if not path:
            raise _unsafe(entry, "a special file cannot replace the layer root")
        pfd = self.open_dir(path[:-1], entry)
        try:
            self._clear(pfd, path, keep_dir=False)
            os.mknod(path[-1], kind | 0o600, rdev, dir_fd=pfd)
            fd = os.open(path[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)
        try:
            proc = f"/proc/self/fd/{fd}"  # the inode just created, not a path to re-walk
            if self.is_root:
                os.chown(proc, meta.uid, meta.gid)
            self._set_xattrs(proc, meta, entry)
            os.chmod(proc, meta.mode & 0o7777)
            os.utime(proc, ns=(meta.atime_ns, meta.mtime_ns))
        finally:
            os.close(fd)

    def whiteout(self, parent: Path, victim: str, entry: str) -> None:
        """``.wh.<victim>`` → an overlayfs whiteout (char 0/0) named ``victim``.

        OCI whiteouts hide lower layers only: if this layer already has ``victim``, a
        directory becomes opaque (hiding lower contents, keeping its own) and anything else
        stays as it is (a non-directory hides lower entries by itself)."""
        if victim in ("", ".", "..") or "/" in victim:
            raise _unsafe(entry, f"whiteout of {victim!r} is not allowed")
        path = parent + (victim,)
        pfd = self.open_dir(parent, entry)
        try:
            try:
                st = os.stat(victim, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                os.mknod(victim, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
                self._whiteouts.add(path)
                return
            if stat.S_ISDIR(st.st_mode):
                self.opaque(path, entry)
        finally:
            os.close(pfd)

    def opaque(self, path: Path, entry: str) -> None:
        """``<dir>/.wh..wh..opq`` → ``trusted.overlay.opaque=y`` on ``dir``."""
        fd = self.open_dir(path, entry)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Apply directory modes and times, deepest first, after all contents exist.

        Directories that a later entry replaced by something else are skipped."""
        for path in sorted(self._dir_meta, key=len, reverse=True):
            meta = self._dir_meta[path]
            try:
                fd = self.open_dir(path, "<finish>", create=False)
            except (UnsafeLayer, OSError):
                continue
            try:
                os.fchmod(fd, meta.mode & 0o7777)
                os.utime(fd, ns=(meta.atime_ns, meta.mtime_ns))
            finally:
                os.close(fd)

    # -- metadata -------------------------------------------------------------------------

    def _own(self, fd: int, meta: Meta) -> None:
        if self.is_root:
            os.fchown(fd, meta.uid, meta.gid)

    @staticmethod
    def _set_xattrs(target: int | str, meta: Meta, entry: str) -> None:
        follow = isinstance(target, int)
        for key, value in meta.xattrs.items():
            if not key.startswith(_XATTR_PREFIXES) or key.startswith("trusted.overlay."):
                log.warning("layer entry %r: dropping xattr %r", entry, key)
                continue
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EINVAL):
                    raise
                log.warning("layer entry %r: cannot set xattr %r: %s", entry, key, e.strerror)


def _kind(parent_fd: int, name: str) -> str:
    """'a symlink' or 'not a directory', for error messages."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return "not a directory"
    return "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"


def _copy(src: IO[bytes], fd: int, size: int, entry: str) -> None:
    left = size
    while left > 0:
        chunk = src.read(min(left, _COPY_CHUNK))
        if not chunk:
            raise _unsafe(entry, f"truncated: {size - left} of {size} bytes")
        view = memoryview(chunk)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        left -= len(chunk)


def force_rmtree(path: str) -> None:
    """Remove ``path`` completely, even with read-only directories inside. Missing is fine."""
    def onerror(func: object, p: str, exc: object) -> None:
        parent = os.path.dirname(p)
        try:
            os.chmod(parent, 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
                shutil.rmtree(p)
            else:
                os.unlink(p)
        except FileNotFoundError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)
