"""Normalise timestamps as Kubernetes re-serialises them.

``metav1.Time`` fields come back in UTC with second precision (``2026-11-27T14:07:26Z``);
``metav1.MicroTime`` fields (lease times, event times) with microseconds
(``2026-11-27T14:07:26.123456Z``), whatever offset or precision the client sent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from podling.util.timefmt import format_rfc3339

from . import schema

MICRO_TIME_FIELDS = {
    ("io.k8s.api.coordination.v1.LeaseSpec", "acquireTime"),
    ("io.k8s.api.coordination.v1.LeaseSpec", "renewTime"),
    ("io.k8s.api.core.v1.Event", "eventTime"),
    ("io.k8s.api.core.v1.EventSeries", "lastObservedTime"),
}


def normalize_times(obj: Any, type_name: str) -> None:
    """Rewrite, in place, every date-time field of ``obj`` (already type-checked)."""
    if not isinstance(obj, dict):
        return
    props = schema.properties(type_name)
    for key, value in obj.items():
        field_schema = props.get(key)
        if field_schema is None or value is None:
            continue
        if field_schema.get("format") == "date-time" and isinstance(value, str):
            obj[key] = _format(value, micro=(type_name, key) in MICRO_TIME_FIELDS)
        else:
            _descend(value, field_schema)


def normalize_time(value: str, type_name: str, field: str) -> str:
    """One RFC 3339 value of ``type_name.field`` as Kubernetes re-serialises it."""
    return _format(value, micro=(type_name, field) in MICRO_TIME_FIELDS)


def _descend(value: Any, field_schema: dict) -> None:
    if "ref" in field_schema:
        normalize_times(value, field_schema["ref"])
    elif "items" in field_schema and isinstance(value, list):
        for item in value:
            _descend(item, field_schema["items"])
    elif "additionalProperties" in field_schema and isinstance(value, dict):
        for item in value.values():
            _descend(item, field_schema["additionalProperties"])


def _format(text: str, *, micro: bool) -> str:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return text  # type checking reports malformed timestamps
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    return format_rfc3339(value, micro=micro)
