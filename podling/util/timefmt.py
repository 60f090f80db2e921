"""RFC 3339 timestamps the way Kubernetes writes them: the one home for formatting them.

Two shapes, both UTC with a ``Z``: metav1.Time (seconds, ``2026-11-27T14:07:26Z``) and
metav1.MicroTime (``2026-11-27T14:07:26.123456Z``, ``micro=True``). Nothing else in podling
calls ``strftime`` for API timestamps.
"""

from __future__ import annotations

import datetime as _dt
import re

_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_rfc3339(when: _dt.datetime, *, micro: bool = False) -> str:
    """Format an aware datetime as metav1.Time (or MicroTime with ``micro``)."""
    return when.astimezone(_dt.timezone.utc).strftime(_MICRO if micro else _SECONDS)


def epoch_rfc3339(seconds: float, *, micro: bool = False) -> str:
    """Epoch seconds (``time.time()``, a fake clock) as metav1.Time / MicroTime."""
    return format_rfc3339(_dt.datetime.fromtimestamp(seconds, _dt.timezone.utc), micro=micro)


def now_rfc3339() -> str:
    """The current UTC time with second precision, e.g. ``2026-11-27T14:07:26Z``."""
    return format_rfc3339(_dt.datetime.now(_dt.timezone.utc))


def now_rfc3339_micro() -> str:
    """The current UTC time with microseconds (metav1.MicroTime)."""
    return format_rfc3339(_dt.datetime.now(_dt.timezone.utc), micro=True)


def parse_rfc3339(text: str) -> _dt.datetime:
    """Parse a Kubernetes timestamp; raises ValueError on anything else."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = _dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return value


_RFC3339_ANY = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_rfc3339_nano(text: str) -> tuple[_dt.datetime, int] | None:
    """An RFC 3339 time with up to nanoseconds and any offset (a CRI log record's stamp,
    Go's RFC3339Nano) as (the whole second in UTC, the nanoseconds); None if malformed."""
    match = _RFC3339_ANY.fullmatch(text)
    if not match:
        return None
    base, frac, zone = match.groups()
    second = _dt.datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return second.astimezone(_dt.timezone.utc), int((frac or "0").ljust(9, "0"))


def format_rfc3339_nano(second: _dt.datetime, nanos: int) -> str:
    """Kubernetes' RFC3339NanoFixed in UTC, as ``kubectl logs --timestamps`` prints it:
    ``2026-12-03T17:00:00.123456789Z`` (always nine digits)."""
    return second.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def human_duration(seconds: float) -> str:
    """kubectl's short age format (``5s``, ``3m10s``, ``2d4h``), as in apimachinery's HumanDuration.

    A negative duration within 2 s of now (clock skew) reads ``0s``; anything further in the
    future reads ``<invalid>``, as kubectl prints it.
    """
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        s = 0
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = (s % 3600) // 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        rest = days % 365
        return f"{days // 365}y{rest}d" if rest else f"{days // 365}y"
    return f"{hours // 24 // 365}y"
