"""TaintToleration: NoSchedule / NoExecute taints must be tolerated (filter); nodes with
fewer untolerated PreferNoSchedule taints score higher."""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, Status, default_normalize
from typing import Iterable

from ...api.views import PodView, TaintView, TolerationView
from ..podutil import tolerated

NAME = "TaintToleration"
FILTER_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated_reason(taint: TaintView) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def first_untolerated(taints: Iterable[TaintView], pod_tolerations: Iterable[TolerationView]
                      ) -> TaintView | None:
    """The first NoSchedule / NoExecute taint (in node order) no toleration matches."""
    tolerations = tuple(pod_tolerations)
    for taint in taints:
        if taint.effect in FILTER_EFFECTS and not tolerated(taint, tolerations):
            return taint
    return None


def fits(pod: PodView, node: NodeInfo) -> Status | None:
    taint = first_untolerated(node.taints, pod.spec.tolerations)
    return None if taint is None else Status.unresolvable(untolerated_reason(taint))


def prefer_no_schedule_count(pod: PodView, node: NodeInfo) -> int:
    """How many PreferNoSchedule taints the pod does not tolerate (only tolerations with
    effect PreferNoSchedule or empty count, as in Kubernetes)."""
    usable = [t for t in pod.spec.tolerations if t.effect in ("", "PreferNoSchedule")]
    return sum(1 for taint in node.taints
               if taint.effect == "PreferNoSchedule" and not tolerated(taint, usable))


class TaintToleration:
    name = NAME

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(pod, node)

    def score(self, state: CycleState, pod: PodView, node: NodeInfo) -> int:
        return prefer_no_schedule_count(pod, node)

    def normalize(self, state: CycleState, pod: PodView, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
