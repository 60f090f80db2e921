"""The async REST client: one aiohttp session (keep-alive, TLS, bearer token) per ApiClient.

Every HTTP exchange goes through :meth:`ApiClient._send`, which adds the headers, turns a
non-2xx answer into an :class:`~podling.api.errors.ApiError` carrying the server's Status
(:class:`~podling.client.errors.Expired` for 410) and any transport failure into
:class:`~podling.client.errors.ApiConnectionError`. Nothing is retried here: callers are
level-triggered and try again on their next pass.

Namespaces: for a namespaced resource, ``namespace=None`` means "all namespaces" for
``list`` / ``watch``, and otherwise the object's ``metadata.namespace``, falling back to the
config's namespace (as kubectl does). Passing a namespace for a cluster-scoped resource is a
``ValueError``.

Who may call: any coroutine on the event loop the client was first used on. ``close()`` ends
the session; open watches on it end with ApiConnectionError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Literal, Mapping

import aiohttp

from ..api.resources import PODS, RESOURCES, Resource
from ..api.types import Obj
from . import errors
from .config import ClientConfig, TokenSource

log = logging.getLogger(__name__)

ResourceLike = Resource | str
PatchType = Literal["merge", "strategic", "json"]

JSON = "application/json"
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
MAX_WATCH_EVENT = 16 * 1024 * 1024  # bytes in one watch line before the stream is refused


def resolve(resource: ResourceLike) -> Resource:
    """A :class:`Resource` from itself or its plural name (``"pods"``, ``"leases"``)."""
    if isinstance(resource, Resource):
        return resource
    for candidate in RESOURCES:
        if candidate.name == resource:
            return candidate
    raise ValueError(f"unknown resource {resource!r}")


def resource_path(resource: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` (``/apis/GROUP/VERSION/…`` for groups)."""
    parts = ["/api/v1" if not resource.group else f"/apis/{resource.group}/{resource.version}"]
    if namespace:
        if not resource.namespaced:
            raise ValueError(f"{resource.name} is cluster-scoped; got namespace {namespace!r}")
        parts.append(f"/namespaces/{namespace}")
    parts.append(f"/{resource.name}")
    if name:
        parts.append(f"/{name}")
    elif subresource:
        raise ValueError("a subresource needs an object name")
    if subresource:
        parts.append(f"/{subresource}")
    return "".join(parts)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


