"""NodeUnschedulable: a cordoned node (``spec.unschedulable``) takes only pods that
tolerate ``node.kubernetes.io/unschedulable:NoSchedule``."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status
from ..podutil import Obj, tolerated, tolerations

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
TAINT_KEY = "node.kubernetes.io/unschedulable"
UNSCHEDULABLE_TAINT: Obj = {"key": TAINT_KEY, "effect": "NoSchedule"}


def fits(pod: Obj, node: NodeInfo) -> Status | None:
    """None unless the node is cordoned and the pod does not tolerate that."""
    if not ((node.node or {}).get("spec") or {}).get("unschedulable"):
        return None
    if tolerated(UNSCHEDULABLE_TAINT, tolerations(pod)):
        return None
    return Status.unresolvable(REASON)


class NodeUnschedulable:
    name = NAME

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        return fits(pod, node)
