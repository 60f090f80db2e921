"""The node loop: registers this agent's Node, heartbeats through its Lease, reports status.

This loop is the only writer of the Node object (DESIGN.md §4). It talks to the API server as
an ordinary client, exactly as the kubelet does::

    register() ──▶ tick() every heartbeat_seconds ─────────────────────────────┐
      create Node (or adopt it:      ├─ renew Lease kube-node-lease/<node>    │
      labels merged, status patched) └─ patch nodes/<node>/status when it     │
                                        changed, or every 5 min at the latest ◀┘

Every failure is logged and retried on the next tick: :meth:`run` never raises (except
cancellation) and never retries inline in a tight loop.

Conditions follow the kubelet's setters: ``MemoryPressure``, ``DiskPressure``, ``PIDPressure``
and ``Ready`` with the kubelet's reasons and messages; ``lastTransitionTime`` moves only when a
condition's status changes, ``lastHeartbeatTime`` on every status report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from podling.api.errors import ApiError
from podling.api.resources import LEASES, NODES
from podling.client.errors import ApiConnectionError
from podling.agent.config import AgentConfig

if TYPE_CHECKING:
    from ..client.rest import ApiClient
    from .events import EventRecorder

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], float]  # seconds since the epoch, like time.time
ReadyCheck = Callable[[], Awaitable[list[str]]]

KUBELET_VERSION = "v1.32.0-podling"
LEASE_NAMESPACE = "kube-node-lease"
STATUS_REPORT_SECONDS = 300.0  # the kubelet's nodeStatusReportFrequency
MEMORY_EVICTION_KI = 100 * 1024  # evictionHard memory.available<100Mi
DISK_EVICTION_FRACTION = 0.10  # evictionHard nodefs.available<10%
INODES_EVICTION_FRACTION = 0.05  # evictionHard nodefs.inodesFree<5%
PID_PRESSURE_FRACTION = 0.10  # PIDPressure when fewer than 10% of pid_max are free
_SIOCGIFADDR = 0x8915
_warned: list[bool] = []  # the loopback fallback is logged once per process


# --- host facts (blocking reads: call them in a thread) --------------------------------


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


# --- pure status computation ------------------------------------------------------------

# type → ((status-if-short reason, message), (status-if-fine reason, message), event names)
_PRESSURE = {
    "MemoryPressure": (("KubeletHasInsufficientMemory",
                        "kubelet has insufficient memory available"),
                       ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                       ("NodeHasInsufficientMemory", "NodeHasSufficientMemory")),
    "DiskPressure": (("KubeletHasDiskPressure", "kubelet has disk pressure"),
                     ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                     ("NodeHasDiskPressure", "NodeHasNoDiskPressure")),
    "PIDPressure": (("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                    ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("NodeHasInsufficientPID", "NodeHasSufficientPID")),
}
CONDITION_TYPES = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def ready_message(problems: list[str]) -> str:
    """The NotReady message: one problem as is, several as ``[a, b]`` (an aggregate error)."""
    return problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"


def desired_conditions(problems: list[str], pressure: Pressure) -> dict[str, tuple[str, str, str]]:
    """type → (status, reason, message), in the kubelet's order."""
    out: dict[str, tuple[str, str, str]] = {}
    for type_, short in (("MemoryPressure", pressure.memory), ("DiskPressure", pressure.disk),
                         ("PIDPressure", pressure.pid)):
        (bad_reason, bad_msg), (ok_reason, ok_msg), _ = _PRESSURE[type_]
        out[type_] = ("True", bad_reason, bad_msg) if short else ("False", ok_reason, ok_msg)
    if problems:
        out["Ready"] = ("False", "KubeletNotReady", ready_message(problems))
    else:
        out["Ready"] = ("True", "KubeletReady", "kubelet is posting ready status")
    return out


def merge_conditions(previous: list[Obj], desired: dict[str, tuple[str, str, str]],
                     now: str) -> list[Obj]:
    """New conditions stamped with ``now`` as heartbeat; ``lastTransitionTime`` is kept from
    ``previous`` when that condition's status is unchanged."""
    before = {c.get("type"): c for c in previous if isinstance(c, dict)}
    out = []
    for type_, (status, reason, message) in desired.items():
        old = before.get(type_) or {}
        transition = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": transition or now})
    return out


def without_heartbeats(status: Obj) -> Obj:
    """``status`` minus the heartbeat times: what decides whether a report is due early."""
    conditions = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                  for c in status.get("conditions") or []]
    return dict(status, conditions=conditions)