class ApiClient:
    """Talks to one API server. Use ``async with ApiClient(cfg) as client`` or call
    :meth:`close`. The session is created on first use, inside the running loop."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._servers = (config.server, *config.fallback_servers)
        self._current = 0
        self._ssl = config.ssl_context()
        self._tokens = TokenSource(config.token, config.token_file)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections. Idempotent."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def server(self) -> str:
        """The URL requests go to now: ``config.server`` until it fails, then the next of
        ``config.fallback_servers`` (round robin). Nothing is retried here: callers retry as
        they would after any transport error, and watches resume from their last
        resourceVersion, which every server of one datastore honours."""
        return self._servers[self._current]

    def _failed(self, server: str) -> None:
        """``server`` could not be reached: move on from it (unless a concurrent request
        already has)."""
        if len(self._servers) > 1 and self.server == server:
            self._current = (self._current + 1) % len(self._servers)
            log.warning("API server %s unreachable; next requests go to %s", server,
                        self.server)

    # -- the one place HTTP happens ------------------------------------------------------

    def _session_now(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("ApiClient is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl else True,
                                             limit=self.config.max_connections)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _headers(self, content_type: str | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": self.config.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        token = self._tokens.get()
        if token and self.config.server.startswith("https://"):
            headers["Authorization"] = f"Bearer {token}"  # never in clear text, like kubectl
        return headers

    @asynccontextmanager
    async def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    body: bytes | None = None, content_type: str | None = None,
                    accept: str = JSON, timeout: aiohttp.ClientTimeout
                    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request; yield the 2xx response for the caller to read inside the block.

        Raises ApiError (with the Status) for non-2xx, ApiConnectionError for transport
        failures, including those while the caller reads the body inside the block."""
        session = self._session_now()
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        server = self.server
        try:
            async with session.request(method, server + path, params=query,
                                       data=body, headers=self._headers(content_type, accept),
                                       timeout=timeout, allow_redirects=False) as response:
                if not 200 <= response.status < 300:
                    raw = await response.read()
                    raise errors.from_response(response.status, raw, _warning(response))
                _log_warnings(response)
                yield response
        except (errors.ApiConnectionError, errors.ApiError):
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError, OSError) as exc:
            self._failed(server)
            raise errors.ApiConnectionError(
                f"{method} {server}{path}: {type(exc).__name__}: {exc}") from exc

    def _timeout(self, seconds: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=seconds or self.config.request_timeout,
                                     sock_connect=self.config.connect_timeout)

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = JSON,
                      timeout: float | None = None) -> Any:
        """One request with a JSON answer (None for an empty body). ``body`` is JSON-encoded
        unless it is already bytes. Raises ApiError / ApiConnectionError."""
        data = body if isinstance(body, (bytes, type(None))) else _dumps(body)
        async with self._send(method, path, params=params, body=data,
                              content_type=content_type if data is not None else None,
                              timeout=self._timeout(timeout)) as response:
            raw = await response.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise errors.ApiConnectionError(
                f"{method} {path}: the server answered {response.status} with a body that is "
                f"not JSON") from exc

    # -- verbs ---------------------------------------------------------------------------

    def _namespace(self, resource: Resource, namespace: str | None, obj: Obj | None = None
                   ) -> str | None:
        if not resource.namespaced:
            if namespace:
                raise ValueError(f"{resource.name} is cluster-scoped; got namespace {namespace!r}")
            return None
        return namespace or (_meta(obj).get("namespace") if obj else None) or self.config.namespace

    async def get(self, resource: ResourceLike, name: str, namespace: str | None = None) -> Obj:
        """GET one object. 404 → ApiError(code=404, reason="NotFound")."""
        res = resolve(resource)
        return await self.request("GET", resource_path(res, self._namespace(res, namespace), name))

    async def list(self, resource: ResourceLike, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "") -> tuple[list[Obj], str]:
        """LIST → (items, the list's resourceVersion, a valid watch starting point).
        ``namespace=None`` lists every namespace."""
        res = resolve(resource)
        body = await self.request("GET", resource_path(res, namespace), params={
            "labelSelector": label_selector, "fieldSelector": field_selector})
        return list(body.get("items") or []), str(_meta(body).get("resourceVersion", ""))

    async def create(self, resource: ResourceLike, obj: Obj, namespace: str | None = None) -> Obj:
        """POST ``obj``; returns the stored object (409 AlreadyExists, 422 Invalid, …)."""
        res = resolve(resource)
        path = resource_path(res, self._namespace(res, namespace, obj))
        return await self.request("POST", path, body=obj)

    async def update(self, resource: ResourceLike, obj: Obj) -> Obj:
        """PUT ``obj`` at its own name. With ``metadata.resourceVersion`` set, a stale copy is
        refused with 409 Conflict (optimistic concurrency)."""
        return await self._put(resolve(resource), obj, None)

    async def update_status(self, resource: ResourceLike, obj: Obj) -> Obj:
        """PUT ``obj`` to its status subresource (only ``status`` changes)."""
        return await self._put(resolve(resource), obj, "status")

    async def _put(self, res: Resource, obj: Obj, subresource: str | None) -> Obj:
        name = _meta(obj).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        path = resource_path(res, self._namespace(res, None, obj), name, subresource)
        return await self.request("PUT", path, body=obj)

    async def patch(self, resource: ResourceLike, name: str, patch: Any,
                    namespace: str | None = None, *, patch_type: PatchType = "merge",
                    subresource: str | None = None) -> Obj:
        """PATCH with a merge (RFC 7386), strategic merge or JSON (RFC 6902) patch document;
        ``subresource="status"`` patches the status. Returns the patched object."""
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"patch_type must be one of {', '.join(PATCH_CONTENT_TYPES)}")
        res = resolve(resource)
        path = resource_path(res, self._namespace(res, namespace), name, subresource)
        body = patch.encode() if isinstance(patch, str) else patch
        return await self.request("PATCH", path, body=body,
                                  content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, resource: ResourceLike, name: str, namespace: str | None = None, *,
                     grace_period: int | None = None,
                     preconditions: Mapping[str, str] | None = None) -> Obj:
        """DELETE with DeleteOptions. ``preconditions`` may hold ``uid`` and/or
        ``resourceVersion`` (409 Conflict when they no longer match). Returns what the server
        answers: the object (marked for graceful deletion, or as it was) or a Status."""
        res = resolve(resource)
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if preconditions:
            options["preconditions"] = dict(preconditions)
        path = resource_path(res, self._namespace(res, namespace), name)
        return await self.request("DELETE", path, body=options)

    async def bind(self, pod_namespace: str, pod_name: str, node_name: str,
                   uid: str | None = None) -> None:
        """POST pods/{name}/binding: assign the pod to ``node_name`` (what a scheduler does).
        With ``uid`` the binding only applies to that incarnation of the pod. 409 Conflict
        when it is already bound or being deleted."""
        meta: Obj = {"name": pod_name, "namespace": pod_namespace}
        if uid:
            meta["uid"] = uid
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": meta,
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        await self.request("POST", resource_path(PODS, pod_namespace, pod_name, "binding"),
                           body=binding)

    async def watch(self, resource: ResourceLike, namespace: str | None = None, *,
                    resource_version: str = "", label_selector: str = "",
                    field_selector: str = "", timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, Obj]]:
        """Stream ``(type, object)`` for ADDED / MODIFIED / DELETED / BOOKMARK events.

        ``resource_version`` "" or "0" starts with synthetic ADDED events for the current
        state; "N" sends every change after N. The iterator ends when the server ends the
        stream (``timeout_seconds``, shutdown). An ERROR event raises: :class:`Expired` for
        410 (re-list, then watch from the new list's version), ApiError otherwise; a cut
        connection raises ApiConnectionError.

        This is an async generator: close it when done early, e.g.
        ``async with contextlib.aclosing(client.watch(...)) as events:``; cancelling the
        consuming task closes the connection too.
        """
        res = resolve(resource)
        params = {"watch": "true", "resourceVersion": resource_version,
                  "labelSelector": label_selector, "fieldSelector": field_selector,
                  "allowWatchBookmarks": "true" if allow_bookmarks else "",
                  "timeoutSeconds": "" if timeout_seconds is None else str(timeout_seconds)}
        total = None if timeout_seconds is None else timeout_seconds + self.config.request_timeout
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=self.config.connect_timeout)
        async with self._send("GET", resource_path(res, namespace), params=params,
                              timeout=timeout) as response:
            async for line in _lines(response.content):
                yield _decode_event(line)


def _decode_event(line: bytes) -> tuple[str, Obj]:
    try:
        event = json.loads(line)
        type_, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.ApiConnectionError(f"malformed watch event: {line[:200]!r}") from exc
    if type_ == "ERROR":
        raise errors.from_status(obj if isinstance(obj, dict) else {}, 500)
    return type_, obj


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Split a chunked body into non-empty lines, whatever the chunk boundaries."""
    buffer = bytearray()
    async for chunk in content.iter_any():
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end])
            start = end + 1
            if line.strip():
                yield line
        del buffer[:start]
        if len(buffer) > MAX_WATCH_EVENT:
            raise errors.ApiConnectionError(f"a watch event exceeded {MAX_WATCH_EVENT} bytes")
    if bytes(buffer).strip():
        yield bytes(buffer)


def _warning(response: aiohttp.ClientResponse) -> dict[str, str]:
    value = response.headers.get("Warning")
    return {"Warning": value} if value else {}


def _log_warnings(response: aiohttp.ClientResponse) -> None:
    for value in response.headers.getall("Warning", []):
        log.info("server warning for %s %s: %s", response.method, response.url.path, value)
