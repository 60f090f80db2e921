"""NodeAffinity: ``spec.nodeSelector`` and required node affinity filter; preferred node
affinity scores (the sum of the weights of the matching terms, normalised to 0..100).

Matching rules (Kubernetes ``nodeaffinity`` helpers):
* nodeSelector: every label must be present with exactly that value;
* required terms are ORed; a term ANDs its matchExpressions and matchFields; a term with
  neither matches nothing;
* operators In, NotIn (also true when the label is absent), Exists, DoesNotExist,
  Gt / Lt (the label must be an integer compared with the single integer value);
* matchFields supports ``metadata.name`` with In / NotIn;
* a malformed requirement makes its term match nothing.
"""

from __future__ import annotations

from ...api import fit
from ...api.views import NodeSelectorTermView, PodView
from ..framework import CycleState, NodeInfo, Status, default_normalize

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"


def term_matches(term: NodeSelectorTermView, node: NodeInfo) -> bool:
    """A NodeSelectorTerm against the node's labels and name (see :mod:`podling.api.fit`)."""
    return fit.term_matches(term, node.labels, node.name)


def matches_selector(pod: PodView, node: NodeInfo) -> bool:
    return fit.selector_matches(pod.spec, node.labels)


def matches_required(pod: PodView, node: NodeInfo) -> bool:
    return fit.required_affinity_matches(pod.spec, node.labels, node.name)


def fits(pod: PodView, node: NodeInfo) -> Status | None:
    """None when the node satisfies both the nodeSelector and the required affinity."""
    if matches_selector(pod, node) and matches_required(pod, node):
        return None
    return Status.unresolvable(REASON)


def preferred_score(pod: PodView, node: NodeInfo) -> int:
    """The sum of the weights of the preferred terms the node matches."""
    return sum(t.weight for t in pod.spec.node_affinity.preferred
               if t.weight and term_matches(t.preference, node))


class NodeAffinity:
    name = NAME

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None:
        return fits(pod, node)

    def score(self, state: CycleState, pod: PodView, node: NodeInfo) -> int:
        return preferred_score(pod, node)

    def normalize(self, state: CycleState, pod: PodView, scores: dict[str, int]) -> None:
        default_normalize(scores)
