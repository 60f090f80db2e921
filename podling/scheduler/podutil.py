"""Pure helpers that read scheduling facts out of Pod and Node views
(:mod:`podling.api.views`).

Resource amounts are integers: ``cpu`` in millicores, ``memory`` / ``ephemeral-storage`` in
bytes, every other resource (``pods``, extended resources) in whole units, rounded up.
Nothing here does I/O.
"""

from __future__ import annotations

from typing import Iterable

from ..api.fit import (CPU, MEMORY, PODS, Resources, container_requests, resource_list,
                       spec_requests)
from ..api.views import PodSpecView, PodView, TaintView, TolerationView

__all__ = ["CPU", "MEMORY", "PODS", "HostPort", "Resources", "container_requests",
           "host_ports", "non_zero_requests", "pod_uid", "ports_conflict", "resource_list",
           "spec_requests", "tolerated", "tolerates"]

# Kubernetes' defaults for containers without requests, used by scoring only
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


def non_zero_requests(spec: PodSpecView) -> tuple[int, int]:
    """(milli cpu, memory bytes) for scoring: containers without a cpu / memory request
    count as 100m / 200Mi (Kubernetes' ``GetNonzeroRequests``)."""
    cpu = mem = 0
    for container in spec.containers:
        requests = container_requests(container)
        cpu += requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST
        mem += requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST
    for container in spec.init_containers:
        requests = container_requests(container)
        cpu = max(cpu, requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST)
        mem = max(mem, requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST)
    overhead = resource_list(spec.overhead)
    return cpu + overhead.get(CPU, 0), mem + overhead.get(MEMORY, 0)


HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)


def host_ports(spec: PodSpecView) -> list[HostPort]:
    """Every host port the pod asks for (app containers and sidecars), hostIP defaulting
    to 0.0.0.0 and protocol to TCP."""
    containers = spec.containers + tuple(c for c in spec.init_containers if c.is_sidecar)
    return [(port.host_ip or "0.0.0.0", port.protocol, port.host_port)
            for container in containers for port in container.ports if port.host_port > 0]


def ports_conflict(wanted: Iterable[HostPort], used: Iterable[HostPort]) -> bool:
    """True when a wanted port is taken: same protocol and port, and the same host IP or
    either side listening on 0.0.0.0."""
    used_list = list(used)
    for ip, proto, port in wanted:
        for uip, uproto, uport in used_list:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def pod_uid(pod: PodView) -> str:
    """The pod's uid, or ``namespace/name`` for an object without one."""
    return pod.metadata.uid or "/".join(pod.key)


def tolerates(toleration: TolerationView, taint: TaintView) -> bool:
    """Kubernetes ``Toleration.ToleratesTaint``: effects match (an empty toleration
    effect matches all), keys match (an empty key with Exists matches all), and with
    Equal (the default) the values are equal."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator == "Equal":
        return toleration.value == taint.value
    return False


def tolerated(taint: TaintView, pod_tolerations: Iterable[TolerationView]) -> bool:
    return any(tolerates(t, taint) for t in pod_tolerations)
