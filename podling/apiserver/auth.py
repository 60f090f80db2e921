"""Authentication by bearer token, and the users it yields.

Every request but the public health and version endpoints needs ``Authorization: Bearer``
with a known token; anything else is answered 401 (a Status with reason Unauthorized).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api import errors

USER_KEY = web.RequestKey("user", object)  # the authenticated User of a request
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    admin: bool = False

    def allows(self, attributes: dict[str, Any]) -> bool:
        """Whether this user may perform the described action (admins may do anything)."""
        return self.admin


ADMIN = User("admin", ("system:masters", "system:authenticated"), admin=True)
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


class TokenAuthenticator:
    """Maps bearer tokens to users."""

    def __init__(self, tokens: dict[str, User]) -> None:
        self._tokens = dict(tokens)

    def authenticate(self, header: str | None) -> User | None:
        if not header or not header.startswith("Bearer "):
            return None
        offered = header[len("Bearer "):].strip()
        for token, user in self._tokens.items():
            if hmac.compare_digest(token.encode(), offered.encode()):
                return user
        return None


def auth_middleware(authenticator: TokenAuthenticator) -> Callable:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        user = authenticator.authenticate(request.headers.get("Authorization"))
        if user is None:
            if request.headers.get("Authorization") or request.path not in PUBLIC_PATHS:
                raise errors.unauthorized()
            user = ANONYMOUS
        request[USER_KEY] = user
        return await handler(request)
    return middleware
