"""Kubernetes API errors, answered on the wire as a ``Status`` object.

Every failure the API server reports is an :class:`ApiError`; the HTTP layer turns it into
``{"kind": "Status", "status": "Failure", "reason": ..., "code": ...}`` exactly as
apimachinery's ``StatusError`` does, so kubectl prints ``Error from server (<reason>): <message>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field error: ``field`` is the path (``spec.containers[0].image``)."""

    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueDuplicate, ...
    message: str
    field: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def required(path: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", "Required value" + (f": {detail}" if detail else ""), path)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_render(value)}: {detail}", path)


def not_supported(path: str, value: Any, allowed: list[str]) -> Cause:
    options = ", ".join(f'"{a}"' for a in allowed)
    return Cause("FieldValueNotSupported",
                 f"Unsupported value: {_render(value)}: supported values: {options}", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_render(value)}", path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def too_long(path: str, value: Any, limit: int) -> Cause:
    return Cause("FieldValueTooLong",
                 f"Too long: may not be more than {limit} bytes", path)


def _render(value: Any) -> str:
    """Render a value the way apimachinery's field errors do (%#v-ish)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value) + '"'


@dataclass
class ApiError(Exception):
    """An error the API answers with a Status body and the given HTTP code."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


class ProxiedError(ApiError):
    """An answer of a backend (a node's API) passed on as the plain text it was, as the
    Kubernetes API server passes on a kubelet's refusal of an exec or attach (kubectl then
    prints ``error: unable to upgrade connection: <text>``)."""


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    {"name": name, "group": group, "kind": resource} if group else
                    {"name": name, "kind": resource})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(409, "AlreadyExists",
                    f'{_qualified(resource, group)} "{name}" already exists', details)


def conflict(resource: str, name: str, detail: str, group: str = "") -> ApiError:
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
                    details)


def stale_update(resource: str, name: str, group: str = "") -> ApiError:
    return conflict(resource, name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again", group)


def invalid_object(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    """422 Invalid with one ``details.causes`` entry per field (apimachinery NewInvalid)."""
    if len(causes) == 1:
        summary = str(causes[0])
    else:
        summary = "[" + ", ".join(str(c) for c in causes) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind,
                               "causes": [c.as_dict() for c in causes]}
    if group:
        details["group"] = group
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden_request(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def aggregate(messages: list[str]) -> str:
    """Several error texts as apimachinery's aggregate error prints them: duplicates
    dropped, one alone as it is, more as ``[a, b]``."""
    distinct = list(dict.fromkeys(messages))
    return distinct[0] if len(distinct) == 1 else "[" + ", ".join(distinct) + "]"
