"""Container stats from cgroup files: mountinfo parsing and v1 / v2 trees under tmp_path."""

from __future__ import annotations

import os

import pytest

from podling.runtime.oci import stats
from podling.runtime.oci.stats import CgroupMounts, CgroupUsage

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
"""
UNIFIED = """\
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw
"""
ESCAPED = r"50 31 0:40 / /tmp/my\040cgroups/memory rw - cgroup cgroup rw,memory" + "\n"


@pytest.mark.parametrize("text, expected", [
    (HYBRID, CgroupMounts({"cpu": "/sys/fs/cgroup/cpu,cpuacct",
                           "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                           "memory": "/sys/fs/cgroup/memory"}, "/sys/fs/cgroup/unified")),
    (UNIFIED, CgroupMounts({}, "/sys/fs/cgroup")),
    (ESCAPED, CgroupMounts({"memory": "/tmp/my cgroups/memory"}, "")),
    ("garbage\n\n1 2 3\n", CgroupMounts({}, "")),
])
def test_parse_mountinfo(text: str, expected: CgroupMounts) -> None:
    assert stats.parse_mountinfo(text) == expected


def test_the_hosts_mountinfo_parses() -> None:
    mounts = stats.read_mounts()
    assert isinstance(mounts, CgroupMounts)


def write(directory: str, files: dict[str, str]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


def v1_tree(tmp_path, cgroup: str, *, cpu: int, usage: int, inactive: int) -> CgroupMounts:
    cpuacct, memory = str(tmp_path / "cpu,cpuacct"), str(tmp_path / "memory")
    write(cpuacct + cgroup, {"cpuacct.usage": f"{cpu}\n"})
    write(memory + cgroup, {
        "memory.usage_in_bytes": f"{usage}\n",
        "memory.stat": f"cache 100\ninactive_file 7\ntotal_cache 100\n"
                       f"total_inactive_file {inactive}\ntotal_active_file 3\n"})
    return CgroupMounts({"cpu": cpuacct, "cpuacct": cpuacct, "memory": memory},
                        str(tmp_path / "unified"))


def v2_tree(tmp_path, cgroup: str, *, usec: int, current: int,
            inactive: int) -> CgroupMounts:
    root = str(tmp_path / "unified")
    write(root + cgroup, {
        "cpu.stat": f"usage_usec {usec}\nuser_usec 1\nsystem_usec 2\n",
        "memory.current": f"{current}\n",
        "memory.stat": f"anon 5\nfile 9\nactive_file 1\ninactive_file {inactive}\n"})
    return CgroupMounts({}, root)


CG = "/podling/pod-abc/ctr1"


@pytest.mark.parametrize("usage, inactive, working_set", [
    (10_000_000, 4_000_000, 6_000_000),
    (10_000_000, 0, 10_000_000),
    (4_000_000, 9_000_000, 0),  # clamped at zero
])
def test_v1_cgroup(tmp_path, usage: int, inactive: int, working_set: int) -> None:
    mounts = v1_tree(tmp_path, CG, cpu=123_456_789, usage=usage, inactive=inactive)
    assert stats.read_cgroup_usage(mounts, CG) == CgroupUsage(123_456_789, usage, working_set)


def test_v2_cgroup(tmp_path) -> None:
    mounts = v2_tree(tmp_path, CG, usec=2_500, current=8192, inactive=4096)
    assert stats.read_cgroup_usage(mounts, CG) == CgroupUsage(2_500_000, 8192, 4096)


def test_hybrid_reads_the_v1_controllers_not_the_unified_tree(tmp_path) -> None:
    mounts = v1_tree(tmp_path, CG, cpu=5, usage=100, inactive=10)
    v2_tree(tmp_path, CG, usec=999, current=999_999, inactive=0)
    assert stats.read_cgroup_usage(mounts, CG) == CgroupUsage(5, 100, 90)


def test_v1_without_the_cgroup_falls_back_to_the_unified_tree(tmp_path) -> None:
    v1 = v1_tree(tmp_path, "/other", cpu=5, usage=100, inactive=10)
    v2_tree(tmp_path, CG, usec=3, current=4096, inactive=0)
    assert stats.read_cgroup_usage(v1, CG) == CgroupUsage(3000, 4096, 4096)


@pytest.mark.parametrize("path", [CG, ""])
def test_a_missing_cgroup_reads_as_zeros(tmp_path, path: str) -> None:
    mounts = CgroupMounts({"cpuacct": str(tmp_path / "a"), "memory": str(tmp_path / "b")},
                          str(tmp_path / "c"))
    assert stats.read_cgroup_usage(mounts, path) == CgroupUsage(0, 0, 0)


def test_container_stats_sample(tmp_path) -> None:
    mounts = v1_tree(tmp_path, CG, cpu=42, usage=4096, inactive=1024)
    sample = stats.container_stats("ctr1", CG, mounts)
    assert (sample.container_id, sample.cpu_usage_core_nanoseconds, sample.memory_usage_bytes,
            sample.memory_working_set_bytes) == ("ctr1", 42, 4096, 3072)
    assert sample.timestamp > 0
