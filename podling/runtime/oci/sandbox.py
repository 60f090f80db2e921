"""The pause sandbox's host resources: the shared pause root, the named netns, the pod's shm.

The pause container runs catatonit (static) bind-mounted read-only at ``/pause`` as
``/pause -P`` in a minimal read-only root shared by all sandboxes — no image is ever pulled.
Its network namespace is created *before* the container, as a bind mount at
``<root>/netns/<id>``, so CNI gets a stable path and the namespace outlives the pause process
until ``remove_pod_sandbox``. ``/dev/shm`` of the pod is a tmpfs at
``<root>/sandboxes/<id>/shm`` bind-mounted into every container (IPC sharing).

    acquire:  netns (unless network NODE) → shm tmpfs (unless ipc NODE)
    release:  shm unmount → netns unmount + unlink          (each step idempotent)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from typing import Iterable

from podling.util import mounts, pinned_ns

from ..interface import NamespaceMode, NamespaceOptions, RuntimeCommandError, RuntimeUnavailable
from . import host

PAUSE_ROOT_DIRS = ("proc", "dev", "sys", "etc")


def find_binary(name: str) -> str:
    """Absolute path of ``name`` (a path or a name on PATH, also /usr/sbin and /sbin)."""
    if os.path.isabs(name):
        if os.access(name, os.X_OK):
            return name
        raise RuntimeUnavailable(f"{name} is not an executable")
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/local/sbin"
    found = shutil.which(name, path=path)
    if not found:
        raise RuntimeUnavailable(f"{name} not found (install it: apt-get install {name})")
    return found


def ensure_pause_rootfs(root: str) -> str:
    """Create (once) the minimal read-only root of pause containers; returns its path."""
    rootfs = os.path.join(root, "pause", "rootfs")
    for sub in PAUSE_ROOT_DIRS:
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    pause = os.path.join(rootfs, "pause")
    if not os.path.exists(pause):
        with open(pause, "a"):
            pass
    return rootfs


def netns_path(root: str, sid: str) -> str:
    return os.path.join(root, "netns", sid)


async def create_netns(root: str, sid: str, options: NamespaceOptions, *,
                       timeout: float) -> str:
    """The sandbox's named netns path ('' with network NODE)."""
    if options.network is NamespaceMode.NODE:
        return ""
    path = netns_path(root, sid)
    await host.create_netns(path, timeout=timeout)
    return path


def pinned_paths(root: str, sid: str, options: NamespaceOptions) -> dict[str, str]:
    """Where the sandbox's own IPC and UTS namespaces are pinned: none with ipc NODE, no UTS
    with network NODE (the host's hostname)."""
    kinds = ([] if options.ipc is NamespaceMode.NODE else ["ipc"]) + \
        ([] if options.network is NamespaceMode.NODE else ["uts"])
    return {kind: os.path.join(root, "ns", f"{sid}.{kind}") for kind in kinds}


async def pin_namespaces(paths: dict[str, str]) -> None:
    """Make and pin the namespaces of :func:`pinned_paths` (nothing left on failure)."""
    if not paths:
        return
    try:
        await asyncio.to_thread(pinned_ns.pin, paths)
    except OSError as exc:
        raise RuntimeCommandError(f"pin namespaces {sorted(paths)}: {exc}") from exc


def create_shm(sandbox_dir: str, options: NamespaceOptions, *, size: str) -> str:
    """Mount the pod's /dev/shm tmpfs; '' with ipc NODE (the host's /dev/shm is used)."""
    if options.ipc is NamespaceMode.NODE:
        return ""
    path = os.path.join(sandbox_dir, "shm")
    os.makedirs(path, exist_ok=True)
    if not mounts.is_mountpoint(path):
        mounts.mount("shm", path, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC,
                     f"mode=1777,size={size}")
    return path


def release(*, shm_path: str, netns: str, pinned: Iterable[str] = ()) -> None:
    """Unmount the shm, remove the netns and the pinned namespaces. Idempotent."""
    for path in pinned:
        pinned_ns.unpin(path)
    if shm_path:
        mounts.unmount(shm_path)
        with contextlib.suppress(OSError):
            os.rmdir(shm_path)
    if netns:
        host.remove_netns(netns)
