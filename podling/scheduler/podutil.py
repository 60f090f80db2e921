"""Pure helpers that read scheduling facts out of Pod and Node objects (JSON dicts).

Resource amounts are integers: ``cpu`` in millicores, ``memory`` / ``ephemeral-storage`` in
bytes, every other resource (``pods``, extended resources) in whole units, rounded up.
Nothing here does I/O or mutates its arguments.
"""

from __future__ import annotations

from typing import Iterable

from ..api.fit import (CPU, MEMORY, PODS, Obj, Resources,  # noqa: F401
                       container_requests, is_sidecar, pod_requests, resource_list)
from ..api.pods import TERMINAL_PHASES, is_terminal  # noqa: F401

# Kubernetes' defaults for containers without requests, used by scoring only
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


def non_zero_requests(pod: Obj) -> tuple[int, int]:
    """(milli cpu, memory bytes) for scoring: containers without a cpu / memory request
    count as 100m / 200Mi (Kubernetes' ``GetNonzeroRequests``)."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for container in spec.get("containers") or []:
        requests = container_requests(container)
        cpu += requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST
        mem += requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST
    for container in spec.get("initContainers") or []:
        requests = container_requests(container)
        cpu = max(cpu, requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST)
        mem = max(mem, requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST)
    overhead = resource_list(spec.get("overhead"))
    return cpu + overhead.get(CPU, 0), mem + overhead.get(MEMORY, 0)


HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)


def host_ports(pod: Obj) -> list[HostPort]:
    """Every host port the pod asks for (app containers and sidecars), hostIP defaulting
    to 0.0.0.0 and protocol to TCP."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or [] if is_sidecar(c)]
    out: list[HostPort] = []
    for container in containers:
        for port in container.get("ports") or []:
            host_port = int(port.get("hostPort") or 0)
            if host_port > 0:
                out.append((port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP",
                            host_port))
    return out


def ports_conflict(wanted: Iterable[HostPort], used: Iterable[HostPort]) -> bool:
    """True when a wanted port is taken: same protocol and port, and the same host IP or
    either side listening on 0.0.0.0."""
    used_list = list(used)
    for ip, proto, port in wanted:
        for uip, uproto, uport in used_list:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def pod_key(pod: Obj) -> tuple[str, str]:
    m = meta(pod)
    return (m.get("namespace") or "", m.get("name") or "")


def pod_uid(pod: Obj) -> str:
    m = meta(pod)
    return m.get("uid") or "/".join(pod_key(pod))


def node_name_of(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def controller_uid(pod: Obj) -> str:
    """The uid of the pod's controlling owner, or ""."""
    for ref in meta(pod).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid") or ""
    return ""


def tolerations(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("tolerations") or [])


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes ``Toleration.ToleratesTaint``: effects match (an empty toleration
    effect matches all), keys match (an empty key with Exists matches all), and with
    Equal (the default) the values are equal."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(taint: Obj, pod_tolerations: Iterable[Obj]) -> bool:
    return any(tolerates(t, taint) for t in pod_tolerations)
