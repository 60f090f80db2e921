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
from ..framework import CycleState, NodeInfo, Status, default_normalize
from ..podutil import Obj

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"


def term_matches(term: Obj, node: NodeInfo) -> bool:
    """A NodeSelectorTerm against the node's labels and name (see :mod:`podling.api.fit`)."""
    return fit.term_matches(term, node.labels, node.name)


def matches_selector(pod: Obj, node: NodeInfo) -> bool:
    return fit.matches_node_selector(pod, node.labels)


def matches_required(pod: Obj, node: NodeInfo) -> bool:
    return fit.matches_required_affinity(pod, node.labels, node.name)


def fits(pod: Obj, node: NodeInfo) -> Status | None:
    """None when the node satisfies both the nodeSelector and the required affinity."""
    if matches_selector(pod, node) and matches_required(pod, node):
        return None
    return Status.unresolvable(REASON)


def preferred_score(pod: Obj, node: NodeInfo) -> int:
    """The sum of the weights of the preferred terms the node matches."""
    terms = fit.node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(int(t.get("weight") or 0) for t in terms
               if t.get("weight") and term_matches(t.get("preference") or {}, node))


class NodeAffinity:
    name = NAME

    def filter(self, state: CycleState, pod: Obj, node: NodeInfo) -> Status | None:
        return fits(pod, node)

    def score(self, state: CycleState, pod: Obj, node: NodeInfo) -> int:
        return preferred_score(pod, node)

    def normalize(self, state: CycleState, pod: Obj, scores: dict[str, int]) -> None:
        default_normalize(scores)
