"""NodeName: a pod that names a node fits only that node."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status
from ...api.views import PodView

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def fits(pod: PodView, node: NodeInfo) -> Status | None:
    """None when ``spec.nodeName`` is empty or equals the node's name."""
    wanted = pod.spec.node_name
    if not wanted or wanted == node.name:
        return None
    return Status.unresolvable(REASON)


class NodeName:
    name = NAME

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(pod, node)
