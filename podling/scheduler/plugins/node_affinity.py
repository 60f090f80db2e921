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

from typing import Mapping

from ..framework import CycleState, NodeInfo, Status, default_normalize
from ..podutil import Obj

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"


def _int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def requirement_matches(req: Obj, labels: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement against a label (or field) set."""
    key, op = req.get("key") or "", req.get("operator") or ""
    values = [str(v) for v in req.get("values") or []]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if len(values) != 1 or not present:
            return False
        have, want = _int(labels[key]), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Obj, node: NodeInfo) -> bool:
    """A NodeSelectorTerm: all expressions on labels and all fields must match."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    if not all(requirement_matches(r, node.labels) for r in expressions):
        return False
    field_set = {"metadata.name": node.name}
    return all(r.get("key") == "metadata.name" and r.get("operator") in ("In", "NotIn")
               and requirement_matches(r, field_set) for r in fields)


def node_affinity(pod: Obj) -> Obj:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def matches_selector(pod: Obj, node: NodeInfo) -> bool:
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    return all(node.labels.get(k) == v for k, v in selector.items())


def matches_required(pod: Obj, node: NodeInfo) -> bool:
    required = node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def fits(pod: Obj, node: NodeInfo) -> Status | None:
    """None when the node satisfies both the nodeSelector and the required affinity."""
    if matches_selector(pod, node) and matches_required(pod, node):
        return None
    return Status.unresolvable(REASON)


def preferred_score(pod: Obj, node: NodeInfo) -> int:
    """The sum of the weights of the preferred terms the node matches."""
    terms = node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
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
