"""NodeResourcesFit (filter + LeastAllocated score) and NodeResourcesBalancedAllocation.

Fit (Kubernetes ``fitsRequest``): one more pod must not exceed ``allocatable.pods``
(``Too many pods``); every resource the pod requests (> 0) must fit in allocatable minus
what the node's pods already request (``Insufficient <resource>``). A node may fail for
several resources at once; each reason counts in the FailedScheduling histogram.
"""

from __future__ import annotations

from ..framework import MAX_NODE_SCORE, CycleState, NodeInfo, PodInfo, Status
from ...api.views import PodView
from ..podutil import CPU, MEMORY, PODS

FIT = "NodeResourcesFit"
BALANCED = "NodeResourcesBalancedAllocation"
TOO_MANY_PODS = "Too many pods"
_FIRST = (CPU, MEMORY)


def insufficient(requests: dict[str, int], node: NodeInfo) -> list[str]:
    """The fit failure reasons, ``Too many pods`` first, then cpu, memory, others."""
    reasons: list[str] = []
    if len(node.pods) + 1 > node.allowed_pods:
        reasons.append(TOO_MANY_PODS)
    order = [r for r in _FIRST if r in requests] + sorted(r for r in requests
                                                          if r not in _FIRST and r != PODS)
    for resource in order:
        want = requests[resource]
        free = node.allocatable.get(resource, 0) - node.requested.get(resource, 0)
        if want > 0 and want > free:
            reasons.append(f"Insufficient {resource}")
    return reasons


def fits(pod: PodView | PodInfo, node: NodeInfo) -> Status | None:
    info = pod if isinstance(pod, PodInfo) else PodInfo.of(pod)
    reasons = insufficient(info.requests, node)
    return Status.unschedulable(*reasons) if reasons else None


def least_allocated(info: PodInfo, node: NodeInfo) -> int:
    """Mean over cpu and memory of free-after-placement / allocatable × 100, using the
    non-zero requests (100m / 200Mi for containers that request nothing)."""
    total = 0
    for i, resource in enumerate(_FIRST):
        capacity = node.allocatable.get(resource, 0)
        used = node.non_zero_requested[i] + info.non_zero[i]
        if capacity > 0 and used <= capacity:
            total += (capacity - used) * MAX_NODE_SCORE // capacity
    return total // len(_FIRST)


def balanced_allocation(info: PodInfo, node: NodeInfo) -> int:
    """(1 − standard deviation of the cpu and memory fractions) × 100: nodes whose cpu
    and memory would be used evenly score higher."""
    fractions = []
    for resource in _FIRST:
        capacity = node.allocatable.get(resource, 0)
        used = node.requested.get(resource, 0) + info.requests.get(resource, 0)
        fractions.append(min(1.0, used / capacity) if capacity > 0 else 1.0)
    std = abs(fractions[0] - fractions[1]) / 2
    return int((1 - std) * MAX_NODE_SCORE)


class NodeResourcesFit:
    name = FIT

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(state.pod_info, node)

    def score(self, state: CycleState, pod: PodView, node: NodeInfo) -> int:
        return least_allocated(state.pod_info, node)

    def normalize(self, state: CycleState, pod: PodView, scores: dict[str, int]) -> None:
        pass  # already 0..100


class NodeResourcesBalancedAllocation:
    name = BALANCED

    def score(self, state: CycleState, pod: PodView, node: NodeInfo) -> int:
        return balanced_allocation(state.pod_info, node)

    def normalize(self, state: CycleState, pod: PodView, scores: dict[str, int]) -> None:
        pass