def condition_events(previous: list[Obj], current: list[Obj]) -> list[tuple[str, str]]:
    """(type, reason) of the node events the kubelet records for new or flipped conditions:
    ``NodeHasSufficientMemory``…, ``NodeReady`` / ``NodeNotReady``."""
    before = {c.get("type"): c.get("status") for c in previous}
    events = []
    for cond in current:
        type_, status = cond["type"], cond["status"]
        if before.get(type_) == status:
            continue
        if type_ == "Ready":
            reason = "NodeReady" if status == "True" else "NodeNotReady"
        else:
            bad, good = _PRESSURE[type_][2]
            reason = bad if status == "True" else good
        events.append(("Warning" if reason == "NodeNotReady" else "Normal", reason))
    return events


def _time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the loop ----------------------------------------------------------------------------


async def _always_ready() -> list[str]:
    return []


class NodeStatusLoop:
    """Registers and maintains one Node and its Lease. Create one per agent; call
    :meth:`register` (or let :meth:`run` do it) and run :meth:`run` as a task.

    ``ready_check`` returns the problems that make the node NotReady (e.g. ``"container
    runtime network not ready: …"``); an exception from it counts as a problem. ``clock``
    gives epoch seconds (a fake one in tests). ``node_ip`` overrides the InternalIP found
    from the default route. With a ``recorder`` the kubelet's node events are recorded.
    """

    def __init__(self, client: "ApiClient", config: AgentConfig, *,
                 ready_check: ReadyCheck = _always_ready, clock: Clock = time.time,
                 runtime_version: str = "runc://unknown", kubelet_port: int = 10250,
                 node_ip: str | None = None, recorder: "EventRecorder | None" = None,
                 pressure: Callable[[], Pressure] | None = None) -> None:
        self.client = client
        self.config = config
        self.ready_check = ready_check
        self.clock = clock
        self.runtime_version = runtime_version
        self.kubelet_port = kubelet_port
        self.node_ip = node_ip
        self.recorder = recorder
        self._pressure = pressure or (lambda: probe_pressure(config.data_dir))
        self.node: Obj | None = None  # the last Node the server returned
        self._lease: Obj | None = None
        self._reported: Obj | None = None  # last status sent, without heartbeats
        self._reported_at = 0.0

    @property
    def name(self) -> str:
        return self.config.node_name

    @property
    def registered(self) -> bool:
        return self.node is not None

    def labels(self) -> dict[str, str]:
        """The labels this agent owns on its Node (``config.node_labels`` win)."""
        arch = self.config.architecture
        return {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch, **self.config.node_labels}

    # -- status ----------------------------------------------------------------------------

    def _static_status(self) -> Obj:
        """Addresses, capacity, allocatable, nodeInfo, daemonEndpoints (blocking reads)."""
        cap = capacity(self.config)
        return {"addresses": [{"type": "InternalIP", "address": self.node_ip or primary_ipv4()},
                              {"type": "Hostname", "address": self.name}],
                "capacity": cap, "allocatable": allocatable(cap),
                "nodeInfo": node_info(self.config, self.runtime_version),
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}}}

    async def _problems(self) -> list[str]:
        try:
            return list(await self.ready_check())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken check must not hide the node: report it
            return [f"ready check failed: {exc}"]

    async def desired_status(self) -> Obj:
        """The status to report now, with conditions merged into the last known ones."""
        static = await asyncio.to_thread(self._static_status)
        pressure = await asyncio.to_thread(self._pressure)
        previous = ((self.node or {}).get("status") or {}).get("conditions") or []
        conditions = merge_conditions(previous, desired_conditions(await self._problems(),
                                                                   pressure),
                                      _time(self.clock()))
        return dict(static, conditions=conditions)

    # -- registration ----------------------------------------------------------------------

    async def register(self) -> Obj:
        """Create the Node, or adopt an existing one (its labels merged with ours, ours
        winning); then report the full status. Idempotent. Raises ApiError /
        ApiConnectionError (the caller retries later)."""
        status = await self.desired_status()
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": self.labels()},
                "spec": {}, "status": status}
        try:
            created = await self.client.create(NODES, node)
            self._remember(created, {"conditions": []}, status)
            log.info("registered node %s", self.name)
            return created
        except ApiError as exc:
            if exc.code != 409:
                raise
        await self.client.patch(NODES, self.name, {"metadata": {"labels": self.labels()}})
        existing = await self.client.get(NODES, self.name)
        self.node = existing
        status = await self.desired_status()  # transitions measured against the old node
        await self._report(status)
        log.info("adopted existing node %s", self.name)
        return self.node

    def _remember(self, node: Obj, previous_status: Obj, sent: Obj) -> None:
        self.node = node
        self._reported = without_heartbeats(sent)
        self._reported_at = self.clock()
        self._record_events(previous_status.get("conditions") or [],
                            sent.get("conditions") or [])

    def _record_events(self, previous: list[Obj], current: list[Obj]) -> None:
        if self.recorder is None or self.node is None:
            return
        for type_, reason in condition_events(previous, current):
            self.recorder.event(self.node, type_, reason,
                                f"Node {self.name} status is now: {reason}")

    async def _report(self, status: Obj) -> None:
        previous = (self.node or {}).get("status") or {}
        patched = await self.client.patch(NODES, self.name, {"status": status},
                                          patch_type="strategic", subresource="status")
        self._remember(patched, previous, status)

    # -- the periodic work -----------------------------------------------------------------

    async def sync_status(self) -> bool:
        """Patch nodes/status if anything but heartbeats changed, or if the last report is
        STATUS_REPORT_SECONDS old. Returns whether a patch was sent. Raises on API errors."""
        status = await self.desired_status()
        due = self.clock() - self._reported_at >= STATUS_REPORT_SECONDS
        if not due and without_heartbeats(status) == self._reported \
                and not await self._server_drifted(status):
            return False
        await self._report(status)
        return True

    async def _server_drifted(self, status: Obj) -> bool:
        """Whether the server's Node shows other condition statuses than ours (e.g. the node
        lifecycle controller set them Unknown while we were away): then report at once."""
        self.node = await self.client.get(NODES, self.name)
        def statuses(conditions: list) -> dict:
            return {c.get("type"): c.get("status") for c in conditions or []}
        return statuses(((self.node or {}).get("status") or {}).get("conditions")) != \
            statuses(status.get("conditions"))

    def _lease_body(self, lease: Obj | None) -> Obj:
        meta: Obj = {"name": self.name, "namespace": LEASE_NAMESPACE}
        if lease is not None:
            meta = dict(lease["metadata"])
        if self.node and (self.node.get("metadata") or {}).get("uid"):
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                        "uid": self.node["metadata"]["uid"]}]
        spec = dict((lease or {}).get("spec") or {})
        spec.update(holderIdentity=self.name,
                    leaseDurationSeconds=self.config.lease_duration_seconds,
                    renewTime=_micro_time(self.clock()))
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}

    async def renew_lease(self) -> Obj:
        """Create or renew ``kube-node-lease/<node>`` (renewTime = now). A stale cached copy
        (409) or a vanished lease (404) is re-read on the next call. Raises on API errors."""
        if self._lease is None:
            try:
                self._lease = await self.client.get(LEASES, self.name, LEASE_NAMESPACE)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                self._lease = await self.client.create(LEASES, self._lease_body(None),
                                                       LEASE_NAMESPACE)
                return self._lease
        try:
            self._lease = await self.client.update(LEASES, self._lease_body(self._lease))
        except ApiError:
            self._lease = None
            raise
        return self._lease

    async def tick(self) -> None:
        """One pass: register if needed, renew the lease, report status. Never raises
        (except cancellation); failures are logged and retried on the next pass."""
        steps = ([] if self.registered else [("register node", self.register)]) + \
            [("renew lease", self.renew_lease), ("update node status", self.sync_status)]
        for what, step in steps:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError, OSError) as exc:
                log.warning("node %s: %s failed (retrying in %ss): %s", self.name, what,
                            self.config.heartbeat_seconds, exc)
                if not self.registered:
                    return
            except Exception:
                log.exception("node %s: %s failed unexpectedly", self.name, what)
                if not self.registered:
                    return

    async def run(self) -> None:
        """Tick every ``heartbeat_seconds`` until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.config.heartbeat_seconds)

    async def pod_cidr(self) -> str | None:
        """The Node's ``spec.podCIDR`` as the API server assigned it (None until then).
        Reads the Node; on an API failure answers from the last Node seen."""
        try:
            self.node = await self.client.get(NODES, self.name)
        except (ApiError, ApiConnectionError) as exc:
            log.warning("node %s: reading spec.podCIDR failed: %s", self.name, exc)
        return ((self.node or {}).get("spec") or {}).get("podCIDR") or None
