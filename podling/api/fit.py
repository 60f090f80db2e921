"""Pure facts about whether a pod fits a node, shared by whoever must decide placement.

* requests: a pod's effective resource request (Kubernetes ``PodRequests``) as integers —
  ``cpu`` in millicores, ``memory`` / ``ephemeral-storage`` in bytes, anything else in whole
  units, rounded up;
* node affinity: ``spec.nodeSelector`` and the required node affinity against a node's labels
  (and ``metadata.name`` for matchFields), with the operators In, NotIn, Exists, DoesNotExist,
  Gt and Lt; required terms are ORed, a term ANDs its requirements, an empty or malformed
  term matches nothing.

The rules take the typed views (:mod:`podling.api.views`); ``pod_requests``,
``requirement_matches`` and ``matches_node`` also take JSON objects for
callers not yet on the views. Nothing here does I/O or mutates its arguments.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .quantity import QuantityError, parse_quantity
from .types import ObjMap
from .views import (ContainerView, NodeSelectorRequirementView, NodeSelectorTermView, NodeView,
                    PodSpecView, PodView)

Resources = dict[str, int]

CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"
__all__ = ["CPU", "EPHEMERAL_STORAGE", "MEMORY", "PODS", "Resources"]


# -- resources ---------------------------------------------------------------------------------


def amount(resource: str, value: Any) -> int:
    """One quantity as an integer in the unit described above; 0 when unparsable."""
    try:
        q = parse_quantity(value)
    except QuantityError:
        return 0
    if resource == CPU:
        q = q * 1000
    return max(0, math.ceil(q))


def resource_list(values: Mapping[str, Any] | None) -> Resources:
    """A ``ResourceList`` (``{"cpu": "500m"}``) as integers."""
    return {name: amount(name, value) for name, value in (values or {}).items()}


def _add(total: Resources, more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def _max(total: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        total[name] = max(total.get(name, 0), value)


def container_requests(container: ContainerView) -> Resources:
    """A container's requests; a resource with only a limit requests the limit (as the
    API server's defaulting would have set it)."""
    out = resource_list(container.resources.limits)
    out.update(resource_list(container.resources.requests))
    return out


def spec_requests(spec: PodSpecView) -> Resources:
    """The larger of (app containers + sidecars) and, for each init container, its request
    plus the sidecars started before it; plus ``spec.overhead``. Zero amounts are dropped."""
    total: Resources = {}
    for container in spec.containers:
        _add(total, container_requests(container))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for container in spec.init_containers:
        requests = container_requests(container)
        if container.is_sidecar:
            _add(sidecars, requests)
            _max(init_peak, sidecars)
        else:
            step = dict(sidecars)
            _add(step, requests)
            _max(init_peak, step)
    _add(total, sidecars)
    _max(total, init_peak)
    _add(total, resource_list(spec.overhead))
    return {name: value for name, value in total.items() if value}


def pod_requests(pod: ObjMap) -> Resources:
    """:func:`spec_requests` of a Pod object (for callers not yet on the views)."""
    return spec_requests(PodView.from_obj(pod).spec)


# -- node affinity -----------------------------------------------------------------------------


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def requirement_holds(req: NodeSelectorRequirementView, labels: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement against a label (or field) set."""
    key, op, values = req.key, req.operator, req.values
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


def requirement_matches(req: ObjMap, labels: Mapping[str, str]) -> bool:
    """:func:`requirement_holds` for a requirement as a JSON object."""
    return requirement_holds(NodeSelectorRequirementView.from_obj(req), labels)


def term_matches(term: NodeSelectorTermView, labels: Mapping[str, str], name: str) -> bool:
    """A NodeSelectorTerm: every label expression and every field (``metadata.name`` with
    In / NotIn only) must match; a term with neither matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    if not all(requirement_holds(r, labels) for r in term.match_expressions):
        return False
    field_set = {"metadata.name": name}
    return all(r.key == "metadata.name" and r.operator in ("In", "NotIn")
               and requirement_holds(r, field_set) for r in term.match_fields)


def selector_matches(spec: PodSpecView, labels: Mapping[str, str]) -> bool:
    """Every ``spec.nodeSelector`` label is present with exactly that value."""
    return all(labels.get(k) == v for k, v in spec.node_selector.items())


def required_affinity_matches(spec: PodSpecView, labels: Mapping[str, str], name: str) -> bool:
    """No required node affinity, or one of its terms matches (none: nothing matches)."""
    required = spec.node_affinity.required
    if required is None:
        return True
    return any(term_matches(term, labels, name) for term in required)


def spec_matches_node(spec: PodSpecView, node: NodeView) -> bool:
    """nodeSelector and required node affinity against a Node."""
    return selector_matches(spec, node.labels) and \
        required_affinity_matches(spec, node.labels, node.name)


def matches_node(pod: ObjMap, node: ObjMap) -> bool:
    """:func:`spec_matches_node` for a Pod and a Node as JSON objects."""
    return spec_matches_node(PodView.from_obj(pod).spec, NodeView.from_obj(node))
