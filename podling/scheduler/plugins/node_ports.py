"""NodePorts: the pod's host ports must be free on the node."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status
from ...api.views import PodView
from ..podutil import HostPort, host_ports, ports_conflict

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"


def fits(pod: PodView, node: NodeInfo, wanted: list[HostPort] | None = None
         ) -> Status | None:
    """None when none of the pod's hostPorts (``wanted``, computed from the pod when not
    given) collides with one used on the node."""
    ports = host_ports(pod.spec) if wanted is None else wanted
    if ports and ports_conflict(ports, node.used_ports):
        return Status.unschedulable(REASON)
    return None


class NodePorts:
    name = NAME

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(pod, node, state.pod_info.ports)
