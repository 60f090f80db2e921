"""NodeName: a pod that names a node fits only that node."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status
from ..podutil import Obj, node_name_of

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def fits(pod: Obj, node: NodeInfo) -> Status | None:
    """None when ``spec.nodeName`` is empty or equals the node's name."""
    wanted = node_name_of(pod)
    if not wanted or wanted == node.name:
        return None
    return Status.unresolvable(REASON)


class NodeName:
    name = NAME

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        return fits(pod, node)
