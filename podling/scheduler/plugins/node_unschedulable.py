"""NodeUnschedulable: a cordoned node (``spec.unschedulable``) takes only pods that
tolerate ``node.kubernetes.io/unschedulable:NoSchedule``."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status
from ...api.views import PodView, TaintView
from ..podutil import tolerated

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
TAINT_KEY = "node.kubernetes.io/unschedulable"
UNSCHEDULABLE_TAINT = TaintView(key=TAINT_KEY, effect="NoSchedule")


def fits(pod: PodView, node: NodeInfo) -> Status | None:
    """None unless the node is cordoned and the pod does not tolerate that."""
    if node.node is None or not node.node.unschedulable:
        return None
    if tolerated(UNSCHEDULABLE_TAINT, pod.spec.tolerations):
        return None
    return Status.unresolvable(REASON)


class NodeUnschedulable:
    name = NAME

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(pod, node)
