"""Stored objects kept as their encoded JSON bytes, decoded on demand.

The cache keeps each current object, and each retained event, as compact UTF-8 JSON
(:func:`encode`); a Python dict tree costs several times the bytes of its JSON. A decoded
object is a :class:`Stored`: a plain dict that also carries the exact bytes it was decoded
from (``encoded``), so a response or a watch event can send those bytes without encoding the
object again. The bytes describe only the top-level object as decoded: callers treat stored
objects as read-only (see :mod:`.interface`), and every copy (``dict(o)``, ``copy.copy``,
``copy.deepcopy``, :func:`podling.util.jsoncopy.clone`) is a plain dict without them.
"""

from __future__ import annotations

import copy
import json
from typing import Any


class Stored(dict):
    """A decoded stored object and its encoding (``encoded``)."""

    __slots__ = ("encoded",)

    encoded: bytes

    def __copy__(self) -> dict:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict:
        return copy.deepcopy(dict(self), memo)

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


def encode(obj: dict) -> bytes:
    """Compact JSON, UTF-8 (the form the API sends and the cache keeps)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> Stored:
    """A fresh object decoded from ``data``, remembering ``data``."""
    obj = Stored(json.loads(data))
    obj.encoded = data
    return obj


def freeze(obj: dict) -> Stored:
    """``obj`` (a new object, not shared with anyone) as a :class:`Stored`: a shallow copy
    carrying its encoding."""
    stored = Stored(obj)
    stored.encoded = encode(obj)
    return stored
