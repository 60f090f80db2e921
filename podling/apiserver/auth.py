"""Authentication by bearer token or client certificate, and the users it yields.

Every request but the public health, version and CA endpoints needs ``Authorization: Bearer``
with a known token, or a client certificate signed by the cluster CA (user: its common name,
groups: its organizations); anything else is answered 401 (a Status with reason
Unauthorized).
Tokens are the admin token (a fixed map) and whatever the ``lookups`` recognise: node tokens
and the join secret (:mod:`.nodeauth`), service-account JWTs (:mod:`.tokenrequest`). What a
user may do is decided by :mod:`.authz`.
"""

from __future__ import annotations

import contextvars
import hmac
import inspect
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api import errors
from . import authz

USER_KEY = web.RequestKey("user", object)  # the authenticated User of a request
#: the user of the request being served, for code below the handlers (RBAC's escalation
#: checks in the registry), as Kubernetes keeps it in the request context
current_user: contextvars.ContextVar[User | None] = contextvars.ContextVar("user", default=None)
#: the application's RBAC authorizer (None: RBAC off, see :func:`.authz.decide`)
RBAC_KEY = web.AppKey("rbac", object)
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
        """Whether this user may perform the described action without RBAC (see
        :func:`.authz.decide`): a SelfSubjectAccessReview spec or :class:`~.authz.Attributes`;
        ``obj`` when :func:`.authz.needs_object`."""
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


def certificate_user(peer: Any) -> User | None:
    """The user of a verified client certificate (``ssl`` peercert form): the common name,
    in the groups of its organizations, as Kubernetes' x509 authenticator reads it."""
    if not isinstance(peer, dict):
        return None
    attributes = [attr for rdn in peer.get("subject") or () for attr in rdn]
    names = [value for key, value in attributes if key == "commonName"]
    if not names or not names[0]:
        return None
    groups = tuple(value for key, value in attributes if key == "organizationName")
    return User(names[0], groups + ("system:authenticated",))


def auth_middleware(authenticator: TokenAuthenticator) -> Callable:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        user = await authenticator.authenticate(request.headers.get("Authorization"))
        if user is None and not request.headers.get("Authorization") and \
                request.transport is not None:
            user = certificate_user(request.transport.get_extra_info("peercert"))
        if user is None:
            if request.headers.get("Authorization") or request.path not in PUBLIC_PATHS:
                raise errors.unauthorized()
            user = ANONYMOUS
        return await serve_as(user, request, handler)
    return middleware


async def serve_as(user: User, request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
    """Run ``handler`` for ``request`` made by ``user`` (``request[USER_KEY]`` and
    :data:`current_user`)."""
    request[USER_KEY] = user
    token = current_user.set(user)
    try:
        return await handler(request)
    finally:
        current_user.reset(token)
