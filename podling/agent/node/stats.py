"""The node's stats summary, ``GET /stats/summary`` (docs/streaming.md §4): what the API
server's metrics.k8s.io (``kubectl top``) is made of — a subset of the kubelet's Summary API::

    {"node": {"nodeName", "cpu": {"time", "usageNanoCores", "usageCoreNanoSeconds"},
              "memory": {"time", "workingSetBytes", "usageBytes", "availableBytes"}},
     "pods": [{"podRef": {"name", "namespace", "uid"}, "cpu": {…}, "memory": {…},
               "containers": [{"name", "cpu": {…}, "memory": {"time", "usageBytes",
                                                            "workingSetBytes"}}]}]}

Node CPU is the busy time of ``/proc/stat``, node memory comes from ``/proc/meminfo``
(working set = used − inactive file; available = total − working set, as the kubelet);
containers come from ``RuntimeService.container_stats`` (their cgroups).

CPU usage is a rate. Nothing polls in the background (an idle node costs nothing): each
request samples the cumulative counters and compares them with the previous sample of the
same container (and of the node). Without a usable previous sample (none, or older than
``MAX_AGE``) the request takes one, waits ``settle`` seconds and samples again, so the first
``kubectl top`` after a start already shows real figures. A previous sample younger than
``MIN_WINDOW`` is kept (the window grows) and the last rate is reported again. Each ``cpu``
object also carries ``windowSeconds`` (a podling addition: the span the rate covers).
Requests are served one at a time, so concurrent ones share one wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from podling.agent.kuberuntime import labels
from podling.api.types import Obj
from podling.api.views import PodView
from podling.runtime.interface import ContainerState, ContainerStats, NotFound, RuntimeService
from podling.util.clock import Clock, SystemClock
from podling.util.timefmt import epoch_rfc3339

log = logging.getLogger(__name__)

MIN_WINDOW = 0.5  # seconds: the shortest span a rate is computed over
MAX_AGE = 60.0  # seconds: an older previous sample is not used
SETTLE = 1.0  # seconds between the two samples of a request without usable history
NODE_KEY = "\0node"


# -- the host ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeMemory:
    total_bytes: int
    usage_bytes: int
    working_set_bytes: int

    @property
    def available_bytes(self) -> int:
        return max(0, self.total_bytes - self.working_set_bytes)


def parse_proc_stat(text: str, ticks_per_second: int) -> int:
    """Cumulative busy CPU time of all cores, in nanoseconds, from /proc/stat's ``cpu`` line
    (user + nice + system + irq + softirq + steal; guest time is already in user)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]] + [0] * 8
            user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
            busy = user + nice + system + irq + softirq + steal
            return busy * 1_000_000_000 // ticks_per_second
    raise ValueError("no cpu line in /proc/stat")


