"""Secret and ConfigMap payloads: Go's base64 for ``[]byte`` fields, stringData, defaults.

Kubernetes keeps ``Secret.data`` and ``ConfigMap.binaryData`` as bytes; on the wire they are
base64 (standard alphabet, padded). A value Go's decoder refuses makes the whole body a 400
(``Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte
4``); an accepted one is stored re-encoded canonically (Go skips ``\\r`` and ``\\n``).

``Secret.stringData`` is write-only: converting a request to the internal type merges it
into ``data`` (a stringData key wins) and drops it, so it is never stored or returned.
A Secret without ``type`` is ``Opaque``.

Pure functions on JSON dicts; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import string
from typing import Any

from .types import Obj

SECRET_TYPE_OPAQUE = "Opaque"
_ALPHABET = frozenset((string.ascii_letters + string.digits + "+/").encode())
_NEWLINES = (ord("\n"), ord("\r"))
_PAD = ord("=")


def base64_problem(text: str) -> str | None:
    """None when Go's ``base64.StdEncoding`` decodes ``text``, else Go's error message
    (``illegal base64 data at input byte N``, N a byte offset in the UTF-8 text)."""
    data = text.encode()
    si = 0
    while si < len(data):
        si, bad = _quantum(data, si)
        if bad is not None:
            return f"illegal base64 data at input byte {bad}"
    return None


def _quantum(data: bytes, si: int) -> tuple[int, int | None]:
    """One 4-character quantum from ``si``: (next index, offset of a problem or None);
    the next index is ``len(data)`` once padding ended the input."""
    j = 0
    while j < 4:
        if si == len(data):
            return si, (None if j == 0 else si - j)
        ch = data[si]
        si += 1
        if ch in _ALPHABET:
            j += 1
        elif ch in _NEWLINES:
            continue
        elif ch != _PAD or j < 2:
            return si, si - 1
        else:
            return len(data), _padding_problem(data, si, j)
    return si, None


def _padding_problem(data: bytes, si: int, j: int) -> int | None:
    """After the first ``=`` of a quantum holding ``j`` characters: the rest must be the
    second ``=`` (when j == 2) and nothing but newlines."""
    if j == 2:
        si = _skip_newlines(data, si)
        if si == len(data):
            return len(data)
        if data[si] != _PAD:
            return si - 1
        si += 1
    si = _skip_newlines(data, si)
    return si if si < len(data) else None


def _skip_newlines(data: bytes, si: int) -> int:
    while si < len(data) and data[si] in _NEWLINES:
        si += 1
    return si


def decode(text: str) -> bytes:
    """The bytes of a value :func:`base64_problem` accepted."""
    cleaned = text.replace("\n", "").replace("\r", "")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return b""


def canonical(text: str) -> str:
    """How Kubernetes returns a stored ``[]byte`` value given as ``text``."""
    return base64.b64encode(decode(text)).decode()


def _canonical_map(obj: Obj, field: str) -> None:
    values = obj.get(field)
    if isinstance(values, dict):
        obj[field] = {k: canonical(v) if isinstance(v, str) else "" for k, v in values.items()}


def _drop_empty(obj: Obj, *fields: str) -> None:
    """Empty (or null) maps are not kept, as Kubernetes' storage does not keep them."""
    for field in fields:
        if field in obj and not obj[field]:
            del obj[field]


def prepare_secret(secret: Obj) -> None:
    """In place: ``type`` defaulted to Opaque, ``stringData`` merged into ``data`` (base64)
    and removed, ``data`` values canonical, an empty ``data`` dropped."""
    if not secret.get("type"):
        secret["type"] = SECRET_TYPE_OPAQUE
    _canonical_map(secret, "data")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        current = secret.get("data")
        data: dict[str, Any] = current if isinstance(current, dict) else {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value or "").encode()).decode()
        secret["data"] = data
    _drop_empty(secret, "data")


def prepare_config_map(config_map: Obj) -> None:
    """In place: ``binaryData`` values canonical; empty maps dropped."""
    _canonical_map(config_map, "binaryData")
    _drop_empty(config_map, "data", "binaryData")


def byte_sizes(values: Any) -> dict[str, int]:
    """Decoded sizes of a ``[]byte`` map (what the size limit and describe count)."""
    if not isinstance(values, dict):
        return {}
    return {k: len(decode(v)) if isinstance(v, str) else 0 for k, v in values.items()}
