"""Container root filesystems as overlayfs mounts of image layer directories.

Layout under the snapshotter's ``root``::

    <root>/<key>/upper    the container's writable layer
    <root>/<key>/work     overlayfs work directory (same filesystem as upper)
    <root>/<key>/empty    the only lower dir when an image has no layers
    <root>/<key>/rootfs   the mount point: overlay(lowerdir=L_top:…:L_base, upper, work)

Life cycle of one key::

    (absent) --prepare--> mounted --remove--> (absent)
                             |  ^
          reboot / umount    v  | prepare (same layers: remount, upper kept)
                          unmounted

Contracts:

* ``prepare`` is idempotent: on a mounted key with the same layers it returns the rootfs;
  with different layers it raises :class:`SnapshotError`. A key whose directories survived
  an unmount (reboot) is remounted and keeps its upper layer.
* ``remove`` is idempotent; it unmounts everything at or below ``rootfs`` (deepest first;
  a plain ``umount2`` first, ``MNT_DETACH`` when busy) and deletes ``<root>/<key>`` only when
  nothing is mounted below it any more — never deleting through a live mount.
* All calls block (mount syscalls, directory trees): run them in a thread from async code.
  Mounts go to the calling process's mount namespace; calls need CAP_SYS_ADMIN.
* Paths containing ``,`` ``:`` ``\\`` or control characters cannot be expressed as overlay
  mount options and are rejected, as is mount data longer than :data:`MAX_MOUNT_DATA`
  bytes (the kernel reads at most one page): keep layer directory paths short.
"""

from __future__ import annotations

import errno
import os
import re
import shutil

from podling.images.errors import ImageError
from podling.util.mounts import mount, mount_table, mounts_under, unmount

MAX_MOUNT_DATA = 4000
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_BAD_PATH_CHARS = re.compile(r"[,:\\\x00-\x1f\x7f]")
_MAX_UMOUNT_ROUNDS = 8


class SnapshotError(ImageError):
    """A root filesystem cannot be mounted or removed; ``str()`` says why."""


def _mount_overlay(target: str, data: str) -> None:
    try:
        mount("overlay", target, "overlay", 0, data)
    except OSError as e:
        err = e.errno or 0
        raise SnapshotError(f"mount overlay at {target}: {os.strerror(err)} "
                            f"(errno {errno.errorcode.get(err, err)}; options {data})") from e


def _umount(target: str) -> None:
    """Unmount ``target``: plainly, or lazily (MNT_DETACH) if busy; not mounted is fine."""
    try:
        unmount(target, lazy=False)
    except OSError as e:
        raise SnapshotError(f"umount {target}: {os.strerror(e.errno or 0)}") from e


def _check_path(path: str, what: str) -> None:
    if not os.path.isabs(path):
        raise SnapshotError(f"{what} {path!r} is not an absolute path")
    if _BAD_PATH_CHARS.search(path):
        raise SnapshotError(f"{what} {path!r} contains a character overlayfs options "
                            "cannot carry (',', ':', '\\' or a control character)")


class Snapshotter:
    """Overlayfs root filesystems under ``root`` (created if missing)."""

    def __init__(self, root: str) -> None:
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.root = os.path.realpath(root)
        _check_path(self.root, "snapshot root")

    def _dir(self, key: str) -> str:
        if not KEY_RE.match(key):
            raise SnapshotError(f"invalid snapshot key {key!r}")
        return os.path.join(self.root, key)

    def rootfs(self, key: str) -> str:
        """The mount point of ``key`` (whether or not it is mounted)."""
        return os.path.join(self._dir(key), "rootfs")

    def mount_options(self, key: str, lower_dirs: list[str]) -> str:
        """The overlay mount data for ``key``; ``lower_dirs`` are base layer first."""
        base = self._dir(key)
        lowers = list(reversed(lower_dirs)) or [os.path.join(base, "empty")]
        for d in lowers:
            _check_path(d, "layer directory")
        data = (f"lowerdir={':'.join(lowers)},upperdir={base}/upper,"
                f"workdir={base}/work")
        if len(data.encode()) > MAX_MOUNT_DATA:
            raise SnapshotError(
                f"{len(lowers)} layers give {len(data.encode())} bytes of overlay options, "
                f"more than the kernel's limit of about {MAX_MOUNT_DATA}; "
                "use shorter layer directory paths or fewer layers")
        return data

    def prepare(self, key: str, lower_dirs: list[str]) -> str:
        """Mount the root filesystem for ``key``; returns its path.

        ``lower_dirs``: the image's layer directories, **base first** (the order of the
        image's diff IDs); they are passed to overlayfs top-first. Idempotent (see module).
        """
        data = self.mount_options(key, lower_dirs)
        for d in lower_dirs:
            if not os.path.isdir(d):
                raise SnapshotError(f"layer directory {d} does not exist")
        target = self.rootfs(key)
        current = self._mounted_options(target)
        if current is not None:
            if _lowerdir(current) != _lowerdir(data):
                raise SnapshotError(f"snapshot {key} is mounted with other layers")
            return target
        base = self._dir(key)
        for sub in ("upper", "work", "rootfs", "empty"):
            os.makedirs(os.path.join(base, sub), mode=0o755, exist_ok=True)
        os.chmod(base, 0o711)
        _mount_overlay(target, data)
        return target

    def _mounted_options(self, target: str) -> str | None:
        for mp, fstype, opts in mount_table():
            if mp == target and fstype == "overlay":
                return opts
        return None

    def is_mounted(self, key: str) -> bool:
        """True if ``key``'s rootfs is an overlay mount point now."""
        return self._mounted_options(self.rootfs(key)) is not None

    def remove(self, key: str) -> None:
        """Unmount and delete ``key``'s snapshot (idempotent; the upper layer is lost)."""
        base = self._dir(key)
        if not os.path.lexists(base):
            return
        for _ in range(_MAX_UMOUNT_ROUNDS):
            mounted = mounts_under(base)
            if not mounted:
                break
            for mp in mounted:
                _umount(mp)
        else:
            raise SnapshotError(f"snapshot {key}: mounts remain under {base}")
        if mounts_under(base):
            raise SnapshotError(f"snapshot {key}: mounts remain under {base}")
        shutil.rmtree(base)

    def list(self) -> list[str]:
        """Keys with a directory under ``root``, sorted (mounted or not)."""
        return sorted(name for name in os.listdir(self.root)
                      if KEY_RE.match(name) and os.path.isdir(os.path.join(self.root, name)))


def _lowerdir(options: str) -> str:
    """The ``lowerdir=`` value of overlay mount options (as shown in mountinfo)."""
    for opt in options.split(","):
        if opt.startswith("lowerdir="):
            return opt[len("lowerdir="):]
    return ""
