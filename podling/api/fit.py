"""Pure facts about whether a pod fits a node, shared by whoever must decide placement.

* requests: a pod's effective resource request (Kubernetes ``PodRequests``) as integers —
  ``cpu`` in millicores, ``memory`` / ``ephemeral-storage`` in bytes, anything else in whole
  units, rounded up;
* node affinity: ``spec.nodeSelector`` and the required node affinity against a node's labels
  (and ``metadata.name`` for matchFields), with the operators In, NotIn, Exists, DoesNotExist,
  Gt and Lt; required terms are ORed, a term ANDs its requirements, an empty or malformed
  term matches nothing.

Nothing here does I/O or mutates its arguments.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .quantity import QuantityError, parse_quantity
from .types import Obj

Resources = dict[str, int]

CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"
TERMINAL_PHASES = ("Succeeded", "Failed")


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


def container_requests(container: Obj) -> Resources:
    """A container's requests; a resource with only a limit requests the limit (as the
    API server's defaulting would have set it)."""
    resources = container.get("resources") or {}
    out = resource_list(resources.get("limits"))
    out.update(resource_list(resources.get("requests")))
    return out


def is_sidecar(container: Obj) -> bool:
    """An init container with ``restartPolicy: Always`` keeps running beside the app."""
    return container.get("restartPolicy") == "Always"


def pod_requests(pod: Obj) -> Resources:
    """The larger of (app containers + sidecars) and, for each init container, its request
    plus the sidecars started before it; plus ``spec.overhead``. Zero amounts are dropped."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for container in spec.get("containers") or []:
        _add(total, container_requests(container))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for container in spec.get("initContainers") or []:
        requests = container_requests(container)
        if is_sidecar(container):
            _add(sidecars, requests)
            _max(init_peak, sidecars)
        else:
            step = dict(sidecars)
            _add(step, requests)
            _max(init_peak, step)
    _add(total, sidecars)
    _max(total, init_peak)
    _add(total, resource_list(spec.get("overhead")))
    return {name: value for name, value in total.items() if value}


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


# -- node affinity -----------------------------------------------------------------------------


def _int(text: Any) -> int | None:
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


def term_matches(term: Obj, labels: Mapping[str, str], name: str) -> bool:
    """A NodeSelectorTerm: every label expression and every field (``metadata.name`` with
    In / NotIn only) must match; a term with neither matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    if not all(requirement_matches(r, labels) for r in expressions):
        return False
    field_set = {"metadata.name": name}
    return all(r.get("key") == "metadata.name" and r.get("operator") in ("In", "NotIn")
               and requirement_matches(r, field_set) for r in fields)


def node_affinity(pod: Obj) -> Obj:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def matches_node_selector(pod: Obj, labels: Mapping[str, str]) -> bool:
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def matches_required_affinity(pod: Obj, labels: Mapping[str, str], name: str) -> bool:
    required = node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(term, labels, name)
               for term in required.get("nodeSelectorTerms") or [])


def matches_node(pod: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity against a Node object."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    return matches_node_selector(pod, labels) and \
        matches_required_affinity(pod, labels, meta.get("name") or "")
