"""Admission of a pod bound to this node, as the kubelet's predicate admit handler does it.

A pod is admitted once, before its first sync (it never ran here). The checks, in the
kubelet's order, the first failure winning:

    sysctls    each of the pod's sysctls must be safe or allowed on this node, and fit its
               namespaces (:mod:`podling.agent.kuberuntime.sysctls`) ──▶ ``SysctlForbidden``,
               ``forbidden sysctl: "kernel.msgmax" not allowlisted``
    resources  one more pod must fit ``allocatable.pods``; each requested resource must fit in
               allocatable minus the requests of the other admitted, non-terminal pods
               ──▶ reason ``OutOf<resource>``, message
               ``Node didn't have enough resource: cpu, requested: 4000, used: 100, capacity: 2000``
    affinity   nodeSelector + required node affinity against the Node's labels
               ──▶ ``NodeAffinity``, ``Predicate NodeAffinity failed: node(s) didn't match
               Pod's node affinity/selector``
    host ports the pod's hostPorts must be free among the other admitted pods
               ──▶ ``NodePorts``, ``Predicate NodePorts failed: node(s) didn't have free ports
               for the requested pod ports``

A rejected pod gets ``phase: Failed``, the reason, and ``Pod was rejected: <message>``; the
Warning event carries the reason and the bare message. Everything here is pure and reads
the pods and the Node through their views (an unset ``hostIP`` is the wildcard 0.0.0.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from podling.agent.kuberuntime.sysctls import FORBIDDEN as SYSCTL_FORBIDDEN
from podling.agent.kuberuntime.sysctls import sysctl_problem
from podling.api.fit import (CPU, EPHEMERAL_STORAGE, MEMORY, PODS, resource_list, spec_matches_node,
                             spec_requests)
from podling.api.types import Obj
from podling.api.views import NodeView, PodView

REJECTED_PREFIX = "Pod was rejected: "
NODE_AFFINITY = "NodeAffinity"
NODE_AFFINITY_REASON = "node(s) didn't match Pod's node affinity/selector"
NODE_PORTS = "NodePorts"
NODE_PORTS_REASON = "node(s) didn't have free ports for the requested pod ports"
_NATIVE = (CPU, MEMORY, EPHEMERAL_STORAGE)


@dataclass(frozen=True)
class Rejection:
    reason: str  # e.g. "OutOfcpu", "NodeAffinity": the status reason and the event reason
    message: str  # the event message; the status message has REJECTED_PREFIX in front

    @property
    def status_message(self) -> str:
        return REJECTED_PREFIX + self.message

    def status(self, previous_start: str = "", *, start_time: str = "") -> Obj:
        """The pod status to write (merged over the existing one by the caller's patch);
        ``startTime`` is the pod's ``previous_start`` if it had one, else ``start_time``."""
        out: Obj = {"phase": "Failed", "reason": self.reason, "message": self.status_message}
        started = previous_start or start_time
        if started:
            out["startTime"] = started
        return out


def _insufficient(resource: str, *, requested: int, used: int, capacity: int) -> Rejection:
    return Rejection(f"OutOf{resource}",
                     f"Node didn't have enough resource: {resource}, requested: {requested}, "
                     f"used: {used}, capacity: {capacity}")


def _predicate(name: str, reason: str) -> Rejection:
    return Rejection(name, f"Predicate {name} failed: {reason}")


def resource_rejection(pod: PodView, allocatable: Mapping[str, Any],
                       others: list[PodView]) -> Rejection | None:
    """The first resource that does not fit: pods, then cpu, memory, ephemeral-storage, then
    other resources by name. A resource the pod requests that the node does not list at all
    is ignored unless it is a native one (the kubelet drops missing extended resources)."""
    free = resource_list(allocatable)
    if len(others) + 1 > free.get(PODS, 0):
        return _insufficient(PODS, requested=1, used=len(others), capacity=free.get(PODS, 0))
    wanted = spec_requests(pod.spec)
    used: dict[str, int] = {}
    for other in others:
        for name, value in spec_requests(other.spec).items():
            used[name] = used.get(name, 0) + value
    order = [r for r in _NATIVE if r in wanted] + \
        sorted(r for r in wanted if r not in _NATIVE and r != PODS and r in free)
    for resource in order:
        have, taken = free.get(resource, 0), used.get(resource, 0)
        if wanted[resource] > 0 and wanted[resource] > have - taken:
            return _insufficient(resource, requested=wanted[resource], used=taken,
                                 capacity=have)
    return None


HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)


def host_ports(pod: PodView) -> list[HostPort]:
    """The pod's (init containers' first) host ports; an unset hostIP is the wildcard
    0.0.0.0."""
    return [(p.host_ip or "0.0.0.0", p.protocol, p.host_port)
            for c in pod.spec.all_containers() for p in c.ports if p.host_port]


def ports_conflict(wanted: Iterable[HostPort], used: Iterable[HostPort]) -> bool:
    """Same protocol and port, and the same IP or either of them the wildcard."""
    used = list(used)
    return any(ip == uip or "0.0.0.0" in (ip, uip)
               for ip, proto, port in wanted for uip, uproto, uport in used
               if (proto, port) == (uproto, uport))


def admit(pod: PodView, node: NodeView, others: Iterable[PodView], *,
          unsafe_sysctls: tuple[str, ...] = ()) -> Rejection | None:
    """None when ``pod`` may run on ``node`` next to ``others`` (the pods admitted before;
    terminal ones and ``pod`` itself are skipped); else the first failed check.
    ``unsafe_sysctls``: the node's ``--allowed-unsafe-sysctls``."""
    problem = sysctl_problem(pod, unsafe_sysctls)
    if problem is not None:
        return Rejection(SYSCTL_FORBIDDEN, problem)
    uid = pod.metadata.uid
    active = [p for p in others if not p.status.terminal and p.metadata.uid != uid]
    allocatable = node.allocatable
    rejection = resource_rejection(pod, allocatable, active) if allocatable else None
    if rejection is not None:  # (a Node that reported no allocatable yet is not judged)
        return rejection
    if not spec_matches_node(pod.spec, node):
        return _predicate(NODE_AFFINITY, NODE_AFFINITY_REASON)
    wanted = host_ports(pod)
    if wanted and ports_conflict(wanted, (hp for p in active for hp in host_ports(p))):
        return _predicate(NODE_PORTS, NODE_PORTS_REASON)
    return None


def needs_admission(pod: PodView, has_sandbox: bool) -> bool:
    """A pod this node never started: no sandbox in the runtime and still Pending."""
    return not has_sandbox and pod.status.phase == "Pending" and not pod.metadata.deleting
