"""mount(2), umount2(2) and the mount table: the one home for podling's mount plumbing.

Every function works in the calling process's mount namespace and needs the privileges the
syscall needs (root). Errors are OSError with the errno of the syscall; callers translate
them into their own layer's errors (``raise … from``).

Unmounting is idempotent: a target that is not a mount point (EINVAL) or does not exist
(ENOENT) counts as unmounted.
"""

from __future__ import annotations

import errno
import os
import re

from .libc import libc, os_error

MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_BIND = 0x1000
MNT_DETACH = 2
MOUNTINFO = "/proc/self/mountinfo"
_NOT_MOUNTED = (errno.EINVAL, errno.ENOENT)


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError(errno, "mount SOURCE on TARGET: reason")."""
    if libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                    flags, data.encode() if data else None) != 0:
        raise os_error(f"mount {source} on {target}")


def unmount(target: str, *, lazy: bool = True) -> None:
    """Unmount ``target``; not mounted / missing is success.

    ``lazy``: detach at once (MNT_DETACH) — the mount disappears from the tree, the kernel
    frees it when the last user is gone. Otherwise a plain unmount first, and MNT_DETACH
    only when that reports EBUSY. Raises OSError for any other failure."""
    for flags in ((MNT_DETACH,) if lazy else (0, MNT_DETACH)):
        if libc().umount2(target.encode(), flags) == 0:
            return
        error = os_error(f"umount {target}")
        if error.errno in _NOT_MOUNTED:
            return
        if error.errno != errno.EBUSY:
            raise error
    raise error


def _unescape(field: str) -> str:
    """Decode mountinfo's octal escapes (``\\040`` for a space…)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_table(mountinfo: str = MOUNTINFO) -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of every mount, in mountinfo order."""
    table = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            table.append((_unescape(fields[4]), fields[sep + 1],
                          _unescape(fields[sep + 3]) if len(fields) > sep + 3 else ""))
    return table


def mounts_under(root: str, mountinfo: str = MOUNTINFO) -> list[str]:
    """Mount points at or below ``root`` (realpath), deepest first (the order to unmount).

    A path mounted several times appears once per mount."""
    base = os.path.realpath(root)
    found = [mp for mp, _, _ in mount_table(mountinfo)
             if mp == base or mp.startswith(base.rstrip("/") + "/")]
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def is_mountpoint(path: str) -> bool:
    """True when ``path`` (realpath) is a mount point, bind mounts included."""
    return os.path.realpath(path) in mounts_under(path)
