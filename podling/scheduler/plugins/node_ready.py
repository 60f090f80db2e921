"""NodeReady: a node whose Ready condition is not True carries, as Kubernetes' node
lifecycle controller would add, the taint ``node.kubernetes.io/not-ready`` (Ready=False)
or ``node.kubernetes.io/unreachable`` (Ready=Unknown) with effect NoSchedule.

podling has no lifecycle controller writing those taints, so this filter applies them at
scheduling time; it runs after TaintToleration, as the controller's taints come after the
node's own. A node that already carries the taint is left to TaintToleration.
"""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status
from ...api.views import NodeView, PodView, TaintView
from ..podutil import tolerated
from .taint_toleration import untolerated_reason

NAME = "NodeReady"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def ready_status(node: NodeView) -> str:
    """The Ready condition's status: "True", "False" or "Unknown" (also when absent)."""
    return node.ready_status or "Unknown"


def readiness_taints(node: NodeView) -> list[TaintView]:
    """The NoSchedule taint the lifecycle controller would put on ``node`` (or none)."""
    status = ready_status(node)
    if status == "True":
        return []
    key = NOT_READY if status == "False" else UNREACHABLE
    return [TaintView(key=key, effect="NoSchedule")]


def fits(pod: PodView, node: NodeInfo) -> Status | None:
    """None when the node is Ready or the pod tolerates its readiness taint."""
    if node.node is None:
        return None
    own = {(t.key, t.effect) for t in node.taints}
    for taint in readiness_taints(node.node):
        if (taint.key, taint.effect) in own:
            continue
        if not tolerated(taint, pod.spec.tolerations):
            return Status.unresolvable(untolerated_reason(taint))
    return None


class NodeReady:
    name = NAME

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(pod, node)
