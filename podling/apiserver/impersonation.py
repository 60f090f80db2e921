"""Impersonation: a user acting as another (``kubectl --as``, ``--as-group``, ``--as-uid``).

The headers ``Impersonate-User``, ``Impersonate-Group`` (repeatable), ``Impersonate-Uid`` and
``Impersonate-Extra-<key>`` name the user a request is made as. The real user needs the
``impersonate`` verb on each thing named, as in Kubernetes:

=====================================  ===============================================
header                                 checked as
=====================================  ===============================================
Impersonate-User: alice                users "alice" (group "")
Impersonate-User: system:serviceaccount:ns:sa
                                       serviceaccounts "sa" in namespace ns
Impersonate-Group: dev                 groups "dev"
Impersonate-Uid: 1234                  uids.authentication.k8s.io "1234"
Impersonate-Extra-scopes: view         userextras.authentication.k8s.io/scopes "view"
=====================================  ===============================================

A refusal is the usual 403 (``users "bob" is forbidden: User "alice" cannot impersonate
resource "users" in API group "" at the cluster scope``). Groups, extra or a uid without a
user is a 400. The impersonated user gets the groups named (a service account without
groups named: its own groups) plus ``system:authenticated``, unless the groups named
include ``system:authenticated`` or ``system:unauthenticated``.
"""

from __future__ import annotations

from typing import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDictProxy

from ..api import errors
from . import authz
from .auth import RBAC_KEY, USER_KEY, User, serve_as

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"
AUTHENTICATED, UNAUTHENTICATED = "system:authenticated", "system:unauthenticated"


@web.middleware
async def impersonation_middleware(request: web.Request,
                                   handler: Callable[[web.Request],
                                                     Awaitable[web.StreamResponse]]
                                   ) -> web.StreamResponse:
    """After authentication: the request's user becomes the one impersonated, if any."""
    if not any(h.lower().startswith("impersonate-") for h in request.headers):
        return await handler(request)
    user = impersonate(request[USER_KEY], request.headers, request.app.get(RBAC_KEY))
    return await serve_as(user, request, handler)


def impersonate(requester: User, headers: CIMultiDictProxy[str],
                rbac: authz.RuleEvaluator | None) -> User:
    """The user the request is made as; raises 403 (or 400) when it may not be."""
    name = headers.get(USER_HEADER, "")
    groups = list(headers.getall(GROUP_HEADER, []))
    uid = headers.get(UID_HEADER, "")
    extra: dict[str, list[str]] = {}
    for header, value in headers.items():
        if header.lower().startswith(EXTRA_PREFIX):
            extra.setdefault(unquote(header[len(EXTRA_PREFIX):].lower()), []).append(value)
    if not name:
        raise errors.bad_request("requested impersonation of groups, extra or a uid without "
                                 "impersonating a user")
    account = _service_account(name)
    checks = [authz.Attributes(verb="impersonate", resource="serviceaccounts",
                               namespace=account[0], name=account[1]) if account else
              authz.Attributes(verb="impersonate", resource="users", name=name)]
    checks += [authz.Attributes(verb="impersonate", resource="groups", name=g) for g in groups]
    checks += [authz.Attributes(verb="impersonate", resource="userextras", subresource=key,
                                group=AUTHENTICATION_GROUP, name=value)
               for key, values in extra.items() for value in values]
    if uid:
        checks.append(authz.Attributes(verb="impersonate", resource="uids",
                                       group=AUTHENTICATION_GROUP, name=uid))
    for attrs in checks:
        allowed, reason = authz.decide(requester, attrs, rbac=rbac)
        if not allowed:
            raise authz.forbidden(requester, attrs, reason)
    if account and not groups:
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{account[0]}"]
    if name == "system:anonymous":
        if UNAUTHENTICATED not in groups:
            groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return User(name, tuple(groups), uid=uid,
                extra=tuple((key, tuple(values)) for key, values in extra.items()))


def _service_account(name: str) -> tuple[str, str] | None:
    """(namespace, name) of a ``system:serviceaccount:<ns>:<name>`` user name, else None."""
    if not name.startswith(authz.SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, account = name[len(authz.SERVICE_ACCOUNT_PREFIX):].partition(":")
    return (namespace, account) if namespace and account and ":" not in account else None
