"""Label and field selectors, parsed and matched the way apimachinery does.

Label selectors follow ``k8s.io/apimachinery/pkg/labels`` (``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``, ``a>1``, ``a<1``; comma = AND, whitespace
ignored); field selectors follow ``pkg/fields`` (``f=v``, ``f==v``, ``f!=v``, comma = AND,
``\\,`` ``\\=`` ``\\\\`` escapes). Every error is a :class:`SelectorError` carrying the real API
server's message, for a 400 BadRequest. :func:`field_set` and :func:`check_field_selector` hold
each resource's selectable fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import aggregate

# Operators, spelled as apimachinery's selection.Operator values.
IN, NOT_IN = "in", "notin"
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
EXISTS, DOES_NOT_EXIST = "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_SYMBOLS = {GREATER_THAN: ">", LESS_THAN: "<"}


class SelectorError(ValueError):
    """A selector that cannot be parsed or is not supported; ``str()`` is the Kubernetes message."""


# --- Label key / value syntax (apimachinery util/validation), with its exact messages.

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
              "with an alphanumeric character")
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
_INT64_RE = re.compile(r"[+-]?[0-9]+")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = "".join(f"{' or ' if i else ''}'{e}', " for i, e in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _too_long(text: str, limit: int) -> list[str]:
    size = len(text.encode(errors="surrogatepass"))  # a lone surrogate is bytes too
    return [f"must be no more than {limit} characters"] if size > limit else []


def _dns1123_subdomain_errors(value: str) -> list[str]:
    bad = not re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value)
    regex_error = _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
    return _too_long(value, 253) + ([regex_error] if bad else [])


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery ``IsQualifiedName``: the problems with a label key (empty list if valid)."""
    qname_error = _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
    parts = value.split("/")
    if len(parts) > 2:
        return [f"a qualified name {qname_error} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    errs: list[str] = []
    if len(parts) == 2:
        prefix_errs = _dns1123_subdomain_errors(parts[0]) if parts[0] else ["must be non-empty"]
        errs.extend("prefix part " + m for m in prefix_errs)
    name = parts[-1]
    name_errs = _too_long(name, 63) if name else ["must be non-empty"]
    errs.extend("name part " + m for m in name_errs)
    if not re.fullmatch(_QNAME_FMT, name):
        errs.append("name part " + qname_error)
    return errs


def label_value_errors(value: str) -> list[str]:
    """apimachinery ``IsValidLabelValue``: the problems with a label value (empty list if valid)."""
    bad = not re.fullmatch(_LABEL_VALUE_FMT, value)
    regex_error = _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
    return _too_long(value, 63) + ([regex_error] if bad else [])


def _render(value: Any) -> str:
    """A bad value as field.Error prints it: strings quoted, everything else as JSON."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"))


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_render(value)}: {detail}"


# --- Label selectors.

@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key``, an operator constant above, and its values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (labels.Requirement.Matches)."""
        present = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return present == (self.operator == EXISTS)
        if not present or len(self.values) != 1 or not _is_int64(labels[self.key]):
            return False  # gt / lt compare integers
        have, want = int(labels[self.key]), int(self.values[0])
        return have > want if self.operator == GREATER_THAN else have < want

    def __str__(self) -> str:
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        return self.key + _SYMBOLS.get(self.operator, self.operator) + values


def _is_int64(text: str) -> bool:
    return bool(_INT64_RE.fullmatch(text)) and -(2**63) <= int(text) < 2**63


_COUNT_RULES = {  # operator -> (allowed number of values, message otherwise)
    IN: (range(1, 2**31), "for 'in', 'notin' operators, values set can't be empty"),
    EQUALS: (range(1, 2), "exact-match compatibility requires one single value"),
    EXISTS: (range(0, 1), "values set must be empty for exists and does not exist"),
    GREATER_THAN: (range(1, 2), "for 'Gt', 'Lt' operators, exactly one value is required"),
}
_RULE_OF = {NOT_IN: IN, DOUBLE_EQUALS: EQUALS, NOT_EQUALS: EQUALS, DOES_NOT_EXIST: EXISTS,
            LESS_THAN: GREATER_THAN}
_NOT_INT = "for 'Gt', 'Lt' operators, the value must be an integer"


def new_requirement(key: str, operator: str, values: list[str] | None) -> Requirement:
    """labels.NewRequirement: validate and build one requirement; raises :class:`SelectorError`.

    ``operator`` must be one of the constants above.
    """
    errs = [_invalid("key", key, "; ".join(p)) for p in [qualified_name_errors(key)] if p]
    vals = list(values) if values is not None else None
    allowed, message = _COUNT_RULES[_RULE_OF.get(operator, operator)]
    if len(vals or []) not in allowed:
        errs.append(_invalid("values", vals, message))
    if operator in (GREATER_THAN, LESS_THAN):
        errs += [_invalid(f"values[{i}]", v, _NOT_INT) for i, v in enumerate(vals or [])
                 if not _is_int64(v)]
    for i, value in enumerate(vals or []):
        if problems := label_value_errors(value):
            errs.append(_invalid(f"values[{i}][{key}]", value, "; ".join(problems)))
    if errs:
        raise SelectorError(aggregate(errs))
    return Requirement(key, operator, tuple(vals or ()))


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements sorted by key; no requirements match all, ``nothing`` matches none."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` (None = no labels) is selected."""
        if self.nothing:
            return False
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self.nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have (``k=v``, ``k==v``, ``k in (v)``), else None."""
        for r in self.requirements:
            if r.key == key:
                exact = r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1
                return r.values[0] if exact else None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sorted_selector(requirements: list[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value (labels.Parse); raises :class:`SelectorError`."""
    return _sorted_selector(_LabelParser(text).parse())


_TOKEN_RE = re.compile(r"[ \t\r\n]*(?:(==|!=|[=!(),><])|([^=!(),>< \t\r\n]+))")
_OPERATORS = {"in": IN, "notin": NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS,
              ">": GREATER_THAN, "<": LESS_THAN}


class _LabelParser:
    """labels.Parse's recursive-descent parser, with its error messages. Tokens are (kind,
    literal): an operator's or keyword's kind is its literal, an identifier's "ID", the end's ""."""

    def __init__(self, text: str) -> None:
        self.items = [(op or (word if word in ("in", "notin") else "ID"), op or word)
                      for op, word in _TOKEN_RE.findall(text)] + [("", "")]
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        """The next token; in a values context the keywords ``in``/``notin`` are identifiers."""
        kind, lit = self.items[self.pos]
        return ("ID" if values and kind in ("in", "notin") else kind), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self.peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            kind, lit = self.peek()
            if kind == "":
                return reqs
            if kind not in ("ID", "!"):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from None
            kind, lit = self.take()
            if kind == "":
                return reqs
            if kind != ",":
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self.peek()
            if kind not in ("ID", "!"):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        """One requirement: ``[!]key [op values]``."""
        op = ""
        kind, key = self.take()
        if kind == "!":
            op, (kind, key) = DOES_NOT_EXIST, self.take()
        if kind != "ID":
            raise SelectorError(f"found '{key}', expected: identifier")
        if problems := qualified_name_errors(key):
            raise SelectorError(_invalid("<nil>", key, "; ".join(problems)))
        if self.peek()[0] in ("", ","):
            op = op or EXISTS
        if op:
            return new_requirement(key, op, [])
        kind, lit = self.take(values=False)
        if kind not in _OPERATORS:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        op = _OPERATORS[kind]
        values = self.set_values() if op in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, op, sorted(values))

    def set_values(self) -> set[str]:
        kind, lit = self.take()
        if kind != "(":
            raise SelectorError(f"found '{lit}' expected: '('")
        kind, lit = self.take()
        if kind == ")":
            return {""}
        if kind not in ("ID", ","):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:  # ``kind, lit`` is the token just taken; stop after the closing ")"
            if kind == "ID":
                values.add(lit)
                nxt, nlit = self.peek()
                if nxt == ")":
                    self.take()
                    return values
                if nxt != ",":
                    raise SelectorError(f"found '{nlit}', expected: ',' or ')'")
            elif kind == ",":
                values.update([""] if not values else [])
                nxt = self.peek()[0]
                if nxt in (")", ","):
                    values.add("")
                    self.take()
                    if nxt == ")":
                        return values
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")
            kind, lit = self.take()

    def exact_value(self) -> set[str]:
        if self.peek()[0] in ("", ","):
            return {""}
        kind, lit = self.take()
        if kind != "ID":
            raise SelectorError(f"found '{lit}', expected: identifier")
        return {lit}


