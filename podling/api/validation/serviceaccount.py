"""ServiceAccount and TokenRequest validation (``ValidateServiceAccount`` in
pkg/apis/core/validation and ``ValidateTokenRequest`` in pkg/apis/authentication/validation,
1.32).

A ServiceAccount's own rules are its metadata's (the name is a DNS subdomain); the shapes of
``secrets`` and ``imagePullSecrets`` are checked when the body is decoded.
"""

from __future__ import annotations

from typing import Any

from podling.api.errors import Cause, invalid
from podling.api.validation._util import as_dict, is_int
from podling.api.validation.meta import validate_object_meta, validate_object_meta_update

#: the shortest and the longest lifetime a TokenRequest may ask for, in seconds
MIN_TOKEN_SECONDS = 10 * 60
MAX_TOKEN_SECONDS = 1 << 32


def validate_service_account(sa: dict[str, Any]) -> list[Cause]:
    return validate_object_meta(as_dict(sa.get("metadata")), namespaced=True)


def validate_service_account_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    return validate_object_meta_update(as_dict(new.get("metadata")),
                                       as_dict(old.get("metadata"))) + \
        validate_service_account(new)


def validate_token_request(request: dict[str, Any]) -> list[Cause]:
    """``spec.expirationSeconds`` (already defaulted) between 10 minutes and 2^32 s."""
    seconds = as_dict(request.get("spec")).get("expirationSeconds")
    if not is_int(seconds):
        return []
    if seconds < MIN_TOKEN_SECONDS:
        return [invalid("spec.expirationSeconds", seconds,
                        "may not specify a duration less than 10 minutes")]
    if seconds > MAX_TOKEN_SECONDS:
        return [invalid("spec.expirationSeconds", seconds,
                        "may not specify a duration larger than 2^32 seconds")]
    return []
