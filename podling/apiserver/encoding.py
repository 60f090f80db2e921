"""JSON encoding of stored objects, once per object version.

A stored object (:class:`podling.storage.compact.Stored`) carries the bytes the store encoded
it to at its write, so every get, list and watcher sends those bytes; anything else is
encoded here. Nothing is cached by identity, so no old version is kept alive.
"""

from __future__ import annotations

import json
from typing import Any, Iterable


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def encode_stored(obj: dict) -> bytes:
    """The JSON of an object, its stored encoding when it has one."""
    data = getattr(obj, "encoded", None)
    return data if data is not None else dumps(obj)


def encode_list(kind: str, api_version: str, resource_version: str,
                items: Iterable[dict | bytes]) -> bytes:
    """A ``<Kind>List`` of objects (or of their encodings), joining their encodings."""
    head = dumps({"kind": kind, "apiVersion": api_version,
                  "metadata": {"resourceVersion": resource_version}})
    return head[:-1] + b',"items":[' + b",".join(
        o if isinstance(o, bytes) else encode_stored(o) for o in items) + b"]}"


class _LastLine:
    """The line of the last stored object sent: every watcher of a change sends the same one,
    one after the other, so it is built once (holding one object alive, not a history)."""

    type: str | None = None
    obj: dict | None = None
    line: bytes = b""


def encode_event(type_: str, obj: dict, *, stored: bool = True) -> bytes:
    """One watch line; ``stored=False`` for objects built just for this event."""
    if not stored:
        return _frame(type_, dumps(obj))
    last = _LastLine
    if last.obj is not obj or last.type != type_:
        last.type, last.obj, last.line = type_, obj, _frame(type_, encode_stored(obj))
    return last.line


def _frame(type_: str, body: bytes) -> bytes:
    return b'{"type":"' + type_.encode() + b'","object":' + body + b"}\n"
