"""The schema-driven checks behind strict decoding: unknown fields and JSON type errors.

:mod:`podling.api.decode` re-exports the public functions; see it for how the API server
combines them. The Go-specific knowledge the checks need lives here too: which integer
fields are int64, which fields hold ``resource.Quantity`` or ``intstr.IntOrString``, and the
Go type names that appear in decoder error messages.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from . import schema
from .configdata import base64_problem
from .timestamps import normalize_time

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
FIELDS_V1 = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"
OPAQUE_TYPES = (QUANTITY, INT_OR_STRING, FIELDS_V1)

_CORE = "io.k8s.api.core.v1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."

# Fields whose (leaf) values are resource.Quantity; maps of them are Go's v1.ResourceList.
_QUANTITY_FIELDS = {
    (_CORE + "ResourceRequirements", "limits"), (_CORE + "ResourceRequirements", "requests"),
    (_CORE + "VolumeResourceRequirements", "limits"),
    (_CORE + "VolumeResourceRequirements", "requests"),
    (_CORE + "NodeStatus", "capacity"), (_CORE + "NodeStatus", "allocatable"),
    (_CORE + "PodSpec", "overhead"), (_CORE + "ContainerStatus", "allocatedResources"),
    (_CORE + "EmptyDirVolumeSource", "sizeLimit"),
}
_INT_OR_STRING_FIELDS = {(_CORE + "HTTPGetAction", "port"), (_CORE + "TCPSocketAction", "port")}

# Integer fields that are int64 in Go; every other integer field is int32.
_INT64_FIELDS = {(_CORE + t, f) for t, f in (
    ("PodSpec", "activeDeadlineSeconds"), ("PodSpec", "terminationGracePeriodSeconds"),
    ("Probe", "terminationGracePeriodSeconds"), ("SleepAction", "seconds"),
    ("SecurityContext", "runAsUser"), ("SecurityContext", "runAsGroup"),
    ("PodSecurityContext", "runAsUser"), ("PodSecurityContext", "runAsGroup"),
    ("PodSecurityContext", "fsGroup"), ("PodSecurityContext", "supplementalGroups"),
    ("LinuxContainerUser", "uid"), ("LinuxContainerUser", "gid"),
    ("LinuxContainerUser", "supplementalGroups"), ("Toleration", "tolerationSeconds"),
    ("ServiceAccountTokenProjection", "expirationSeconds"), ("ContainerImage", "sizeBytes"))} | {
    (_META + t, f) for t, f in (
        ("DeleteOptions", "gracePeriodSeconds"), ("ListMeta", "remainingItemCount"),
        ("ObjectMeta", "generation"), ("ObjectMeta", "deletionGracePeriodSeconds"))}

# Named Go string types, for type-error messages (everything else is plain ``string``).
_GO_STRING_TYPES = {
    ("PodSpec", "restartPolicy"): "v1.RestartPolicy", ("PodSpec", "dnsPolicy"): "v1.DNSPolicy",
    ("PodSpec", "preemptionPolicy"): "v1.PreemptionPolicy",
    ("Container", "imagePullPolicy"): "v1.PullPolicy",
    ("Container", "restartPolicy"): "v1.ContainerRestartPolicy",
    ("Container", "terminationMessagePolicy"): "v1.TerminationMessagePolicy",
    ("ContainerPort", "protocol"): "v1.Protocol",
    ("Toleration", "operator"): "v1.TolerationOperator",
    ("Toleration", "effect"): "v1.TaintEffect", ("Taint", "effect"): "v1.TaintEffect",
    ("NodeSelectorRequirement", "operator"): "v1.NodeSelectorOperator",
    ("HostPathVolumeSource", "type"): "v1.HostPathType", ("EmptyDirVolumeSource", "medium"):
    "v1.StorageMedium", ("PodStatus", "phase"): "v1.PodPhase", ("ObjectMeta", "uid"): "types.UID",
    ("HTTPGetAction", "scheme"): "v1.URIScheme", ("Capabilities", "add"): "v1.Capability",
    ("Capabilities", "drop"): "v1.Capability", ("SecurityContext", "procMount"): "v1.ProcMountType",
}
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_QUANTITY_MESSAGE = ("quantities must match the regular expression "
                     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
_INT_RANGE = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


# --------------------------------------------------------------------------- schema view


def effective_schema(type_name: str, field: str) -> dict[str, Any] | None:
    """The schema of ``type_name.field`` as the server understands it, or None if unknown.

    Compared to ``schema.field_schema`` the leaves are refined: integers carry ``format``
    ``int32``/``int64`` (Go's width), and the opaque Go types appear as refs to
    :data:`QUANTITY`, :data:`INT_OR_STRING` and :data:`FIELDS_V1`.
    """
    fs = schema.field_schema(type_name, field)
    if fs is None:
        return None
    if (type_name, field) in _QUANTITY_FIELDS:
        return _replace_leaf(fs, {"ref": QUANTITY})
    if (type_name, field) in _INT_OR_STRING_FIELDS:
        return {"ref": INT_OR_STRING}
    if (type_name, field) == (_META + "ManagedFieldsEntry", "fieldsV1"):
        return {"ref": FIELDS_V1}
    fmt = "int64" if (type_name, field) in _INT64_FIELDS else "int32"
    return _replace_leaf(fs, {"type": "integer", "format": fmt}, only_type="integer")


def _replace_leaf(fs: dict[str, Any], leaf: dict[str, Any],
                  only_type: str | None = None) -> dict[str, Any]:
    for nested in ("items", "additionalProperties"):
        if nested in fs:
            return {**fs, nested: _replace_leaf(fs[nested], leaf, only_type)}
    if only_type is not None and fs.get("type") != only_type:
        return fs
    return dict(leaf)


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


# --------------------------------------------------------------------------- unknown fields


def unknown_fields(obj: Any, type_name: str) -> list[str]:
    """Paths of fields ``type_name`` does not know, in document order.

    Maps accept any key, ``{}`` schemas and opaque types accept anything, and values of the
    wrong JSON type are left to :func:`type_errors`. Nothing below an unknown field is visited.
    """
    return inspect(obj, type_name, normalize=False).unknown


def prune_unknown(obj: Any, type_name: str) -> Any:
    """A copy of ``obj`` without the fields :func:`unknown_fields` reports."""
    return _walk_known(obj, type_name, "", [], True)


def _walk_known(obj: Any, type_name: str, path: str, out: list[str], prune: bool) -> Any:
    if not isinstance(obj, dict) or type_name in OPAQUE_TYPES:
        return obj
    kept: dict[str, Any] = {}
    for key, value in obj.items():
        fs = effective_schema(type_name, key)
        if fs is None:
            out.append(child_path(path, key))
            continue
        kept[key] = _walk_field(value, fs, child_path(path, key), out, prune)
    return kept if prune else obj


def _walk_field(value: Any, fs: dict[str, Any], path: str, out: list[str], prune: bool) -> Any:
    if "ref" in fs:
        return _walk_known(value, fs["ref"], path, out, prune)
    if "items" in fs and isinstance(value, list):
        return [_walk_field(v, fs["items"], item_path(path, i), out, prune)
                for i, v in enumerate(value)]
    if "additionalProperties" in fs and isinstance(value, dict):
        return {k: _walk_field(v, fs["additionalProperties"], child_path(path, k), out, prune)
                for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- type errors


def type_errors(obj: Any, type_name: str) -> list[str]:
    """Values of the wrong JSON type, in document order, each worded as Go's decoder does.

    ``null`` is accepted everywhere (Go leaves the zero value). Integer fields need whole
    numbers in the Go width; date-time strings must be RFC 3339; quantities must match
    Kubernetes' quantity syntax. The API answers the first entry as a 400.
    """
    return inspect(obj, type_name, normalize=False).type_errors


class Inspection(NamedTuple):
    """What one walk of a decoded body found (see :func:`inspect`)."""

    type_errors: list[str]
    unknown: list[str]


def inspect(obj: Any, type_name: str, *, normalize: bool = True) -> Inspection:
    """:func:`type_errors` and :func:`unknown_fields` of ``obj`` in one walk.

    With ``normalize`` every valid date-time field is also rewritten in place as Kubernetes
    re-serialises it (:func:`podling.api.timestamps.normalize_time`) and every known field
    set to null is removed (Go decodes it to the zero value and omits it); a caller that
    finds problems rejects the object anyway, so a partly normalised object is never kept.
    """
    walk = _Walk(normalize)
    if not isinstance(obj, dict):
        walk.errors.append(f"json: cannot unmarshal {_json_kind(obj)} into Go value of type "
                           f"v1.{_short(type_name)}")
    else:
        walk.struct(obj, type_name, "", "")
    return Inspection(walk.errors, walk.unknown)


_EFFECTIVE: dict[tuple[str, str], dict[str, Any] | None] = {}


def _effective(type_name: str, field: str) -> dict[str, Any] | None:
    """:func:`effective_schema`, memoised (the walk never changes what it gets)."""
    key = (type_name, field)
    try:
        return _EFFECTIVE[key]
    except KeyError:
        fs = _EFFECTIVE[key] = effective_schema(type_name, field)
        return fs


class _Where:
    """Go's error context: the struct holding the field, and the dotted path without indices
    (``stack``); the strings are built only when a message needs them."""

    __slots__ = ("owner", "field", "parent")

    def __init__(self, owner: str, field: str, parent: str) -> None:
        self.owner = owner  # definition name of the struct
        self.field = field
        self.parent = parent  # the struct's own stack

    @property
    def struct(self) -> str:
        return _short(self.owner)  # short Go struct name, e.g. PodSpec

    @property
    def stack(self) -> str:
        return f"{self.parent}.{self.field}" if self.parent else self.field  # spec.containers


class _Walk:
    """One document-order walk collecting type errors (``stack``: Go's index-free path) and
    unknown fields (``path``: the Kubernetes path with indices)."""

    def __init__(self, normalize: bool) -> None:
        self.errors: list[str] = []
        self.unknown: list[str] = []
        self.normalize = normalize

    def struct(self, obj: dict[str, Any], type_name: str, stack: str, path: str) -> None:
        if type_name == FIELDS_V1:
            return
        nulls = []
        for key, value in obj.items():
            fs = _effective(type_name, key)
            if fs is None:
                self.unknown.append(f"{path}.{key}" if path else key)
                continue
            if value is None:
                nulls.append(key)
                continue
            cls = type(value)
            if cls is str and fs.get("type") == "string" and "format" not in fs:
                continue  # the commonest leaf, and a valid one: nothing to do
            if cls is bool and fs.get("type") == "boolean":
                continue
            # the path matters only below this field (unknown fields in a container)
            child = f"{path}.{key}" if path and (cls is dict or cls is list) else key
            problem = self.leaf(value, fs, _Where(type_name, key, stack), child)
            if problem is not None:
                self.errors.append(problem)
            elif self.normalize and fs.get("format") == "date-time":
                obj[key] = normalize_time(value, type_name, key)
        if self.normalize:
            for key in nulls:  # Go decodes null into the zero value, which it then omits
                del obj[key]

    def value(self, value: Any, fs: dict[str, Any], where: _Where, path: str) -> None:
        if value is None:
            return
        problem = self.leaf(value, fs, where, path)
        if problem is not None:
            self.errors.append(problem)

    def leaf(self, value: Any, fs: dict[str, Any], where: _Where, path: str) -> str | None:
        if "ref" in fs:
            return self.ref(value, fs["ref"], where, path)
        kind = fs.get("type")
        if kind == "array":
            if not isinstance(value, list):
                return _type_message(value, where, _go_type(fs, where.owner, where.field))
            items = fs["items"]
            for i, item in enumerate(value):
                self.value(item, items, where, f"{path}[{i}]")
        elif kind == "object" and "additionalProperties" in fs:
            if not isinstance(value, dict):
                return _type_message(value, where, _go_type(fs, where.owner, where.field))
            values = fs["additionalProperties"]
            for key, item in value.items():
                self.value(item, values, where, f"{path}.{key}")
        elif kind == "string":
            if not isinstance(value, str):
                return _type_message(value, where, _go_type(fs, where.owner, where.field))
            if fs.get("format") == "date-time":
                return _rfc3339_problem(value)
            if fs.get("format") == "byte":  # Go []byte: base64
                return base64_problem(value)
        elif kind == "integer":
            return _int_problem(value, fs.get("format", "int64"), where)
        elif kind == "boolean" and not isinstance(value, bool):
            return _type_message(value, where, "bool")
        return None

    def ref(self, value: Any, ref: str, where: _Where, path: str) -> str | None:
        if ref == FIELDS_V1:
            return None
        if ref == QUANTITY:
            text = value if isinstance(value, str) else json.dumps(value)
            ok = not isinstance(value, bool) and _QUANTITY_RE.match(text) is not None
            return None if ok else _QUANTITY_MESSAGE
        if ref == INT_OR_STRING:
            return None if isinstance(value, str) else _int_problem(value, "int32", where)
        if not isinstance(value, dict):
            return _type_message(value, where, f"v1.{_short(ref)}")
        self.struct(value, ref, where.stack, path)
        return None


def _int_problem(value: Any, fmt: str, where: _Where) -> str | None:
    go = fmt if fmt in _INT_RANGE else "int64"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _type_message(value, where, go)
    low, high = _INT_RANGE[go]
    if isinstance(value, float) or not low <= value <= high:
        return _type_message(value, where, go, literal=True)
    return None


def _type_message(value: Any, where: _Where, go_type: str,
                  literal: bool = False) -> str:
    kind = _json_kind(value)
    if literal:
        kind = f"number {_number_text(value)}"
    return (f"json: cannot unmarshal {kind} into Go struct field {where.struct}.{where.stack} "
            f"of type {go_type}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _go_type(fs: dict[str, Any], owner: str, field: str) -> str:
    if (owner, field) in _QUANTITY_FIELDS and fs.get("type") == "object":
        return "v1.ResourceList"
    if "ref" in fs:
        return {QUANTITY: "resource.Quantity", INT_OR_STRING: "intstr.IntOrString",
                FIELDS_V1: "v1.FieldsV1"}.get(fs["ref"], f"v1.{_short(fs['ref'])}")
    kind = fs.get("type")
    if kind == "array":
        return "[]" + _go_type(fs["items"], owner, field)
    if kind == "object" and "additionalProperties" in fs:
        return "map[string]" + _go_type(fs["additionalProperties"], owner, field)
    if kind == "string" and fs.get("format") == "byte":
        return "[]uint8"
    if kind == "string":
        # metav1.Time decodes through a plain string, so Go names ``string`` there too.
        return _GO_STRING_TYPES.get((_short(owner), field), "string")
    if kind == "integer":
        return fs.get("format", "int64")
    return {"boolean": "bool", "object": "interface {}"}.get(str(kind), "interface {}")


# --------------------------------------------------------------------------- RFC 3339


_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RANGES = {"01": (1, 12, "month"), "15": (0, 23, "hour"), "04": (0, 59, "minute"),
           "05": (0, 59, "second")}


def _rfc3339_problem(text: str) -> str | None:
    """None if ``text`` is RFC 3339, else the message Go's ``time.Parse`` gives."""
    rest = text
    fields: dict[str, int] = {}
    for element in ("2006", "-", "01", "-", "02", "T", "15", ":", "04", ":", "05", "Z07:00"):
        width = {"2006": 4, "15": 0}.get(element, 2)
        if element == "Z07:00":
            rest, ok = _zone(rest)
        elif element.isdigit():
            rest, ok, fields[element] = _digits(rest, width)
            low, high, name = _RANGES.get(element, (0, 9999, ""))
            if ok and not low <= fields[element] <= high:
                return f"parsing time {_go_quote(text)}: {name} out of range"
        else:
            ok = rest.startswith(element)
            rest = rest[len(element):] if ok else rest
        if not ok:
            return (f"parsing time {_go_quote(text)} as {_go_quote(_RFC3339)}: cannot parse "
                    f"{_go_quote(rest)} as {_go_quote(element)}")
        if element == "05" and len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit():
            rest = rest[1:].lstrip("0123456789")
    if rest:
        return f"parsing time {_go_quote(text)}: extra text: {_go_quote(rest)}"
    if not 1 <= fields["02"] <= _days_in(fields["01"], fields["2006"]):
        return f"parsing time {_go_quote(text)}: day out of range"
    return None


def _digits(text: str, width: int) -> tuple[str, bool, int]:
    """Fixed ``width`` digits, or 1-2 digits when ``width`` is 0 (Go's hour)."""
    count = width or (2 if text[1:2].isdigit() else 1)
    chunk = text[:count]
    if len(chunk) < count or not chunk.isdigit() or not chunk.isascii():
        return text, False, 0
    return text[count:], True, int(chunk)


def _zone(text: str) -> tuple[str, bool]:
    if text.startswith("Z"):
        return text[1:], True
    ok = (len(text) >= 6 and text[0] in "+-" and text[3] == ":"
          and text[1:3].isdigit() and text[4:6].isdigit())
    return (text[6:], True) if ok else (text, False)


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
