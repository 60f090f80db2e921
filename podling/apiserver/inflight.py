"""kube-apiserver's max-in-flight filter: at most N requests at once, the rest answered 429.

Two budgets, as ``--max-requests-inflight`` (reads, default 400) and
``--max-mutating-requests-inflight`` (writes: POST, PUT, PATCH, DELETE; default 200). A
request over its budget is answered at once with 429 ``TooManyRequests``, "Too many
requests, please try again later.", ``Retry-After: 1`` and ``details.retryAfterSeconds``
1. Not counted, as in Kubernetes: long-running requests (watches; exec, attach,
portforward, log and proxy subresources), which hold their connection by design, and
``system:masters`` (the admin), so that an administrator can always get in. 0 turns a
budget off. Runs after authentication, before everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from ..api import errors
from .auth import USER_KEY, User

MESSAGE = "Too many requests, please try again later."
RETRY_AFTER_SECONDS = 1
_LONG_RUNNING_SUBRESOURCES = {"exec", "attach", "portforward", "log", "proxy"}
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_TRUE = {"true", "1"}


@dataclass(frozen=True)
class InflightLimits:
    readonly: int = 400
    mutating: int = 200


def long_running(request: web.Request) -> bool:
    """A watch, or a request for a subresource that streams (Kubernetes'
    BasicLongRunningRequestCheck)."""
    if request.query.get("watch", "").lower() in _TRUE:
        return True
    parts = request.path.rstrip("/").split("/")  # "", "api", v1, ... or "", "apis", g, v1, ...
    version_at = 2 if parts[1:2] == ["api"] else 3
    return parts[version_at + 1:version_at + 2] == ["watch"] or \
        parts[-1] in _LONG_RUNNING_SUBRESOURCES


def too_many_requests() -> errors.ApiError:
    return errors.ApiError(429, "TooManyRequests", MESSAGE,
                           {"retryAfterSeconds": RETRY_AFTER_SECONDS})


def inflight_middleware(limits: InflightLimits) -> Callable:
    """The filter as aiohttp middleware (after the authentication middleware)."""
    inflight = {True: 0, False: 0}  # mutating? -> requests being served

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        user: User | None = request.get(USER_KEY)
        if (user is not None and "system:masters" in user.groups) or long_running(request):
            return await handler(request)
        mutating = request.method in _MUTATING
        limit = limits.mutating if mutating else limits.readonly
        if limit and inflight[mutating] >= limit:
            raise too_many_requests()
        inflight[mutating] += 1
        try:
            return await handler(request)
        finally:
            inflight[mutating] -= 1
    return middleware
