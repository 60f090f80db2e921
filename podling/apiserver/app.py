"""The aiohttp application: middleware (errors as Status, authentication) and routes."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Protocol

from aiohttp import web

from ..api import errors
from ..storage.interface import StorageError, TooLarge
from . import bodies, debug, discovery, openapi
from .audit import (AUDITOR_KEY, Auditor, audit_middleware, on_response_prepare,
                    received_middleware)
from .auth import RBAC_KEY, TokenAuthenticator, auth_middleware
from .handlers import ResourceHandlers
from .impersonation import impersonation_middleware
from .limits import RequestLimits, inflight_middleware, timeout_middleware
from .rbac import RbacAuthorizer
from .registry.store import RegistryStore
from .registry.strategies import registry_stores
from .tokenrequest import TokenRequests
from .watch import WatchOptions

log = logging.getLogger(__name__)


@web.middleware
async def status_middleware(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
    """Answer every failure as a Kubernetes Status; never a traceback, never a bare 5xx page."""
    try:
        return await handler(request)
    except errors.ProxiedError as exc:
        return web.Response(status=exc.code, text=exc.message)
    except errors.ApiError as exc:
        return _status_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}.get(
            exc.status, "BadRequest")
        message = "the server could not find the requested resource" if exc.status == 404 \
            else exc.reason
        return _status_response(errors.ApiError(exc.status, reason, message))
    except (ConnectionResetError, ConnectionError):
        raise
    except TooLarge as exc:
        return _status_response(errors.ApiError(413, "RequestEntityTooLarge",
                                                f"Request entity too large: {exc}"))
    except StorageError as exc:  # the datastore failed (etcd without quorum, a full disk)
        log.warning("storage failed serving %s %s: %s", request.method, request.path, exc)
        return _status_response(errors.internal(str(exc)))
    except Exception as exc:  # last resort: a bug, reported as Status and logged
        log.exception("internal error serving %s %s", request.method, request.path)
        return _status_response(errors.internal(type(exc).__name__))


def _status_response(exc: errors.ApiError) -> web.Response:
    response = bodies.respond(exc.status(), exc.code)
    if exc.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="podling"'
    retry_after = (exc.details or {}).get("retryAfterSeconds")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok", content_type="text/plain")


async def _openapi_root(request: web.Request) -> web.Response:
    return bodies.respond(openapi.openapi_root())


async def _openapi_v2(request: web.Request) -> web.Response:
    protobuf = "protobuf" in request.headers.get("Accept", "")
    return web.Response(body=openapi.openapi_v2(protobuf), content_type=(
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" if protobuf
        else "application/json"))


async def _openapi_document(request: web.Request) -> web.Response:
    found = openapi.openapi_group_version(request.match_info["path"])
    if found is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                              {})
    body, etag = found
    if request.headers.get("If-None-Match") == f'"{etag}"':
        return web.Response(status=304)
    response = web.Response(body=body, content_type="application/json")
    response.headers["ETag"] = f'"{etag}"'
    return response


_DISCOVERY = (
    ("/version", discovery.version),
    ("/api", discovery.api),
    ("/apis", discovery.apis),
    ("/api/{version}", discovery.group_version),
    ("/apis/{group}", discovery.group),
    ("/apis/{group}/{version}", discovery.group_version),
)

__all__ = ["ExtraRoutes", "build_app", "registry_stores", "status_middleware"]


class ExtraRoutes(Protocol):
    """Endpoints outside the Kubernetes API (the node join endpoints of :mod:`.nodeauth`)."""

    def add_routes(self, router: web.UrlDispatcher) -> None: ...


def build_app(stores: dict[str, RegistryStore], authenticator: TokenAuthenticator,
              watch_options: WatchOptions = WatchOptions(), *,
              node_token: str | Callable[[str], str] = "",
              extra: ExtraRoutes | None = None,
              tokens: TokenRequests | None = None,
              limits: RequestLimits = RequestLimits(),
              rbac: RbacAuthorizer | None = None,
              auditor: Auditor | None = None) -> web.Application:
    """The API server's application over ``stores`` (see :func:`registry_stores`);
    ``tokens`` serves serviceaccounts/{name}/token (404 without it); ``rbac`` decides what
    users other than system:masters and nodes may do (without it: nothing but discovery);
    ``auditor`` records requests in the audit log (:mod:`.audit`)."""
    app = web.Application(middlewares=[audit_middleware, status_middleware,
                                       auth_middleware(authenticator), received_middleware,
                                       impersonation_middleware,
                                       inflight_middleware(limits),
                                       timeout_middleware(limits)],
                          client_max_size=bodies.MAX_BODY + 1, handler_args={"max_field_size": 65536})
    app[RBAC_KEY] = rbac
    app[AUDITOR_KEY] = auditor
    app.on_response_prepare.append(on_response_prepare)
    if auditor is not None:
        app.on_cleanup.append(auditor.close)
    resources = ResourceHandlers(stores, watch_options, node_token, tokens, authenticator, rbac)
    router = app.router
    for path in ("/healthz", "/livez", "/readyz"):
        router.add_get(path, _ok)
    for path, handler in _DISCOVERY:
        # Kubernetes serves these as go-restful GET("/") routes (and /apis/ beside /apis):
        # with a trailing slash too, which kr8s and other clients use (`/version/`, `/api/`)
        router.add_get(path, handler)
        router.add_get(path + "/", handler)
    router.add_get("/openapi/v2", _openapi_v2)
    router.add_get("/openapi/v3", _openapi_root)
    router.add_get("/openapi/v3/{path:.+}", _openapi_document)
    debug.add_routes(router)
    for prefix in ("/api/{tail:.+}", "/apis/{tail:.+}"):
        router.add_route("*", prefix, resources.handle)
    if extra is not None:
        extra.add_routes(router)
    return app
