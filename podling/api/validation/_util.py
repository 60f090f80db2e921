"""Small helpers shared by the validators: field paths, lenient getters, extra Causes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from podling.api.errors import Cause, _render, invalid

NEGATIVE_MSG = "must be greater than or equal to 0"
IMMUTABLE_MSG = "field is immutable"


def not_found(path: str, value: Any, detail: str = "") -> Cause:
    """apimachinery ``field.NotFound``: ``Not found: "data"`` (reason FieldValueNotFound)."""
    message = f"Not found: {_render(value)}" + (f": {detail}" if detail else "")
    return Cause("FieldValueNotFound", message, path)


def child(path: str, *names: str) -> str:
    """``child("spec", "containers")`` -> ``spec.containers``."""
    parts = [path] if path else []
    return ".".join(parts + list(names))


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def dicts(value: Any) -> list[dict[str, Any]]:
    """List items that are objects; anything else reads as an empty object."""
    return [item if isinstance(item, dict) else {} for item in as_list(value)]


def each_msg(path: str, value: Any, messages: list[str]) -> list[Cause]:
    """One Invalid cause per message (the Go ``for _, msg := range ...`` idiom)."""
    return [invalid(path, value, msg) for msg in messages]


def check_format(path: str, value: str, fn: Callable[[str], list[str]]) -> list[Cause]:
    return each_msg(path, value, fn(value))


def nonnegative(path: str, value: Any) -> list[Cause]:
    """apimachinery ``ValidateNonnegativeField`` (absent counts as 0)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, NEGATIVE_MSG)]
    return []


def is_int(value: Any) -> TypeGuard[int]:
    """An integer, not a bool (JSON true is not a number)."""
    return isinstance(value, int) and not isinstance(value, bool)


def invalid_raw(path: str, text: str, detail: str) -> Cause:
    """An Invalid cause whose value is printed verbatim (Go values with a String method)."""
    return Cause("FieldValueInvalid", f"Invalid value: {text}: {detail}", path)


def go_time(value: Any) -> str:
    """Render an RFC 3339 timestamp like Go's ``time.Time.String`` (``null`` when unset)."""
    from datetime import datetime, timezone

    if not isinstance(value, str) or not value:
        return "null" if value is None else "0001-01-01 00:00:00 +0000 UTC"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return value
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + " +0000 UTC"


def validate_each(items: list[Any], path: str,
                  fn: Callable[[str, Any], list[Cause]]) -> list[Cause]:
    """Run ``fn(path[i], item)`` for every item."""
    errs: list[Cause] = []
    for i, item in enumerate(items):
        errs += fn(index(path, i), item)
    return errs
