"""The three Kubernetes patch types, as pure functions over JSON values.

=============================================  =========================
content type                                    function
=============================================  =========================
``application/merge-patch+json`` (RFC 7386)     :func:`json_merge_patch`
``application/json-patch+json`` (RFC 6902)      :func:`json_patch`
``application/strategic-merge-patch+json``      :func:`strategic_merge_patch`
=============================================  =========================

None of the functions mutates its inputs, and no result shares a mutable value with an input.
Every failure is a :class:`PatchError` carrying the HTTP status to answer: 400 for a patch
that is malformed in itself, 422 for a well-formed patch that cannot apply to this object
(a JSON-patch path that does not exist, a failed ``test`` op, a patch that contradicts its
own ``$retainKeys``) — the split the Kubernetes API server makes.

Strategic merge follows apimachinery's ``strategicpatch`` (what ``kubectl apply`` sends).
Supported directives::

    {"$patch": "replace" | "delete" | "merge"}    in a map
    [{"<mergeKey>": v, "$patch": "delete"}]       delete one element of a keyed list
    [{"$patch": "replace"}, ...]                  replace the whole list with the other elements
    "$setElementOrder/<field>": [...]             final order of the listed elements
    "$deleteFromPrimitiveList/<field>": [...]     remove values from a scalar set list
    "$retainKeys": [...]                          drop the map's fields not listed

Lists merge as :mod:`podling.api.patchmeta` says (by key, as a scalar set, or atomically);
fields the schema does not know are merged as plain maps and their lists replaced.
Deliberate differences from apimachinery: a patch value for a key absent from the target
still has its directives applied (they never leak into the result), a nested
``$patch: delete`` removes the key instead of leaving ``{}``, and any other ``$``-prefixed
key is rejected rather than stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from podling.api import schema
from podling.api.patchmeta import ListMeta, list_meta
from ..util.jsoncopy import clone


class PatchError(Exception):
    """A patch that cannot be applied.

    ``message`` is user-facing; ``code`` is the HTTP status to answer (400 for a malformed
    patch, 422 for a well-formed patch that does not apply, e.g. a failed ``test`` op).
    """

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --------------------------------------------------------------------------- JSON equality


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1``, but ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _contains(values: list[Any], value: Any) -> bool:
    return any(_json_equal(v, value) for v in values)


# --------------------------------------------------------------------------- RFC 7386


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes a key,
    anything else (lists included) replaces. A non-object patch replaces the whole target."""
    return _merge_patch(clone(target), clone(patch))


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


# --------------------------------------------------------------------------- RFC 6902

_OPS = ("add", "remove", "replace", "move", "copy", "test")
_BAD_ESCAPE = re.compile(r"~(?![01])")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class _Op:
    """One validated JSON-patch operation; pointers are already split and unescaped."""

    index: int
    op: str
    path: tuple[str, ...]
    raw_path: str
    value: Any = None
    source: tuple[str, ...] = ()


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test), all or nothing.

    A malformed operations document raises PatchError(400) before anything is applied; an
    operation that cannot apply (missing path, index out of range, failed ``test``) raises
    PatchError(422).
    """
    ops = _parse_ops(clone(operations))
    doc = clone(target)
    for op in ops:
        doc = _apply_op(doc, op)
    return doc


def _parse_ops(operations: Any) -> list[_Op]:
    if not isinstance(operations, list):
        raise PatchError("json patch must be a JSON array of operations")
    return [_parse_op(i, raw) for i, raw in enumerate(operations)]


def _parse_op(index: int, raw: Any) -> _Op:
    where = f"json patch operation {index}"
    if not isinstance(raw, dict):
        raise PatchError(f"{where}: must be a JSON object")
    op = raw.get("op")
    if op not in _OPS:
        raise PatchError(f"{where}: unsupported op {op!r}; expected one of {', '.join(_OPS)}")
    path = raw.get("path")
    if not isinstance(path, str):
        raise PatchError(f"{where}: {op} needs a string \"path\"")
    source: tuple[str, ...] = ()
    if op in ("move", "copy"):
        if not isinstance(raw.get("from"), str):
            raise PatchError(f"{where}: {op} needs a string \"from\"")
        source = _parse_pointer(raw["from"], where)
    if op in ("add", "replace", "test") and "value" not in raw:
        raise PatchError(f"{where}: {op} needs a \"value\"")
    return _Op(index, op, _parse_pointer(path, where), path, raw.get("value"), source)


def _parse_pointer(pointer: str, where: str) -> tuple[str, ...]:
    """Split an RFC 6901 pointer into unescaped tokens; ``""`` is the whole document."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PatchError(f"{where}: JSON pointer {pointer!r} must start with '/'")
    if _BAD_ESCAPE.search(pointer):
        raise PatchError(f"{where}: JSON pointer {pointer!r} has an invalid '~' escape")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def _unprocessable(op: _Op, problem: str) -> PatchError:
    return PatchError(f"json patch operation {op.index} ({op.op} {op.raw_path}): {problem}", 422)