def parse_meminfo(text: str) -> NodeMemory:
    """Node memory from /proc/meminfo (kB values)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            with contextlib.suppress(ValueError):
                values[key.strip()] = int(parts[0]) * 1024
    total = values.get("MemTotal", 0)
    usage = max(0, total - values.get("MemFree", 0))
    working_set = max(0, usage - values.get("Inactive(file)", 0))
    return NodeMemory(total, usage, working_set)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_node_cpu() -> int:
    return parse_proc_stat(_read("/proc/stat"), os.sysconf("SC_CLK_TCK"))


def read_node_memory() -> NodeMemory:
    return parse_meminfo(_read("/proc/meminfo"))


@dataclass(frozen=True)
class HostReaders:
    """Where node figures come from (tests pass their own)."""

    cpu_ns: Callable[[], int] = read_node_cpu
    memory: Callable[[], NodeMemory] = read_node_memory


# -- rates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    nanocores: int
    window: float  # seconds


@dataclass
class _History:
    time: float
    usage_ns: int
    rate: Rate | None = None


class CpuRates:
    """The previous cumulative sample per key, turned into a rate by the next one.

    ``observe`` returns None when there is no usable previous sample (none, older than
    ``max_age``, or younger than ``min_window`` with no rate yet)."""

    def __init__(self, *, min_window: float = MIN_WINDOW, max_age: float = MAX_AGE) -> None:
        self.min_window = min_window
        self.max_age = max_age
        self._history: dict[str, _History] = {}

    def observe(self, key: str, when: float, usage_ns: int) -> Rate | None:
        prev = self._history.get(key)
        age = when - prev.time if prev else None
        if prev is None or age is None or age > self.max_age or usage_ns < prev.usage_ns \
                or age < 0:
            self._history[key] = _History(when, usage_ns)
            return None
        if age < self.min_window:
            return prev.rate  # keep the older sample: the window grows
        rate = Rate(int((usage_ns - prev.usage_ns) / age), age)
        self._history[key] = _History(when, usage_ns, rate)
        return rate

    def keep_only(self, keys: set[str]) -> None:
        """Forget the samples of keys that are gone (removed containers)."""
        for key in list(self._history):
            if key not in keys:
                del self._history[key]


# -- the summary ------------------------------------------------------------------------


@dataclass(frozen=True)
class _ContainerSample:
    pod: PodView
    name: str
    started_at: float
    stats: ContainerStats


@dataclass(frozen=True)
class _Samples:
    time: float
    node_cpu_ns: int
    memory: NodeMemory
    containers: list[_ContainerSample]


def _cpu(when: float, usage_ns: int, rate: Rate | None) -> Obj:
    cpu: Obj = {"time": epoch_rfc3339(when), "usageCoreNanoSeconds": usage_ns}
    if rate is not None:
        cpu["usageNanoCores"] = rate.nanocores
        cpu["windowSeconds"] = round(rate.window, 3)
    return cpu


class NodeStats:
    """Serves ``GET /stats/summary``. ``find_pod(namespace, name)`` is the node's view of the
    API pod (None: not this node's); containers of unknown pods are left out."""

    def __init__(self, runtime: RuntimeService,
                 find_pod: Callable[[str, str], Obj | None], *, node_name: str = "",
                 readers: HostReaders = HostReaders(), clock: Clock | None = None,
                 settle: float = SETTLE, rates: CpuRates | None = None) -> None:
        self._runtime = runtime
        self._find_pod = find_pod
        self._node_name = node_name
        self._readers = readers
        self._clock = clock or SystemClock()
        self._settle = settle
        self._rates = rates or CpuRates()
        self._lock = asyncio.Lock()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(await self.summary())
        except Exception as exc:  # a host read failing: the API server skips this node
            log.exception("stats summary failed")
            raise web.HTTPInternalServerError(text=f"stats summary failed: {exc}") from None

    async def summary(self) -> Obj:
        async with self._lock:
            samples = await self._sample()
            rates = self._observe(samples)
            if any(rate is None for rate in rates.values()):
                await self._clock.sleep(self._settle)
                samples = await self._sample()
                rates = self._observe(samples)
            self._rates.keep_only(set(rates))
            return self._render(samples, rates)

    async def _sample(self) -> _Samples:
        containers = await self._containers()
        return _Samples(self._clock.now(), self._readers.cpu_ns(), self._readers.memory(),
                        containers)

    async def _containers(self) -> list[_ContainerSample]:
        newest: dict[tuple[str, str], Any] = {}
        pods: dict[str, PodView] = {}
        for status in await self._runtime.list_containers():
            lab = status.labels
            if status.state is not ContainerState.RUNNING or labels.POD_UID not in lab:
                continue
            found = self._find_pod(lab.get(labels.POD_NAMESPACE, ""),
                                   lab.get(labels.POD_NAME, ""))
            pod = PodView.from_obj(found)
            if found is None or pod.metadata.uid != lab[labels.POD_UID]:
                continue
            key = (lab[labels.POD_UID], lab.get(labels.CONTAINER_NAME, status.name))
            if key not in newest or newest[key].started_at < status.started_at:
                newest[key], pods[key[0]] = status, pod
        out = []
        for (uid, name), status in newest.items():
            try:
                stats = await self._runtime.container_stats(status.id)
            except NotFound:
                continue  # removed meanwhile
            out.append(_ContainerSample(pods[uid], name, status.started_at, stats))
        return out

    def _observe(self, samples: _Samples) -> dict[str, Rate | None]:
        rates = {NODE_KEY: self._rates.observe(NODE_KEY, samples.time, samples.node_cpu_ns)}
        for c in samples.containers:
            rates[c.stats.container_id] = self._rates.observe(
                c.stats.container_id, c.stats.timestamp, c.stats.cpu_usage_core_nanoseconds)
        return rates

    def _render(self, samples: _Samples, rates: dict[str, Rate | None]) -> Obj:
        memory = samples.memory
        node = {"nodeName": self._node_name or self._pod_node(samples) or socket.gethostname(),
                "cpu": _cpu(samples.time, samples.node_cpu_ns, rates.get(NODE_KEY)),
                "memory": {"time": epoch_rfc3339(samples.time),
                           "availableBytes": memory.available_bytes,
                           "usageBytes": memory.usage_bytes,
                           "workingSetBytes": memory.working_set_bytes}}
        return {"node": node, "pods": _pods(samples.containers, rates)}

    @staticmethod
    def _pod_node(samples: _Samples) -> str:
        return next((c.pod.spec.node_name for c in samples.containers), "")


def _pods(containers: list[_ContainerSample], rates: dict[str, Rate | None]) -> list[Obj]:
    by_pod: dict[str, Obj] = {}
    for c in containers:
        meta = c.pod.metadata
        entry = by_pod.setdefault(meta.uid, {
            "podRef": {"name": meta.name, "namespace": labels.namespace(c.pod),
                       "uid": meta.uid}, "containers": []})
        s = c.stats
        entry["containers"].append({
            "name": c.name, "startTime": epoch_rfc3339(c.started_at),
            "cpu": _cpu(s.timestamp, s.cpu_usage_core_nanoseconds, rates.get(s.container_id)),
            "memory": {"time": epoch_rfc3339(s.timestamp), "usageBytes": s.memory_usage_bytes,
                       "workingSetBytes": s.memory_working_set_bytes}})
    for entry in by_pod.values():
        entry["containers"].sort(key=lambda c: c["name"])
        entry["cpu"], entry["memory"] = _pod_totals(entry["containers"])
    return sorted(by_pod.values(),
                  key=lambda p: (p["podRef"]["namespace"], p["podRef"]["name"]))


def _pod_totals(containers: list[Obj]) -> tuple[Obj, Obj]:
    cpus = [c["cpu"] for c in containers]
    cpu: Obj = {"time": max(c["time"] for c in cpus),
                "usageCoreNanoSeconds": sum(c["usageCoreNanoSeconds"] for c in cpus)}
    if all("usageNanoCores" in c for c in cpus):
        cpu["usageNanoCores"] = sum(c["usageNanoCores"] for c in cpus)
    mems = [c["memory"] for c in containers]
    memory = {"time": max(m["time"] for m in mems),
              "usageBytes": sum(m["usageBytes"] for m in mems),
              "workingSetBytes": sum(m["workingSetBytes"] for m in mems)}
    return cpu, memory
