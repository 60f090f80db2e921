"""User tokens: bearer tokens for people and programs, kept as Secrets in ``kube-system``.

``podling token create alice --group dev`` stores one; the API server authenticates its
bearer as user ``alice`` in groups ``dev`` and ``system:authenticated``. What the user may
do is then up to RBAC. A token is ``<id>.<secret>`` (6 and 16 characters of ``[a-z0-9]``,
the shape of Kubernetes' bootstrap tokens). Its Secret is ``podling-token-<id>`` of type
``podling.io/user-token`` and holds only the SHA-256 of the secret part, so reading the
Secret does not reveal the token; deleting the Secret revokes it at once.

Secret data (base64 in the API, as always):

    token-id              the id
    token-secret-sha256   hex SHA-256 of the secret part
    user                  the user name
    groups                the groups, comma-separated (may be empty)
    expiration            RFC 3339 time after which the token is refused (absent: never)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

NAMESPACE = "kube-system"
SECRET_TYPE = "podling.io/user-token"
NAME_PREFIX = "podling-token-"
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class TokenOwner:
    """Whom a valid token authenticates as."""

    user: str
    groups: tuple[str, ...]
    token_id: str


def secret_name(token_id: str) -> str:
    return NAME_PREFIX + token_id


def new_token() -> str:
    return ("".join(secrets.choice(_ALPHABET) for _ in range(6)) + "." +
            "".join(secrets.choice(_ALPHABET) for _ in range(16)))


def _digest(secret_part: str) -> str:
    return hashlib.sha256(secret_part.encode()).hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(token: str, user: str, groups: list[str], *,
                 ttl_seconds: float = 0, now: datetime | None = None) -> dict[str, Any]:
    """The Secret that makes ``token`` authenticate as ``user`` in ``groups`` (for
    ``ttl_seconds``; 0: until deleted)."""
    token_id, secret_part = TOKEN_PATTERN.fullmatch(token).groups()  # type: ignore[union-attr]
    data = {"token-id": token_id, "token-secret-sha256": _digest(secret_part), "user": user,
            "groups": ",".join(groups)}
    if ttl_seconds:
        until = (now or datetime.now(timezone.utc)) + timedelta(seconds=ttl_seconds)
        data["expiration"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(token_id), "namespace": NAMESPACE,
                         "labels": {"podling.io/token-user": _label_value(user)}},
            "data": {k: _b64(v) for k, v in data.items()}}


def _label_value(user: str) -> str:
    """The user name as a label value where it can be one, else "" (not searchable)."""
    return user if re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]", user) else ""


def decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    """The data of a user-token Secret as text (undecodable values are left out)."""
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def owner(secret: Mapping[str, Any], token: str,
          now: datetime | None = None) -> TokenOwner | None:
    """Whom ``token`` authenticates as by this Secret; None when it does not (another
    type, another secret, expired)."""
    match = TOKEN_PATTERN.fullmatch(token)
    if match is None or secret.get("type") != SECRET_TYPE:
        return None
    data = decoded(secret)
    if len(data) != len(secret.get("data") or {}):
        return None  # a value that is not base64 text: no licence
    if data.get("token-id") != match.group(1) or not data.get("user") or \
            not hmac.compare_digest(data.get("token-secret-sha256", ""),
                                    _digest(match.group(2))):
        return None
    if expired(data, now):
        return None
    groups = tuple(g for g in data.get("groups", "").split(",") if g)
    if AUTHENTICATED not in groups:
        groups += (AUTHENTICATED,)
    return TokenOwner(data["user"], groups, match.group(1))


def expired(data: Mapping[str, str], now: datetime | None = None) -> bool:
    text = data.get("expiration")
    if not text:
        return False
    try:
        until = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return True  # a garbled expiration is no licence
    return (now or datetime.now(timezone.utc)) >= until
