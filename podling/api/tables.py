"""Server-side Tables (``meta.k8s.io/v1`` Table), the way kubectl's human output wants them.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns the server sends; without a Table it falls back to ``NAME AGE``. The column sets and
cells follow Kubernetes' printers (pkg/printers/internalversion/printers.go) for pods, nodes,
namespaces, configmaps, secrets, serviceaccounts, events and leases, rendered as the API server does (always
"wide": kubectl hides ``priority: 1`` columns itself unless ``-o wide``). Any other resource
gets the generic ``Name`` / ``Created At`` table of the API server's default table convertor.

Pure functions: the caller passes ``now`` so ages are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from podling.api.tables_pod import parse_time, pod_row, since
from podling.util.timefmt import format_rfc3339
from podling.util.jsoncopy import clone

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

_NAME_DESC = "Name must be unique within a namespace; the name of the object."
_AGE_DESC = "Time since the object was created (metadata.creationTimestamp)."

Row = tuple[list[Any], list[dict[str, str]] | None]  # (cells, row conditions)


def _col(name: str, description: str, *, priority: int = 0, fmt: str = "",
         type_: str = "string") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


_NAME_COL = _col("Name", _NAME_DESC, fmt="name")
_AGE_COL = _col("Age", _AGE_DESC)

COLUMNS: dict[str, list[dict[str, Any]]] = {
    "pods": [
        _NAME_COL,
        _col("Ready", "Ready containers of the pod out of all its containers."),
        _col("Status", "The aggregate status of the pod's containers."),
        _col("Restarts", "Container restarts, and how long ago the last one happened."),
        _AGE_COL,
        _col("IP", "The pod's IP address (status.podIPs[0]).", priority=1),
        _col("Node", "The node the pod is bound to (spec.nodeName).", priority=1),
        _col("Nominated Node", "The node preemption nominated for the pod.", priority=1),
        _col("Readiness Gates", "Readiness gates satisfied out of those declared.", priority=1),
    ],
    "nodes": [
        _NAME_COL,
        _col("Status", "Ready, NotReady or Unknown, and whether scheduling is disabled."),
        _col("Roles", "The roles of the node, from its node-role labels."),
        _AGE_COL,
        _col("Version", "The kubelet version the node reports."),
        _col("Internal-IP", "The node's first InternalIP address.", priority=1),
        _col("External-IP", "The node's first ExternalIP address.", priority=1),
        _col("OS-Image", "The operating system image the node reports.", priority=1),
        _col("Kernel-Version", "The kernel version the node reports.", priority=1),
        _col("Container-Runtime", "The container runtime and its version.", priority=1),
    ],
    "namespaces": [
        _NAME_COL,
        _col("Status", "The phase of the namespace (Active or Terminating)."),
        _AGE_COL,
    ],
    "events": [
        _col("Last Seen", "Time since the event was last observed."),
        _col("Type", "Normal or Warning."),
        _col("Reason", "Why the event happened, in CamelCase."),
        _col("Object", "The object the event is about, as kind/name."),
        _col("Subobject", "The part of the object the event is about (fieldPath).", priority=1),
        _col("Source", "The component (and host) that reported the event.", priority=1),
        _col("Message", "A human-readable description of the event."),
        _col("First Seen", "Time since the event was first observed.", priority=1),
        _col("Count", "How many times the event has occurred.", priority=1),
        _col("Name", _NAME_DESC, priority=1, fmt="name"),
    ],
    "configmaps": [
        _NAME_COL,
        _col("Data", "How many keys the ConfigMap holds (data and binaryData)."),
        _AGE_COL,
    ],
    "secrets": [
        _NAME_COL,
        _col("Type", "The type of the Secret (Opaque, kubernetes.io/tls, ...)."),
        _col("Data", "How many keys the Secret's data holds."),
        _AGE_COL,
    ],
    "serviceaccounts": [
        _NAME_COL,
        _col("Secrets", "How many secrets the ServiceAccount lists."),
        _AGE_COL,
    ],
    "leases": [
        _NAME_COL,
        _col("Holder", "The identity of the current holder of the lease."),
        _AGE_COL,
    ],
    **{binding: [
        _NAME_COL,
        _col("Role", "The role the binding grants, as kind/name."),
        _AGE_COL,
        _col("Users", "The users the binding names.", priority=1),
        _col("Groups", "The groups the binding names.", priority=1),
        _col("ServiceAccounts", "The service accounts the binding names, as namespace/name.",
             priority=1),
    ] for binding in ("rolebindings", "clusterrolebindings")},
}

DEFAULT_COLUMNS = [_NAME_COL, _col("Created At", "When the object was created.", type_="date")]


def table(resource: str, objects: list[dict[str, Any]], *, now: datetime,
          include_object: str = "Metadata", resource_version: str = "",
          with_columns: bool = True) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects`` (JSON dicts) of the plural ``resource``.

    ``include_object`` is the request's ``includeObject``: ``"None"`` (row object null),
    ``"Metadata"`` or ``""`` (a PartialObjectMetadata, the default) or ``"Object"`` (the full
    object); anything else raises ValueError with the API server's BadRequest message.
    ``with_columns=False`` sends ``columnDefinitions: null`` (watch events after the first).
    The objects are not modified; the rows share parts of them (each object's metadata, or
    the object itself with ``"Object"``): the table is for encoding, not for changing.
    """
    if include_object not in INCLUDE_OBJECT_VALUES + ("",):
        raise ValueError(f'unrecognized includeObject value: "{include_object}"')
    printer = _PRINTERS.get(resource, _default_row)
    rows = []
    for obj in objects:
        cells, conditions = printer(obj, now)
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = clone(conditions)
        row["object"] = _row_object(obj, include_object)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": clone(columns(resource)) if with_columns else None,
        "rows": rows,
    }


