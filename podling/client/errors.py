"""The client's errors.

    ApiError (podling.api.errors)   the server answered non-2xx; carries its Status
      └─ Expired                    410: the resource version is too old, re-list
    ApiConnectionError (ConnectionError)   no usable answer: refused, TLS failure, reset,
                                           timeout, a stream cut in the middle

Callers switch on ``ApiError.code`` / ``.reason`` exactly as on the server side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..api.errors import ApiError

# apimachinery's reason for a bare HTTP code (NewGenericServerResponse)
_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
    413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Expired(ApiError):
    """410 Gone / reason Expired: the requested resource version is no longer retained."""


class ApiConnectionError(ConnectionError):
    """The request got no usable answer (refused, TLS, reset, timeout, cut stream).

    Nothing is retried inside the client; the caller's next pass tries again."""


def from_status(status: dict[str, Any], http_code: int) -> ApiError:
    """The exception for a Status object (from a response body or a watch ERROR event)."""
    code = status.get("code") or http_code
    if not isinstance(code, int):
        code = http_code
    reason = status.get("reason") or _REASONS.get(code, "Unknown")
    message = status.get("message") or f"the server responded with code {code}"
    details = status.get("details")
    cls = Expired if code == 410 or reason in ("Expired", "Gone") else ApiError
    return cls(code, reason, message, details if isinstance(details, dict) else None)


def from_response(http_code: int, body: bytes, headers: dict[str, str] | None = None) -> ApiError:
    """The exception for a non-2xx answer: its Status body, or a generic one built from the
    code when the body is not a Status (plain text, HTML, empty)."""
    status: dict[str, Any] = {}
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        status = parsed
    else:
        text = body.decode("utf-8", "replace").strip()[:512]
        status = {"message": text or None}
    error = from_status(status, http_code)
    if headers:
        error.headers.update(headers)
    return error
