"""The node API: what the API server proxies to a node.

    GET /containerLogs/{namespace}/{pod}/{container}?follow&previous&timestamps&tailLines
        &sinceSeconds&sinceTime&limitBytes       → text/plain, streamed
    GET /exec/…, /attach/…, /portforward/…  → WebSocket sessions (:mod:`.streaming`)
    GET /stats/summary                      → node and container CPU / memory (:mod:`.stats`)
    GET|HEAD /v2/…                          → the node's images, read-only, over the OCI
                                              distribution API (:mod:`.registry`)

HTTPS with a self-signed certificate kept in ``<data-dir>/agent/node-api`` and reused
while valid for the node's hosts (:mod:`.certstore`); every request needs ``Authorization: Bearer`` with this
node's kubelet-client token, which only the API server (and this node) know — see
:mod:`podling.agent.bootstrap` (an agent started without one accepts its own API token
instead). The cluster's image-pull token (``pull_token``), which every node has, is accepted
too, but only for GET and HEAD under ``/v2/``: nodes pull each other's images with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import os
import ssl
import tempfile
from typing import Any, Callable

from aiohttp import web

from podling.agent.kuberuntime import labels
from podling.agent.kuberuntime.logs import LogNotFound, LogOptions, pick_file, read_logs
from podling.agent.node import registry
from podling.agent.node.certstore import ensure_serving_cert
from podling.agent.node.stats import NodeStats
from podling.agent.node.streaming import NodeStreams
from podling.api.views import PodView
from podling.images.interface import NodeImageStore
from podling.runtime.interface import ContainerState, RuntimeService
from podling.util.timefmt import parse_rfc3339


def _int(query, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


def _time(query, name: str) -> dt.datetime | None:
    """An RFC 3339 query parameter (``sinceTime``), as metav1.Time parses it."""
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an RFC 3339 time") from None


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


class NodeServer:
    """Serves the node API; ``find_pod(namespace, name)`` returns the API pod or None."""

    def __init__(self, *, token: str, pods_dir: str, runtime: RuntimeService,
                 find_pod: Callable[[str, str], dict[str, Any] | None],
                 cert_dir: str = "", pull_token: str = "",
                 images: NodeImageStore | None = None) -> None:
        self._token = token
        self._pull_token = pull_token
        self._images = images
        self._cert_dir = cert_dir
        self._pods_dir = pods_dir
        self._runtime = runtime
        self._find_pod = find_pod
        self._runner: web.AppRunner | None = None
        self._socket_path = ""
        self.port = 0

    async def start(self, host: str, port: int, *, socket_path: str = "") -> int:
        """Serve HTTPS on ``host:port`` (0: any free port; returned) and, with
        ``socket_path``, plain HTTP on that Unix socket (mode 0600) for an API server on
        this host: the same routes and token, without the cost of TLS."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/stats/summary", NodeStats(self._runtime, self._find_pod).handle)
        NodeStreams(self._runtime, self._find_pod).add_routes(app.router)
        if self._images is not None:
            registry.NodeRegistry(self._images).add_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._tls(host, self._cert_dir),
                           reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)  # a started TCPSite serves with one
        self.port = server.sockets[0].getsockname()[1]
        if socket_path:
            await self._serve_unix(socket_path)
        return self.port

    async def _serve_unix(self, path: str) -> None:
        assert self._runner is not None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by an agent that was killed
        site = web.UnixSite(self._runner, path)
        await site.start()
        os.chmod(path, 0o600)
        self._socket_path = path

    @staticmethod
    def _tls(host: str, cert_dir: str) -> ssl.SSLContext:
        """TLS with the certificate kept in ``cert_dir`` (:mod:`.certstore`), or with a
        throw-away one when ``cert_dir`` is empty."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        hosts = [host, "127.0.0.1", "localhost"]
        with contextlib.ExitStack() as stack:
            directory = cert_dir or stack.enter_context(tempfile.TemporaryDirectory())
            context.load_cert_chain(*ensure_serving_cert(directory, "podling-node", hosts))
        return context

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(offered.encode(), self._token.encode()):
            return await handler(request)
        image_read = registry.is_registry_path(request.path) and request.method in (
            "GET", "HEAD")
        if image_read and self._pull_token and hmac.compare_digest(
                offered.encode(), self._pull_token.encode()):
            return await handler(request)
        if registry.is_registry_path(request.path):
            return registry.unauthorized()
        raise web.HTTPUnauthorized(text="Unauthorized")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        pod = self._find_pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found on this node')
        query = request.query
        options = LogOptions(follow=query.get("follow") == "true",
                             previous=query.get("previous") == "true",
                             timestamps=query.get("timestamps") == "true",
                             tail_lines=_int(query, "tailLines"),
                             since_seconds=_int(query, "sinceSeconds"),
                             since_time=_time(query, "sinceTime"),
                             limit_bytes=_int(query, "limitBytes"))
        uid = PodView.from_obj(pod).metadata.uid
        container_dir = os.path.join(self._pods_dir, uid, "logs", container)
        try:
            path = pick_file(container_dir, previous=options.previous, pod=name,
                             container=container)
        except LogNotFound as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

        async def running() -> bool:
            found = await self._runtime.list_containers(
                labels={labels.POD_UID: uid, labels.CONTAINER_NAME: container})
            return bool(found) and found[-1].state == ContainerState.RUNNING

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        async for chunk in read_logs(path, options, running=running):
            await response.write(chunk)
        return response

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._socket_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket_path)