def columns(resource: str) -> list[dict[str, Any]]:
    """The column definitions of ``resource``'s Table (shared; copy before changing)."""
    return COLUMNS.get(resource, DEFAULT_COLUMNS)


def _row_object(obj: Mapping[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return dict(obj)
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    return since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _name(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def node_status(node: Mapping[str, Any]) -> str:
    """The STATUS of a node: its Ready condition (``Ready``, ``NotReady``, or ``Unknown`` when
    there is none), plus ``,SchedulingDisabled`` when ``spec.unschedulable``."""
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in reversed(conditions) if c.get("type") == "Ready"), None)
    if ready is None:
        status = ["Unknown"]
    else:
        status = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if (node.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(labels: Mapping[str, str] | None) -> str:
    """Sorted roles from ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role``."""
    roles = set()
    for key, value in (labels or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Mapping[str, Any], kind: str) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    return next((a.get("address") or "" for a in addresses if a.get("type") == kind), "<none>")


def _node_row(node: Mapping[str, Any], now: datetime) -> Row:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    labels = (node.get("metadata") or {}).get("labels")
    return [
        _name(node), node_status(node), node_roles(labels), _age(node, now),
        info.get("kubeletVersion") or "", _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"), info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ], None


def _namespace_row(ns: Mapping[str, Any], now: datetime) -> Row:
    return [_name(ns), (ns.get("status") or {}).get("phase") or "", _age(ns, now)], None


def _lease_row(lease: Mapping[str, Any], now: datetime) -> Row:
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return [_name(lease), holder, _age(lease, now)], None


def _config_map_row(cm: Mapping[str, Any], now: datetime) -> Row:
    count = sum(len(cm.get(f) or {}) for f in ("data", "binaryData"))
    return [_name(cm), count, _age(cm, now)], None


def _secret_row(secret: Mapping[str, Any], now: datetime) -> Row:
    return [_name(secret), secret.get("type") or "", len(secret.get("data") or {}),
            _age(secret, now)], None


def _service_account_row(sa: Mapping[str, Any], now: datetime) -> Row:
    return [_name(sa), len(sa.get("secrets") or []), _age(sa, now)], None


def event_source(event: Mapping[str, Any]) -> str:
    """``component, host`` (``component`` alone without a host), falling back to
    reportingComponent / reportingInstance when ``source`` lacks them."""
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_row(event: Mapping[str, Any], now: datetime) -> Row:
    first_time = parse_time(event.get("firstTimestamp")) or parse_time(event.get("eventTime"))
    first_seen = since(first_time, now)
    last_time = parse_time(event.get("lastTimestamp"))
    last_seen = since(last_time, now) if last_time is not None else first_seen
    count = event.get("count") or 0
    series = event.get("series")
    if series is not None:
        last_seen = since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = event.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last_seen, event.get("type") or "", event.get("reason") or "", target,
        involved.get("fieldPath") or "", event_source(event),
        (event.get("message") or "").strip(), first_seen, int(count), _name(event),
    ], None


def _default_row(obj: Mapping[str, Any], now: datetime) -> Row:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return [_name(obj), format_rfc3339(created) if created else "0001-01-01T00:00:00Z"], None


def _binding_row(binding: Mapping[str, Any], now: datetime) -> Row:
    ref = binding.get("roleRef") or {}
    subjects = [s for s in binding.get("subjects") or [] if isinstance(s, dict)]

    def names(kind: str) -> str:
        return ", ".join(
            (f"{s.get('namespace') or ''}/{s.get('name') or ''}" if kind == "ServiceAccount"
             else str(s.get("name") or "")) for s in subjects if s.get("kind") == kind)
    return [_name(binding), f"{ref.get('kind') or ''}/{ref.get('name') or ''}",
            _age(binding, now), names("User"), names("Group"), names("ServiceAccount")], None


_PRINTERS: dict[str, Callable[[Mapping[str, Any], datetime], Row]] = {
    "rolebindings": _binding_row,
    "clusterrolebindings": _binding_row,
    "pods": pod_row,
    "nodes": _node_row,
    "namespaces": _namespace_row,
    "events": _event_row,
    "leases": _lease_row,
    "configmaps": _config_map_row,
    "secrets": _secret_row,
    "serviceaccounts": _service_account_row,
}
