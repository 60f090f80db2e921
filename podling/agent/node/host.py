"""Facts about the host the node reports, read from /proc, /sys and /etc: addresses,
capacity, system info, resource pressure; and the node's allocatable resources, which the
downward API falls back to (:func:`node_allocatable`).

Every function here does blocking reads: call them in a thread from async code.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import socket
import struct
from dataclasses import dataclass

from podling.agent.config import AgentConfig
from podling.agent.kuberuntime.resource_fields import NodeAllocatable

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0-podling"
MEMORY_EVICTION_KI = 100 * 1024  # evictionHard memory.available<100Mi
DISK_EVICTION_FRACTION = 0.10  # evictionHard nodefs.available<10%
INODES_EVICTION_FRACTION = 0.05  # evictionHard nodefs.inodesFree<5%
PID_PRESSURE_FRACTION = 0.10  # PIDPressure when fewer than 10% of pid_max are free
_SIOCGIFADDR = 0x8915
_warned: list[bool] = []  # the loopback fallback is logged once per process


@dataclass(frozen=True)
class Pressure:
    """Which resources are short; each maps to one node condition."""

    memory: bool = False
    disk: bool = False
    pid: bool = False


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in KiB by field name."""
    values: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0])
    return values


def _existing_dir(path: str) -> str:
    """``path`` or its closest existing ancestor (the data dir may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"').strip("'")
    return "Linux"


def default_route() -> tuple[str, str] | None:
    """(interface, gateway) of the lowest-metric IPv4 default route in /proc/net/route."""
    best: tuple[int, str, str] | None = None
    for line in _read("/proc/net/route").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        if not int(fields[3], 16) & 1:  # RTF_UP
            continue
        gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
        metric = int(fields[6])
        if best is None or metric < best[0]:
            best = (metric, fields[0], gateway)
    return (best[1], best[2]) if best else None


def interface_ipv4(interface: str) -> str | None:
    """The primary IPv4 address of ``interface`` (SIOCGIFADDR; sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR,
                                 struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def primary_ipv4() -> str:
    """The host's primary IPv4: the address of the default route's interface, else loopback."""
    route = default_route()
    address = interface_ipv4(route[0]) if route else None
    if not address:
        if not _warned:
            log.warning("no IPv4 default route with an address; using 127.0.0.1 as InternalIP")
            _warned.append(True)
        return "127.0.0.1"
    return address


def capacity(config: AgentConfig) -> dict[str, str]:
    """cpu, memory (KiB), pods and ephemeral-storage (KiB of the data dir's filesystem)."""
    st = os.statvfs(_existing_dir(config.data_dir))
    return {"cpu": str(os.cpu_count() or 1),
            "memory": f"{_meminfo().get('MemTotal', 0)}Ki",
            "pods": str(config.max_pods),
            "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki"}


def allocatable(cap: dict[str, str]) -> dict[str, str]:
    """Capacity minus the kubelet's default hard eviction thresholds (no reservations)."""
    memory = max(0, int(cap["memory"][:-2]) - MEMORY_EVICTION_KI)
    storage = int(cap["ephemeral-storage"][:-2])
    return dict(cap, memory=f"{memory}Ki",
                **{"ephemeral-storage": f"{int(storage * (1 - DISK_EVICTION_FRACTION))}Ki"})


def node_info(config: AgentConfig, runtime_version: str) -> dict[str, str]:
    """``status.nodeInfo`` as ``kubectl describe node`` shows it under System Info."""
    return {"machineID": _read("/etc/machine-id"),
            "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": os.uname().release,
            "osImage": _os_image(),
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": config.architecture}


def probe_pressure(data_dir: str) -> Pressure:
    """Memory, disk and PID pressure against the kubelet's default hard eviction thresholds."""
    mem = _meminfo()
    memory = "MemAvailable" in mem and mem["MemAvailable"] < MEMORY_EVICTION_KI
    st = os.statvfs(_existing_dir(data_dir))
    disk = (st.f_blocks > 0 and st.f_bavail < st.f_blocks * DISK_EVICTION_FRACTION) or \
        (st.f_files > 0 and st.f_favail < st.f_files * INODES_EVICTION_FRACTION)
    pid = False
    try:
        total = int(_read("/proc/loadavg").split()[3].split("/")[1])
        pid_max = int(_read("/proc/sys/kernel/pid_max"))
        pid = pid_max - total < pid_max * PID_PRESSURE_FRACTION
    except (IndexError, ValueError):
        pass
    return Pressure(memory=memory, disk=bool(disk), pid=pid)


#: the downward API's default limits: the node's allocatable cpu, memory, ephemeral storage
HostResources = NodeAllocatable


def node_allocatable(config: AgentConfig) -> NodeAllocatable:
    """What the Node reports as ``status.allocatable`` (:func:`allocatable`)."""
    return NodeAllocatable.from_resource_list(allocatable(capacity(config)))


@functools.cache
def host_resources() -> HostResources:
    """The host's CPU count and physical memory (no ephemeral storage), probed on the
    first call and cached: a default for callers without an agent configuration."""
    cpus = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return HostResources(cpu_milli=cpus * 1000, memory_bytes=memory)
