"""Strict decoding of request bodies, with Kubernetes' wording for every problem.

The API server decodes a body in three steps, exactly like apimachinery's strict JSON
serializer:

1. :func:`decode_json` / :func:`decode_yaml` parse the bytes; malformed input raises
   :class:`DecodeError`. Duplicate object keys are not fatal here: the last value wins (as
   in Go) and their paths are returned.
2. :func:`type_errors` finds values of the wrong JSON type. These are always fatal (400), in
   every ``fieldValidation`` mode; Go reports only the first one.
3. :func:`unknown_fields` plus the duplicates are the *strict* problems: with
   ``fieldValidation=Strict`` they become one 400 message (:func:`strict_error_message`), with
   ``Warn`` one warning each (:func:`field_warnings`), with ``Ignore`` nothing. Outside
   ``Strict`` the object is stored without its unknown fields (:func:`prune_unknown`), because
   a Go server never keeps what its structs do not know.

Paths are written the Kubernetes way: ``spec.containers[0].image``, map keys after a dot
(``metadata.labels.app``). Type errors use Go's own form, without list indices:
``json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type
[]v1.Container``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from .decode_schema import (  # re-exported: part of the public decoding API
    FIELDS_V1, INT_OR_STRING, QUANTITY, Inspection, effective_schema, inspect, prune_unknown,
    type_errors, unknown_fields)
from .decode_schema import child_path, item_path

__all__ = [
    "DecodeError", "decode_json", "decode_yaml", "unknown_fields", "prune_unknown", "inspect",
    "Inspection",
    "type_errors", "effective_schema", "decode_error_message", "strict_problems",
    "strict_error_message", "field_warnings", "QUANTITY", "INT_OR_STRING", "FIELDS_V1",
]

_MAX_YAML_VALUES = 1_000_000  # guards against alias expansion bombs
#: how deeply objects and lists may nest in a body. Kubernetes allows 10,000 levels (Go's
#: decoder); the code that walks objects here is recursive, so a body is refused well before
#: Python's recursion limit, and far beyond what any real object needs.
MAX_DEPTH = 100
_ESCAPED_SURROGATE = re.compile(rb"\\[uU]0{0,4}[dD][89a-fA-F]")  # JSON's and YAML's escapes
_SURROGATE = re.compile("[\ud800-\udfff]")
_YAML_TOO_DEEP = f"error converting YAML to JSON: yaml: exceeded max depth of {MAX_DEPTH}"


class DecodeError(Exception):
    """A body that cannot be parsed at all; ``message`` is shown to the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- JSON


def decode_json(body: bytes) -> tuple[Any, list[str]]:
    """Parse a JSON body; returns ``(value, duplicate_paths)``.

    Duplicate keys keep the last value, as Go does. NaN/Infinity literals and invalid UTF-8
    are rejected. Raises :class:`DecodeError` with the position of the first syntax error.
    """
    registry: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                registry.setdefault(id(obj), (obj, []))[1].append(key)
            obj[key] = value
        return obj

    def reject_constant(name: str) -> Any:
        raise DecodeError(f"invalid JSON: {name} is not a JSON value")

    try:
        value = json.loads(body, object_pairs_hook=hook, parse_constant=reject_constant)
    except RecursionError:
        raise DecodeError(f"invalid JSON: exceeded max depth of {MAX_DEPTH}") from None
    except json.JSONDecodeError as e:
        raise DecodeError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno} "
                          f"(byte offset {e.pos})") from e
    except UnicodeDecodeError as e:
        raise DecodeError(f"invalid JSON: body is not valid UTF-8 (byte offset {e.start})") from e
    if body.count(b"[") + body.count(b"{") >= MAX_DEPTH and _nesting(value) > MAX_DEPTH:
        raise DecodeError(f"invalid JSON: exceeded max depth of {MAX_DEPTH}")
    if _ESCAPED_SURROGATE.search(body):
        value = _without_surrogates(value)
    if not registry:  # no duplicate keys anywhere: no need to walk the value for their paths
        return value, []
    return value, _registered_duplicates(value, registry, "")


