"""JSON encoding of stored objects, once per object version.

Objects handed out by the storage cache are immutable (a write makes a new dict), so the
encoding of one object can be reused by every get, list and watcher. The cache is keyed by
object identity and holds a reference to the object, so an id is never reused while cached.
"""

from __future__ import annotations

import collections
import json
from typing import Any

CACHE_SIZE = 50_000

_cache: collections.OrderedDict[int, tuple[Any, bytes]] = collections.OrderedDict()


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def encode_stored(obj: dict) -> bytes:
    """The JSON of a stored (never mutated) object, from the cache when possible."""
    key = id(obj)
    entry = _cache.get(key)
    if entry is not None and entry[0] is obj:
        _cache.move_to_end(key)
        return entry[1]
    data = dumps(obj)
    _cache[key] = (obj, data)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return data


def encode_list(kind: str, api_version: str, resource_version: str, items: list[dict]) -> bytes:
    """A ``<Kind>List`` of stored objects, joining their cached encodings."""
    head = dumps({"kind": kind, "apiVersion": api_version,
                  "metadata": {"resourceVersion": resource_version}})
    return head[:-1] + b',"items":[' + b",".join(encode_stored(o) for o in items) + b"]}"


def encode_event(type_: str, obj: dict, *, stored: bool = True) -> bytes:
    """One watch line; ``stored=False`` for objects built just for this event."""
    body = encode_stored(obj) if stored else dumps(obj)
    return b'{"type":"' + type_.encode() + b'","object":' + body + b"}\n"