def label_selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None matches nothing, ``{}`` matches everything."""
    if sel is None:
        return LabelSelector(nothing=True)
    match_labels = sorted((sel.get("matchLabels") or {}).items())
    reqs = [new_requirement(k, EQUALS, [v]) for k, v in match_labels]
    operators = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
    for expr in sel.get("matchExpressions") or []:
        op = operators.get(expr.get("operator", ""))
        if op is None:
            operator = _render(expr.get("operator", ""))
            raise SelectorError(f"{operator} is not a valid label selector operator")
        reqs.append(new_requirement(expr.get("key", ""), op, expr.get("values")))
    return _sorted_selector(reqs)


# --- Field selectors.

@dataclass(frozen=True)
class FieldRequirement:
    """``field`` must equal (operator ``=``, also for ``==``) or differ from (``!=``) ``value``."""

    field: str
    operator: str
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        """A missing field counts as the empty string, as fields.Set.Get does."""
        equal = fields.get(self.field, "") == self.value
        return equal if self.operator == EQUALS else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """An AND of field requirements; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object whose selectable fields are ``fields`` is selected."""
        return all(r.matches(fields) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, field: str) -> str | None:
        """The value ``field`` must equal (first ``field=v`` term), else None."""
        for r in self.requirements:
            if r.field == field and r.operator == EQUALS:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    """fields.EscapeValue: backslash-escape ``\\``, ``,`` and ``=``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    """fields.UnescapeValue; raises :class:`SelectorError` on a bad escape or a bare ``,``/``=``."""
    for m in re.finditer(r"\\(.?)|([,=])", value, re.S):
        if m.group(2):
            raise SelectorError("invalid field selector: unescaped character in value: "
                                f"{ord(m.group(2))}")
        if not m.group(1) or m.group(1) not in "\\,=":
            raise SelectorError(f"invalid field selector: invalid escape sequence: \\{m.group(1)}")
    return re.sub(r"\\(.)", r"\1", value, flags=re.S)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the escapes stay in the terms)."""
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query value (fields.ParseSelector); raises :class:`SelectorError`.

    No whitespace is trimmed, exactly as apimachinery: ``a = b`` selects field ``"a "``.
    """
    reqs = []
    for part in sorted(_split_terms(text)) if text else []:
        if not part:
            continue
        # Split at the first operator; at one position "!=" and "==" win over "=".
        split = re.match(r"(.*?)(!=|==|=)(.*)", part, re.S)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split.groups()
        reqs.append(FieldRequirement(lhs, NOT_EQUALS if op == NOT_EQUALS else EQUALS,
                                     unescape_field_value(rhs)))
    return FieldSelector(tuple(reqs))


