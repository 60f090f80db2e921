"""Tolerant readers of JSON values, shared by the views' ``from_obj`` constructors.

Each one mirrors a ``.get(...) or default`` chain: a missing key, ``null`` and an empty
value all give the default, and a value of the wrong JSON type (a string where an object
belongs) is treated as missing instead of raising later.
"""

from __future__ import annotations

import collections.abc
from typing import Any, TypeVar, cast

from ..types import ObjMap

T = TypeVar("T")

EMPTY: ObjMap = {}


def obj(value: Any) -> ObjMap:
    """``value or {}`` for a JSON object."""
    if type(value) is dict:
        return value
    if value is None or not isinstance(value, collections.abc.Mapping):
        return EMPTY
    return value


def objs(value: Any) -> tuple[ObjMap, ...]:
    """``value or []`` for an array of JSON objects (non-object entries are skipped)."""
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(v for v in value if type(v) is dict or isinstance(v, collections.abc.Mapping))


def text(value: Any, default: str = "") -> str:
    """``value or default`` as a string."""
    return str(value) if value else default


def texts(value: Any) -> tuple[str, ...]:
    """An array of strings (each entry ``str()``-ed, as the readers did)."""
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(str(v) for v in value)


def str_map(value: Any) -> dict[str, str]:
    """A ``map[string]string`` (labels, nodeSelector); a null value reads as ""."""
    return {str(k): "" if v is None else str(v) for k, v in obj(value).items()}


def integer(value: Any, default: int = 0) -> int:
    """``int(value or default)``; an unparsable value gives ``default``."""
    try:
        return int(value or default)
    except (TypeError, ValueError):
        return default


def opt_int(value: Any) -> int | None:
    """An optional integer where 0 and "unset" differ: None when missing, null or
    unparsable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def opt_bool(value: Any) -> bool | None:
    """An optional boolean where false and "unset" differ: None when missing or null."""
    return None if value is None else bool(value)


_DEFAULTS: dict[type, object] = {}


def default(cls: type[T]) -> T:
    """The shared all-defaults instance of a view class (views are frozen, so sharing is
    safe); ``from_obj`` returns it for a missing or empty object, which keeps reading the
    many absent parts of a typical pod cheap."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = _DEFAULTS[cls] = cls()
    return cast(T, found)
