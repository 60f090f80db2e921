"""Host plumbing: named network namespaces, the cgroup mode and cgroup trees.

Everything here is idempotent where it removes things: removing a missing netns or cgroup is
success. Mounts are :mod:`podling.util.mounts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os

from podling.util import netns
from podling.util.libc import libc, os_error
from podling.util.mounts import unmount

from ..interface import RuntimeCommandError

CGROUP_MOUNT = "/sys/fs/cgroup"
TMPFS_MAGIC = 0x01021994
CGROUP2_SUPER_MAGIC = 0x63677270
CGROUP_SUPER_MAGIC = 0x27E0EB


def fs_type(path: str) -> int:
    """statfs(2) ``f_type`` of the filesystem holding ``path``."""
    buf = ctypes.create_string_buffer(256)
    if libc().statfs(path.encode(), buf) != 0:
        raise os_error(f"statfs {path}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def cgroup_mode(mount: str = CGROUP_MOUNT) -> str:
    """``unified`` (cgroup v2 only), ``hybrid`` (v1 + a cgroup2 at unified/) or ``legacy``."""
    kind = fs_type(mount)
    if kind == CGROUP2_SUPER_MAGIC:
        return "unified"
    unified = os.path.join(mount, "unified")
    if os.path.isdir(unified) and fs_type(unified) == CGROUP2_SUPER_MAGIC:
        return "hybrid"
    return "legacy"


def check_runtime_supports(runtime_binary: str, mode: str) -> str | None:
    """An error message if this OCI runtime cannot work with this cgroup mode, else None."""
    if os.path.basename(runtime_binary) == "crun" and mode == "hybrid":
        return ("crun does not support cgroups in hybrid mode (cgroup v1 with a cgroup2 "
                "mount at /sys/fs/cgroup/unified); configure runc instead")
    return None


# -- named network namespaces ---------------------------------------------------------------


async def create_netns(path: str, *, timeout: float) -> None:  # noqa: ARG001
    """Create a new network namespace kept alive by a bind mount at ``path`` (a file), with
    its loopback interface up (so 127.0.0.1 works before and without any CNI plugin).
    In-process (util/netns.py): no ``unshare`` / ``ip`` programs; ``timeout`` is kept for
    the callers' signature (the syscalls do not block)."""
    try:
        await asyncio.to_thread(netns.create, path)
    except OSError as exc:
        raise RuntimeCommandError(f"create netns {path}: {exc}") from exc


def remove_netns(path: str) -> None:
    """Unmount and delete a named netns file. Idempotent."""
    unmount(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# -- cgroups --------------------------------------------------------------------------------


def cgroup_hierarchies(mount: str = CGROUP_MOUNT) -> list[str]:
    """Root directories of every mounted hierarchy (v1 controllers + unified, or just v2)."""
    if fs_type(mount) == CGROUP2_SUPER_MAGIC:
        return [mount]
    out = []
    for name in sorted(os.listdir(mount)):
        path = os.path.join(mount, name)
        if os.path.isdir(path) and not os.path.islink(path):
            out.append(path)
    return out


def limit_pids(path: str, limit: int, mount: str = CGROUP_MOUNT) -> None:
    """Cap the processes of the cgroup ``path`` (made if missing) at ``limit``: its
    ``pids.max`` in the pids hierarchy (cgroup v1) or the unified one (v2)."""
    roots = [r for r in cgroup_hierarchies(mount) if os.path.basename(r) == "pids"]
    for root in roots or [mount]:
        directory = os.path.join(root, path.strip("/"))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "pids.max"), "w") as f:
            f.write(str(limit))


def remove_cgroup(path: str, mount: str = CGROUP_MOUNT) -> list[str]:
    """rmdir the cgroup ``path`` (absolute within each hierarchy) and its children, deepest
    first, in every hierarchy. Returns the directories that could not be removed (busy)."""
    rel = path.strip("/")
    if not rel:
        return []
    busy = []
    for root in cgroup_hierarchies(mount):
        top = os.path.join(root, rel)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError:
                busy.append(dirpath)
    return busy
