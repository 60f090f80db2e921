"""A deep copy of JSON-shaped values, several times faster than :func:`copy.deepcopy`.

API objects are trees of dicts and lists over str / int / float / bool / None; copying them
does not need ``deepcopy``'s memo or its per-type dispatch. Any other value inside (a tuple,
a set, an object) is still copied with :func:`copy.deepcopy`, so the result never shares a
mutable part with the input.
"""

from __future__ import annotations

import copy
from typing import TypeVar

T = TypeVar("T")

_ATOMS = frozenset({str, int, float, bool, type(None)})


def clone(value: T) -> T:
    """A copy of ``value`` sharing no mutable part with it (dicts and lists keep their
    types and key order)."""
    cls = type(value)
    if cls is dict:
        return {k: v if type(v) in _ATOMS else clone(v)  # type: ignore[return-value]
                for k, v in value.items()}  # type: ignore[attr-defined]
    if cls is list:
        return [v if type(v) in _ATOMS else clone(v)  # type: ignore[return-value]
                for v in value]  # type: ignore[attr-defined]
    if cls in _ATOMS:
        return value
    if isinstance(value, dict):  # a dict subclass (a stored object): copied as a plain dict
        return {k: clone(v) for k, v in value.items()}  # type: ignore[return-value]
    return copy.deepcopy(value)
