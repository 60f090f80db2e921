"""Container CPU and memory from the container's cgroup (what ``kubectl top`` shows).

Where the hierarchies are mounted is read from ``/proc/self/mountinfo``, never assumed:

    cgroup v1 (legacy, or hybrid with a cgroup2 at …/unified)
        <cpuacct mount><cgroups path>/cpuacct.usage            cumulative ns
        <memory mount><cgroups path>/memory.usage_in_bytes     usage
        <memory mount><cgroups path>/memory.stat               total_inactive_file
    cgroup v2 (unified)
        <cgroup2 mount><cgroups path>/cpu.stat                 usage_usec (× 1000)
        <cgroup2 mount><cgroups path>/memory.current           usage
        <cgroup2 mount><cgroups path>/memory.stat              inactive_file

Each figure comes from the v1 controller when it is mounted and has the cgroup, else from
the unified hierarchy (a hybrid host keeps the controllers on v1, as runc does). The
cgroups path is absolute within each hierarchy, as runc places it (mount point + path).
Working set = usage − inactive file pages, clamped at 0 (the kubelet's definition). A cgroup
that does not exist (a container that is not running) reads as zeros.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field

from ..interface import ContainerStats

MOUNTINFO = "/proc/self/mountinfo"
V1_CONTROLLERS = frozenset(("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb",
                            "memory", "misc", "net_cls", "net_prio", "perf_event", "pids",
                            "rdma"))


@dataclass(frozen=True)
class CgroupMounts:
    """Mount points: v1 controller name → directory, and the cgroup2 mount (or "")."""

    v1: dict[str, str] = field(default_factory=dict)
    unified: str = ""


@dataclass(frozen=True)
class CgroupUsage:
    cpu_usage_core_nanoseconds: int = 0
    memory_usage_bytes: int = 0
    memory_working_set_bytes: int = 0


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    out, i = [], 0
    while i < len(text):
        digits = text[i + 1:i + 4]
        if text[i] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> CgroupMounts:
    """The cgroup mounts listed in a mountinfo text (the first mount of each wins)."""
    v1: dict[str, str] = {}
    unified = ""
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 4:
            continue
        mount_point, fstype, options = _unescape(fields[4]), fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            unified = unified or mount_point
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in V1_CONTROLLERS:
                    v1.setdefault(option, mount_point)
    return CgroupMounts(v1, unified)


def read_mounts(path: str = MOUNTINFO) -> CgroupMounts:
    with open(path) as f:
        return parse_mountinfo(f.read())


@functools.cache
def host_mounts() -> CgroupMounts:
    """This host's cgroup mounts, read once (they do not move while podling runs)."""
    return read_mounts()


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: str) -> dict[str, int] | None:
    """A ``key value`` per line file (memory.stat, cpu.stat)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def _dir(mount: str, cgroup_path: str) -> str:
    return os.path.join(mount, cgroup_path.strip("/"))


def _v1_dir(mounts: CgroupMounts, controller: str, cgroup_path: str) -> str | None:
    mount = mounts.v1.get(controller)
    if not mount:
        return None
    path = _dir(mount, cgroup_path)
    return path if os.path.isdir(path) else None


def _cpu_ns(mounts: CgroupMounts, cgroup_path: str) -> int:
    v1 = _v1_dir(mounts, "cpuacct", cgroup_path)
    if v1 is not None:
        return _read_int(os.path.join(v1, "cpuacct.usage")) or 0
    if mounts.unified:
        stat = _read_keyed(os.path.join(_dir(mounts.unified, cgroup_path), "cpu.stat")) or {}
        return stat.get("usage_usec", 0) * 1000
    return 0


def _memory(mounts: CgroupMounts, cgroup_path: str) -> tuple[int, int]:
    """(usage, working set) in bytes."""
    v1 = _v1_dir(mounts, "memory", cgroup_path)
    if v1 is not None:
        usage = _read_int(os.path.join(v1, "memory.usage_in_bytes")) or 0
        inactive = (_read_keyed(os.path.join(v1, "memory.stat")) or {}).get(
            "total_inactive_file", 0)
    elif mounts.unified:
        base = _dir(mounts.unified, cgroup_path)
        usage = _read_int(os.path.join(base, "memory.current")) or 0
        inactive = (_read_keyed(os.path.join(base, "memory.stat")) or {}).get(
            "inactive_file", 0)
    else:
        return 0, 0
    return usage, max(0, usage - inactive)


def read_cgroup_usage(mounts: CgroupMounts, cgroup_path: str) -> CgroupUsage:
    """The cgroup's cumulative CPU time and current memory; zeros where it does not exist."""
    if not cgroup_path:
        return CgroupUsage()
    usage, working_set = _memory(mounts, cgroup_path)
    return CgroupUsage(_cpu_ns(mounts, cgroup_path), usage, working_set)


def container_stats(container_id: str, cgroup_path: str,
                    mounts: CgroupMounts | None = None) -> ContainerStats:
    """One sample of the container whose cgroup is ``cgroup_path``, stamped now."""
    usage = read_cgroup_usage(host_mounts() if mounts is None else mounts, cgroup_path)
    return ContainerStats(container_id, time.time(), usage.cpu_usage_core_nanoseconds,
                          usage.memory_usage_bytes, usage.memory_working_set_bytes)