def _array_index(op: _Op, token: str, length: int, *, end_ok: bool) -> int:
    if token == "-" and end_ok:
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise _unprocessable(op, f"{token!r} is not an array index")
    index = int(token)
    if index > length or (index == length and not end_ok):
        raise _unprocessable(op, f"array index {index} is out of range")
    return index


def _get(op: _Op, doc: Any, tokens: tuple[str, ...]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise _unprocessable(op, f"path element {token!r} does not exist")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_array_index(op, token, len(doc), end_ok=False)]
        else:
            raise _unprocessable(op, f"cannot descend into a scalar at {token!r}")
    return doc


def _add(op: _Op, doc: Any, tokens: tuple[str, ...], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _get(op, doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(op, last, len(parent), end_ok=True), value)
    else:
        raise _unprocessable(op, "parent is not an object or array")
    return doc


def _remove(op: _Op, doc: Any, tokens: tuple[str, ...]) -> tuple[Any, Any]:
    """Remove the value at ``tokens``; returns (document, removed value)."""
    if not tokens:
        raise _unprocessable(op, "cannot remove the whole document")
    parent, last = _get(op, doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(op, f"path element {last!r} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(op, last, len(parent), end_ok=False))
    raise _unprocessable(op, "parent is not an object or array")


def _apply_op(doc: Any, op: _Op) -> Any:
    if op.op == "add":
        return _add(op, doc, op.path, op.value)
    if op.op == "remove":
        return _remove(op, doc, op.path)[0]
    if op.op == "replace":
        _get(op, doc, op.path)
        if not op.path:
            return op.value
        doc, _ = _remove(op, doc, op.path)
        return _add(op, doc, op.path, op.value)
    if op.op == "copy":
        return _add(op, doc, op.path, clone(_get(op, doc, op.source)))
    if op.op == "move":
        if op.path[: len(op.source)] == op.source and len(op.path) > len(op.source):
            raise _unprocessable(op, "cannot move a value into one of its own children")
        if op.path == op.source:
            _get(op, doc, op.source)
            return doc
        doc, value = _remove(op, doc, op.source)
        return _add(op, doc, op.path, value)
    if not _json_equal(_get(op, doc, op.path), op.value):
        raise _unprocessable(op, "test failed: the value differs")
    return doc


# --------------------------------------------------------------------------- strategic merge

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"
_DELETED = object()  # a value whose "$patch: delete" removes it from its parent


def strategic_merge_patch(target: dict, patch: dict, type_name: str) -> dict:
    """Apply a strategic merge patch to an object of the OpenAPI type ``type_name``.

    A top-level ``$patch: delete`` yields ``{}``. Raises PatchError(400) for a patch that is
    not a JSON object or holds an unknown or malformed directive.
    """
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    if not isinstance(target, dict):
        raise TypeError("strategic_merge_patch target must be a dict")
    result = _merge_map(clone(target), clone(patch), {"ref": type_name})
    return {} if result is _DELETED else result


def _child(shape: dict | None, key: str) -> tuple[dict | None, ListMeta | None]:
    """Schema and list strategy of ``key`` inside a map of the given field schema."""
    if not shape:
        return None, None
    if "ref" in shape:
        return schema.field_schema(shape["ref"], key), list_meta(shape["ref"], key)
    additional = shape.get("additionalProperties")
    return (additional if isinstance(additional, dict) else None), None


def _merge_value(original: Any, patch: Any, shape: dict | None, meta: ListMeta | None) -> Any:
    """Merge one field's patch value into its original (None when absent)."""
    if isinstance(patch, dict):
        return _merge_map(original if isinstance(original, dict) else {}, patch, shape)
    if isinstance(patch, list):
        items = shape.get("items") if shape else None
        return _merge_list(original if isinstance(original, list) else [], patch, items, meta)
    return patch


def _merge_map(original: dict, patch: dict, shape: dict | None) -> Any:
    """Merge ``patch`` into ``original`` (both private copies, mutated); may return _DELETED."""
    directive = patch.pop(_PATCH, "merge")
    if directive == "replace":
        return _merge_map({}, patch, shape)
    if directive == "delete":
        return _DELETED
    if directive != "merge":
        raise PatchError(f"unknown $patch directive {directive!r} in a map")
    if _RETAIN_KEYS in patch:
        original = _retain_keys(original, patch, patch.pop(_RETAIN_KEYS))
    orders = _pop_prefixed(patch, _SET_ORDER, "$setElementOrder")
    for field, values in _pop_prefixed(patch, _DELETE_FROM, "$deleteFromPrimitiveList").items():
        if isinstance(original.get(field), list):
            original[field] = [v for v in original[field] if not _contains(values, v)]
    before = {field: original.get(field) for field in orders}
    for key, value in patch.items():
        if key.startswith("$"):
            raise PatchError(f"unknown strategic merge patch directive {key!r}")
        field_shape, meta = _child(shape, key)
        merged = None if value is None else _merge_value(original.get(key), value, field_shape, meta)
        if merged is None or merged is _DELETED:
            original.pop(key, None)
        else:
            original[key] = merged
    for field, order in orders.items():
        _apply_order(original, field, order, before[field], _child(shape, field)[1])
    return original


def _pop_prefixed(patch: dict, prefix: str, name: str) -> dict[str, list]:
    """Remove every ``<prefix><field>`` directive from ``patch``; returns field → list."""
    found: dict[str, list] = {}
    for key in [k for k in patch if k.startswith(prefix)]:
        value = patch.pop(key)
        if not isinstance(value, list):
            raise PatchError(f"{name} directive {key!r} must be a list")
        found[key[len(prefix) :]] = value
    return found


def _retain_keys(original: dict, patch: dict, retain: Any) -> dict:
    if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
        raise PatchError("$retainKeys directive must be a list of field names")
    for key, value in patch.items():
        if value is not None and not key.startswith("$") and key not in retain:
            raise PatchError(f"patch field {key!r} is not listed in $retainKeys", 422)
    return {k: v for k, v in original.items() if k in retain}


def _merge_list(original: list, patch: list, items: dict | None, meta: ListMeta | None) -> list:
    """Merge a list field: atomically, as a scalar set, or element by merge key."""
    if meta is None:
        return _materialize_elements(patch, items)
    if meta.merge_key is None:
        result = list(original)
        for value in patch:
            if not _contains(result, value):
                result.append(value)
        return result
    return _merge_keyed(original, patch, items, meta.merge_key)


def _materialize_elements(elements: list, items: dict | None) -> list:
    """Elements as they stand on their own: their nested directives applied, none kept."""
    result = []
    for element in elements:
        value = _merge_value(None, element, items, None)
        if value is not _DELETED:
            result.append(value)
    return result


def _merge_keyed(original: list, patch: list, items: dict | None, key: str) -> list:
    plain: list[dict] = []
    replace = False
    for element in patch:
        if not isinstance(element, dict):
            raise PatchError(f"elements of a list merged by {key!r} must be objects")
        directive = element.get(_PATCH)
        if directive is None:
            plain.append(_require_key(element, key))
        elif directive == "delete":
            wanted = _require_key(element, key)[key]
            original = [o for o in original if not _has_key_value(o, key, wanted)]
        elif directive == "replace":
            replace = True
        else:
            raise PatchError(f"unsupported $patch directive {directive!r} in a list element")
    if replace:
        return _materialize_elements(plain, items)
    result = list(original)
    for element in plain:
        index = next((i for i, o in enumerate(result) if _has_key_value(o, key, element[key])), None)
        merged = _merge_map(result[index] if index is not None else {}, element, items)
        if index is None:
            result.append(merged)
        else:
            result[index] = merged
    return result


def _require_key(element: dict, key: str) -> dict:
    if key not in element:
        raise PatchError(f"list element {element!r} does not contain the merge key {key!r}")
    return element


def _has_key_value(element: Any, key: str, value: Any) -> bool:
    return isinstance(element, dict) and key in element and _json_equal(element[key], value)


def _apply_order(
    target: dict, field: str, order: list, before: Any, meta: ListMeta | None
) -> None:
    """Reorder ``target[field]`` as ``$setElementOrder/<field>`` asks.

    Listed elements take the given relative order; elements the order does not name keep
    their own relative order and are interleaved by their position in the list before the
    patch (``before``).
    """
    current = target.get(field)
    if not isinstance(current, list) or meta is None:
        return
    key_of = _key_function(meta)
    wanted = [_order_key(entry, meta) for entry in order]
    listed = [e for e in current if _contains(wanted, key_of(e))]
    listed.sort(key=lambda e: next(i for i, w in enumerate(wanted) if _json_equal(w, key_of(e))))
    rest = [e for e in current if not _contains(wanted, key_of(e))]
    server = [key_of(e) for e in before] if isinstance(before, list) else []
    target[field] = _merge_sorted(listed, rest, server, key_of)


def _key_function(meta: ListMeta) -> Callable[[Any], Any]:
    missing = object()
    if meta.merge_key is None:
        return lambda element: element
    key = meta.merge_key
    return lambda e: e[key] if isinstance(e, dict) and key in e else missing


def _order_key(entry: Any, meta: ListMeta) -> Any:
    if meta.merge_key is None:
        return entry
    if not isinstance(entry, dict) or meta.merge_key not in entry:
        raise PatchError(
            f"$setElementOrder entries must be objects with the merge key {meta.merge_key!r}"
        )
    return entry[meta.merge_key]


def _merge_sorted(listed: list, rest: list, server: list, key_of: Callable[[Any], Any]) -> list:
    """Interleave two ordered lists. An unlisted element the original list did not hold goes
    after the listed ones (apimachinery would put it first); otherwise a listed element goes
    first only when it, too, was in the original list and stood earlier there."""

    def position(element: Any) -> int:
        return next((i for i, k in enumerate(server) if _json_equal(k, key_of(element))), -1)

    result: list = []
    i = j = 0
    while i < len(listed) or j < len(rest):
        if j >= len(rest):
            result.append(listed[i])
            i += 1
        elif i >= len(listed):
            result.append(rest[j])
            j += 1
        else:
            left, right = position(listed[i]), position(rest[j])
            if right < 0 or 0 <= left < right:
                result.append(listed[i])
                i += 1
            else:
                result.append(rest[j])
                j += 1
    return result