def _registered_duplicates(value: Any, registry: dict[int, tuple[dict[str, Any], list[str]]],
                           path: str) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        entry = registry.get(id(value))
        if entry is not None and entry[0] is value:
            out.extend(child_path(path, k) for k in entry[1])
        for key, child in value.items():
            out.extend(_registered_duplicates(child, registry, child_path(path, key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(_registered_duplicates(child, registry, item_path(path, i)))
    return out


# --------------------------------------------------------------------------- YAML


def decode_yaml(body: bytes) -> tuple[Any, list[str]]:
    """Parse a YAML body holding exactly one document; returns ``(value, duplicate_paths)``.

    The result is what Kubernetes' YAML-to-JSON conversion produces: timestamps stay strings,
    whole floats become ints, non-string keys become strings, merge keys (``<<``) are applied.
    Anything without a JSON equivalent (binary, sets, custom tags, .inf/.nan, non-scalar
    keys, recursive aliases) raises :class:`DecodeError`, as does malformed YAML.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(body)  # reads the encoding: a ReaderError for bad bytes
        node = loader.get_single_node()
    except RecursionError:
        raise DecodeError(_YAML_TOO_DEEP) from None
    except yaml.reader.ReaderError as e:
        raise DecodeError(f"error converting YAML to JSON: yaml: invalid UTF-8 or a control "
                          f"character at byte offset {e.position}") from e
    except yaml.composer.ComposerError as e:
        if "single document" in f"{e.context} {e.problem}":
            raise DecodeError("the YAML body must contain exactly one document") from e
        raise DecodeError(_yaml_message(e)) from e
    except yaml.YAMLError as e:
        raise DecodeError(_yaml_message(e)) from e
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return None, []
    converter = _YamlToJson(loader)
    value = converter.value(node, "")
    if _ESCAPED_SURROGATE.search(body):
        value = _without_surrogates(value)
    return value, converter.duplicates


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings and keys replaced by U+FFFD,
    as Go's decoder does (an escape like ``\\ud800`` decodes to one; it has no UTF-8 form).
    Lists and objects are changed in place, so the duplicate-key records stay valid."""
    def fix(text: str) -> str:
        return _SURROGATE.sub("\ufffd", text)
    if isinstance(value, str):
        return fix(value)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = [(fix(k) if isinstance(k, str) else k,
                      fix(v) if isinstance(v, str) else v) for k, v in node.items()]
            node.clear()
            node.update(items)
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            node[:] = [fix(v) if isinstance(v, str) else v for v in node]
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return value


def _nesting(root: Any) -> int:
    """How deeply a JSON value nests (1: a scalar), without recursion; stops counting past
    MAX_DEPTH. (A value nests at most one level deeper than its body has brackets, so callers
    count those first and skip this walk for every ordinary body.)"""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _yaml_message(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return f"error converting YAML to JSON: yaml: {where}{problem}"


class _YamlToJson:
    """Turns a composed YAML node tree into JSON values, recording duplicate keys."""

    _MAP = "tag:yaml.org,2002:map"
    _SEQ = "tag:yaml.org,2002:seq"
    _MERGE = "tag:yaml.org,2002:merge"
    _SCALARS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null")}

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.duplicates: list[str] = []
        self._active: set[int] = set()  # the nodes being converted: the current path
        self._count = 0

    def value(self, node: yaml.Node, path: str) -> Any:
        self._count += 1
        if self._count > _MAX_YAML_VALUES:
            raise DecodeError("YAML body expands to too many values (alias bomb?)")
        if id(node) in self._active:
            raise DecodeError(f"recursive YAML alias at {path or 'the document root'}")
        if len(self._active) >= MAX_DEPTH:
            raise DecodeError(_YAML_TOO_DEEP)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and node.tag == self._MAP:
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode) and node.tag == self._SEQ:
                return [self.value(n, item_path(path, i)) for i, n in enumerate(node.value)]
            if isinstance(node, yaml.ScalarNode):
                return self._scalar(node, path)
            raise self._unsupported(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == self._MERGE:
                self._merge(out, value_node, path)
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == self._MERGE:
                continue
            key = self._key(key_node, path)
            if key in seen:
                self.duplicates.append(child_path(path, key))
            seen.add(key)
            out[key] = self.value(value_node, child_path(path, key))
        return out

    def _merge(self, out: dict[str, Any], node: yaml.Node, path: str) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            merged = self.value(source, path)
            if not isinstance(merged, dict):
                raise DecodeError(f"YAML merge key at {path or 'the document root'} "
                                  "must refer to a mapping")
            for key, value in merged.items():
                out.setdefault(key, value)

    def _key(self, node: yaml.Node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise DecodeError(f"YAML mapping keys must be scalars (at {path or 'the root'})")
        key = self._scalar(node, path)
        if isinstance(key, bool):
            return "true" if key else "false"
        return "null" if key is None else str(key)

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value
        if node.tag not in self._SCALARS:
            raise self._unsupported(node, path)
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, float):
            if math.isinf(value) or math.isnan(value):
                raise DecodeError(f"YAML value {node.value!r} at {path or 'the root'} "
                                  "has no JSON equivalent")
            if value.is_integer() and abs(value) < 2**63:
                return int(value)
        return value

    @staticmethod
    def _unsupported(node: yaml.Node, path: str) -> DecodeError:
        return DecodeError(f"YAML tag {node.tag} at {path or 'the document root'} is not "
                           "supported: the body must be JSON-compatible")


# --------------------------------------------------------------------------- messages


def decode_error_message(kind: str, detail: str, *, version: str = "v1") -> str:
    """``Pod in version "v1" cannot be handled as a Pod: <detail>`` (the 400 message)."""
    return f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}'


def strict_problems(unknown: list[str], duplicates: list[str], *,
                    obj: Any = None) -> list[str]:
    """``unknown field "p"`` / ``duplicate field "p"`` texts, one per distinct problem.

    With ``obj`` (the decoded body) they come in document order, as Go reports them;
    otherwise unknown fields first. Duplicates inside (or equal to) an unknown field are
    dropped: Go skips unknown values without looking into them.
    """
    def hidden(path: str) -> bool:
        return any(path == u or path.startswith((u + ".", u + "[")) for u in unknown)

    problems = [(p, f'unknown field "{p}"') for p in unknown]
    problems += [(p, f'duplicate field "{p}"') for p in duplicates if not hidden(p)]
    if obj is not None:
        order = _document_order(obj)
        problems.sort(key=lambda item: order.get(item[0], len(order)))
    texts: list[str] = []
    for _, text in problems:
        if text not in texts:
            texts.append(text)
    return texts


def strict_error_message(kind: str, unknown: list[str], duplicates: list[str], *,
                         version: str = "v1", obj: Any = None) -> str:
    """The fieldValidation=Strict 400 message, e.g. ``Pod in version "v1" cannot be handled
    as a Pod: strict decoding error: unknown field "spec.containerz"``."""
    problems = ", ".join(strict_problems(unknown, duplicates, obj=obj))
    return decode_error_message(kind, f"strict decoding error: {problems}", version=version)


def field_warnings(unknown: list[str], duplicates: list[str], *, obj: Any = None) -> list[str]:
    """fieldValidation=Warn: one warning text per problem (kubectl prints ``Warning: <text>``)."""
    return strict_problems(unknown, duplicates, obj=obj)


def _document_order(obj: Any) -> dict[str, int]:
    order: dict[str, int] = {}

    def visit(value: Any, path: str) -> None:
        order.setdefault(path, len(order))
        if isinstance(value, dict):
            for key, child in value.items():
                visit(child, child_path(path, key))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                visit(child, item_path(path, i))

    visit(obj, "")
    return order