# --- Selectable fields per resource (ToSelectableFields and the field-label conversions).

_META_FIELDS = ("metadata.name", "metadata.namespace")
_SUPPORTED_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": _META_FIELDS + ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                            "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                            "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    "events": _META_FIELDS + tuple("involvedObject." + f for f in (
        "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")) + (
        "reason", "reportingComponent", "source", "type"),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "namespaces": ("metadata.name", "status.phase"),
    "secrets": _META_FIELDS + ("type",),
}
_FIELD_ALIASES = {"pods": {"spec.host": "spec.nodeName"}}


def supported_field_labels(resource: str) -> tuple[str, ...]:
    """The field labels ``resource`` accepts in a field selector."""
    return _SUPPORTED_FIELDS.get(resource, _META_FIELDS)


def check_field_selector(resource: str, selector: FieldSelector) -> FieldSelector:
    """Reject field labels ``resource`` does not support, with the API server's message.

    Returns the selector with legacy labels renamed (pods: ``spec.host`` → ``spec.nodeName``).
    Resources without their own list accept only ``metadata.name`` and ``metadata.namespace``.
    """
    aliases = _FIELD_ALIASES.get(resource, {})
    checked = []
    for req in selector.requirements:
        label = aliases.get(req.field, req.field)
        if label not in supported_field_labels(resource):
            if resource in _SUPPORTED_FIELDS:
                raise SelectorError(f"field label not supported: {label}")
            raise SelectorError(f"{_render(label)} is not a known field selector: "
                                'only "metadata.name", "metadata.namespace"')
        checked.append(FieldRequirement(label, req.operator, req.value))
    return FieldSelector(tuple(checked))


def field_set(resource: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of ``obj`` as strings, as the registry strategies compute them.

    Absent values are ``""``; booleans ``"true"``/``"false"``; pods' ``status.podIP`` is the
    first of ``status.podIPs``; events' ``source`` is ``source.component``.
    """
    labels = [f for f in supported_field_labels(resource) if f != "status.podIPs"]
    fields = {f: _field_string(_dig(obj, f.split("."))) for f in labels}
    for flag in ("spec.hostNetwork", "spec.unschedulable"):
        if flag in fields:
            fields[flag] = "true" if _dig(obj, flag.split(".")) is True else "false"
    if resource == "pods":
        pod_ips = _dig(obj, ["status", "podIPs"]) or [{}]
        pod_ip = pod_ips[0].get("ip") or _dig(obj, ["status", "podIP"])
        fields["status.podIP"] = _field_string(pod_ip)
    if resource == "events":
        fields["source"] = _field_string(_dig(obj, ["source", "component"]))
    return fields


def _dig(obj: Any, path: list[str]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _field_string(value: Any) -> str:
    return "" if value is None else str(value)
