"""Authentication by bearer token, and the users it yields.

Every request but the public health, version and CA endpoints needs ``Authorization: Bearer``
with a known token; anything else is answered 401 (a Status with reason Unauthorized).
Tokens are the admin token (a fixed map) and whatever the ``lookups`` recognise: node tokens
and the join secret (:mod:`.nodeauth`), service-account JWTs (:mod:`.tokenrequest`). What a
user may do is decided by :mod:`.authz`.
"""

from __future__ import annotations

import hmac
import inspect
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api import errors
from . import authz

USER_KEY = web.RequestKey("user", object)  # the authenticated User of a request
# as Kubernetes' system:public-info-viewer role: health, and the version with or without "/"
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/version/", "/cacerts")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    admin: bool = False
    #: Kubernetes' user "extra" (e.g. ``authentication.kubernetes.io/pod-name``)
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    uid: str = ""  # a service account's uid

    def extra_value(self, key: str) -> str:
        """The first value of ``extra[key]``, or ""."""
        return next((values[0] for k, values in self.extra if k == key and values), "")

    def allows(self, attributes: dict[str, Any] | authz.Attributes,
               obj: dict[str, Any] | None = None) -> bool:
        """Whether this user may perform the described action: a SelfSubjectAccessReview
        spec or :class:`~.authz.Attributes`; ``obj`` when :func:`.authz.needs_object`."""
        if isinstance(attributes, dict):
            attributes = authz.Attributes.from_review(
                attributes if "resourceAttributes" in attributes or
                "nonResourceAttributes" in attributes else {"resourceAttributes": attributes})
        return authz.allowed(self, attributes, obj)


ADMIN = User("admin", ("system:masters", "system:authenticated"), admin=True)
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


Lookup = Callable[[str], "User | None | Awaitable[User | None]"]


class TokenAuthenticator:
    """Maps bearer tokens to users: fixed ``tokens`` first, then each of ``lookups`` (plain
    or async functions)."""

    def __init__(self, tokens: dict[str, User], lookups: tuple[Lookup, ...] = ()) -> None:
        self._tokens = dict(tokens)
        self._lookups = lookups

    async def authenticate(self, header: str | None) -> User | None:
        if not header or not header.startswith("Bearer "):
            return None
        offered = header[len("Bearer "):].strip()
        for token, user in self._tokens.items():
            if hmac.compare_digest(token.encode(), offered.encode()):
                return user
        for lookup in self._lookups:
            found = lookup(offered)
            if inspect.isawaitable(found):
                found = await found
            if found is not None:
                return found
        return None


def auth_middleware(authenticator: TokenAuthenticator) -> Callable:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        user = await authenticator.authenticate(request.headers.get("Authorization"))
        if user is None:
            if request.headers.get("Authorization") or request.path not in PUBLIC_PATHS:
                raise errors.unauthorized()
            user = ANONYMOUS
        request[USER_KEY] = user
        return await handler(request)
    return middleware
