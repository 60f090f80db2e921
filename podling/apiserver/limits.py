"""kube-apiserver's limits on ordinary requests: how many at once, and for how long.

**In flight.** Two budgets, as ``--max-requests-inflight`` (reads, default 400) and
``--max-mutating-requests-inflight`` (writes: POST, PUT, PATCH, DELETE; default 200). A
request over its budget is answered at once with 429 ``TooManyRequests``, "Too many
requests, please try again later.", ``Retry-After: 1`` and ``details.retryAfterSeconds``
1. ``system:masters`` (the admin) is not counted, so that an administrator can always get
in. 0 turns a budget off.

**Time.** ``--request-timeout`` (default 60 s) bounds every request, shortened by the
request's own ``?timeout=`` (kubectl's ``--request-timeout``); past it the answer is 504
``Timeout``: "Timeout: request did not complete within requested timeout - context
deadline exceeded". A client that sends its body slowly is cut off the same way.

Neither applies to long-running requests (watches; exec, attach, portforward, log and
proxy subresources), which hold their connection by design. Both run after
authentication, before everything else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from ..api import errors
from ..util.durations import parse_go_duration
from .auth import USER_KEY, User

MESSAGE = "Too many requests, please try again later."
RETRY_AFTER_SECONDS = 1
_LONG_RUNNING_SUBRESOURCES = {"exec", "attach", "portforward", "log", "proxy"}
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_TRUE = {"true", "1"}


@dataclass(frozen=True)
class RequestLimits:
    readonly: int = 400
    mutating: int = 200
    request_timeout: float = 60.0  # seconds; 0: none


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


def inflight_middleware(limits: RequestLimits) -> Callable:
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




def requested_timeout(text: str) -> float:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in seconds; 400 when it is none."""
    try:
        return parse_go_duration(text)
    except ValueError:
        raise errors.bad_request(f"invalid timeout specified in the request URL: "
                                 f'time: invalid duration "{text}"') from None


def timeout_error() -> errors.ApiError:
    return errors.ApiError(504, "Timeout", "Timeout: request did not complete within "
                           "requested timeout - context deadline exceeded", {})


def timeout_middleware(limits: RequestLimits) -> Callable:
    """The request timeout as aiohttp middleware (after the authentication middleware)."""
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if long_running(request):
            return await handler(request)
        seconds = limits.request_timeout
        if "timeout" in request.query:
            asked = requested_timeout(request.query["timeout"])
            seconds = min(seconds, asked) if seconds else asked
        if not seconds:
            return await handler(request)
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await handler(request)
        except TimeoutError:
            if deadline.expired():
                raise timeout_error() from None
            raise
    return middleware
