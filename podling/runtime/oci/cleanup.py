"""purge(root): remove everything one OciRuntime root made on the host.

Order: kill and delete every runc container under ``<root>/runc`` → kill leftover conmon
monitors recorded in the store → unmount everything mounted below the root (netns bind
mounts, shm tmpfs) → rmdir the cgroups the records name (and the runtime's cgroup root if
empty) → delete the directory. Safe to run while nothing uses the root (e.g. ``podling
server --purge``); idempotent; an absent root is success.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal

from podling.util import mounts

from ..interface import RuntimeCommandError
from . import host, proc
from .runc import Runc
from .sandbox import find_binary
from .store import Store


async def purge(root: str, *, runc: str = "runc", timeout: float = 10.0) -> list[str]:
    """Remove everything under ``root``; returns problems that could not be fixed (empty = clean)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        return []
    store = Store(root)
    store.load()
    settings = store.read_settings()
    problems: list[str] = []
    await _remove_runc_containers(Runc(settings.get("runc") or find_binary(runc),
                                       store.path("runc"), timeout=timeout), problems)
    _kill_monitors(store)
    for point in mounts.mounts_under(root):
        try:
            mounts.unmount(point)
        except OSError as exc:
            problems.append(str(exc))
    problems += _remove_cgroups(store, settings.get("cgroup_root", ""))
    shutil.rmtree(root, ignore_errors=True)
    if os.path.exists(root):
        problems.append(f"{root} could not be removed")
    return problems


async def _remove_runc_containers(runc: Runc, problems: list[str]) -> None:
    try:
        states = await runc.list()
    except RuntimeCommandError as exc:
        problems.append(str(exc))
        return
    for st in states:
        try:
            if st.status in ("running", "created", "paused"):
                await runc.kill(st.id, "KILL", all_processes=True)
            await runc.delete(st.id, force=True)
        except RuntimeCommandError as exc:
            problems.append(str(exc))


def _kill_monitors(store: Store) -> None:
    pids = [(r.conmon_pid, 0) for r in store.sandboxes.values()]
    pids += [(r.conmon_pid, r.conmon_start_time) for r in store.containers.values()]
    for pid, start in pids:
        if pid and proc.same_process(pid, start) and _comm(pid) == "conmon":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _remove_cgroups(store: Store, cgroup_root: str) -> list[str]:
    busy: list[str] = []
    for record in store.containers.values():
        if record.cgroups_path:
            busy += host.remove_cgroup(record.cgroups_path)
    for sb in store.sandboxes.values():
        busy += host.remove_cgroup(f"{sb.cgroup_parent}/{sb.id}")
        if sb.owns_cgroup_parent:
            busy += host.remove_cgroup(sb.cgroup_parent)
    if cgroup_root.strip("/"):
        for hierarchy in host.cgroup_hierarchies():
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(hierarchy, cgroup_root.strip("/")))
    return [f"cgroup busy: {path}" for path in busy]
