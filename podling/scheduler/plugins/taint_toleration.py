"""TaintToleration: NoSchedule / NoExecute taints must be tolerated (filter); nodes with
fewer untolerated PreferNoSchedule taints score higher."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status, default_normalize
from ..podutil import Obj, tolerated, tolerations

NAME = "TaintToleration"
FILTER_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated_reason(taint: Obj) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


def first_untolerated(taints: list[Obj], pod_tolerations: list[Obj]) -> Obj | None:
    """The first NoSchedule / NoExecute taint (in node order) no toleration matches."""
    for taint in taints:
        if taint.get("effect") in FILTER_EFFECTS and not tolerated(taint, pod_tolerations):
            return taint
    return None


def fits(pod: Obj, node: NodeInfo) -> Status | None:
    taint = first_untolerated(node.taints, tolerations(pod))
    return None if taint is None else Status.unresolvable(untolerated_reason(taint))


def prefer_no_schedule_count(pod: Obj, node: NodeInfo) -> int:
    """How many PreferNoSchedule taints the pod does not tolerate (only tolerations with
    effect PreferNoSchedule or empty count, as in Kubernetes)."""
    usable = [t for t in tolerations(pod) if (t.get("effect") or "PreferNoSchedule")
              == "PreferNoSchedule"]
    return sum(1 for taint in node.taints
               if taint.get("effect") == "PreferNoSchedule" and not tolerated(taint, usable))


class TaintToleration:
    name = NAME

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        return fits(pod, node)

    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> int:
        return prefer_no_schedule_count(pod, node)

    def normalize(self, state: CycleState, pod: Obj, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
