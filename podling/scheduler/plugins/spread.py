"""Spread (like Kubernetes' SelectorSpread): prefer nodes running fewer pods of the same
group. A pod's group is its controller (same namespace and controlling owner uid); a pod
without a controller is grouped with pods of the same namespace and the same non-empty
label set. podling has no Services or ReplicaSets to take selectors from, hence this rule.
Score: ``100 × (max − count) / max`` over the feasible nodes (all 100 when max is 0).
"""

from __future__ import annotations

from ..framework import CycleState, NodeInfo, PodInfo, default_normalize
from ...api.views import PodView

NAME = "Spread"


def same_group(a: PodInfo, b: PodInfo) -> bool:
    """The grouping rule spelled out (``PodInfo.group`` is its key)."""
    return a.group is not None and a.group == b.group


def group_count(info: PodInfo, node: NodeInfo) -> int:
    """How many pods of ``info``'s group the node runs (the pod itself excluded); O(1)
    through the NodeInfo's per-group counts."""
    group = info.group
    if group is None:
        return 0
    count = node.groups.get(group, 0)
    return count - 1 if info.uid in node.pods else count


class Spread:
    name = NAME

    def score(self, state: CycleState, pod: PodView, node: NodeInfo) -> int:
        return group_count(state.pod_info, node)

    def normalize(self, state: CycleState, pod: PodView, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
