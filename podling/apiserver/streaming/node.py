"""Reaching a pod's node: streaming sessions, logs and stats (docs/streaming.md §2).

:class:`NodeDialer` checks what the API server checks before Kubernetes upgrades a request
(the pod, its node, the container) and opens the node API's WebSocket with the node's
credentials. Every refusal is an :class:`~podling.api.errors.ApiError` raised *before* the
client's connection is upgraded: a ``Status``, or the node's own text where the node refused
(a container that is not running), as Kubernetes passes on the kubelet's answer.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, TypeVar

import aiohttp

from ...api import errors
from ...api import remotecommand as rc
from ...api.pods import is_terminal_phase
from ...api.resources import NODE_API_ANNOTATION, NODE_API_SOCKET_ANNOTATION
from ..registry.store import RegistryStore

T = TypeVar("T")
CONNECT_TIMEOUT = 10.0


def choose_container(pod: dict[str, Any], wanted: str) -> str:
    """The container to read; 400 with Kubernetes' text when none or an unknown one is named."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    names = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not wanted:
        if len(names) == 1:
            return names[0]
        raise errors.bad_request(f"a container name must be specified for pod {name}, choose "
                                 f"one of: [{' '.join(names)}]" +
                                 (f" or one of the init containers: [{' '.join(init)}]"
                                  if init else "") +
                                 (f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
                                  if ephemeral else ""))
    if wanted not in names + init + ephemeral:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def node_api_url(node: dict[str, Any]) -> str:
    annotated = ((node.get("metadata") or {}).get("annotations") or {}).get(NODE_API_ANNOTATION)
    if annotated:
        return annotated
    status = node.get("status") or {}
    ip = next((a["address"] for a in status.get("addresses") or []
               if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not ip or not port:
        raise errors.bad_request(f'node "{node["metadata"]["name"]}" has no reachable node API')
    return f"https://{ip}:{port}"


def check_container(pod: dict[str, Any], wanted: str, action: str) -> str:
    """The container a session targets (Kubernetes' messages when none or a wrong one is
    named, or the pod has completed). ``action`` is ``exec`` or ``attach``."""
    container = choose_container(pod, wanted)
    phase = (pod.get("status") or {}).get("phase", "")
    if is_terminal_phase(phase):
        verb = "exec into" if action == "exec" else "attach to"
        raise errors.bad_request(f"cannot {verb} a container in a completed pod; current "
                                 f"phase is {phase}")
    return container


class NodeDialer:
    """Reaches nodes' APIs (WebSockets for streams, GETs for logs and stats) with their
    credentials; one HTTP client session, shared by every request.

    A node whose API also listens on a Unix socket that exists on this host (the server's
    own local agent) is reached through it, without TLS; if that fails, over HTTPS."""

    def __init__(self, pods: RegistryStore, nodes: RegistryStore,
                 token: str | Callable[[str], str]) -> None:
        self.pods = pods
        self.nodes = nodes
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._local: dict[str, aiohttp.ClientSession] = {}

    async def pod(self, namespace: str, name: str) -> dict[str, Any]:
        """The pod (404 Status if missing; 400 if it is not on a node yet)."""
        pod = await self.pods.get(namespace, name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        return pod

    async def node_of(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The Node a (bound) pod runs on."""
        return await self.nodes.get(None, pod["spec"]["nodeName"])

    async def connect(self, pod: dict[str, Any], path: str,
                      params: Iterable[tuple[str, str]], protocol: str
                      ) -> aiohttp.ClientWebSocketResponse:
        """Open ``path`` on the pod's node as a WebSocket speaking ``protocol``."""
        node = await self.node_of(pod)

        async def dial(client: aiohttp.ClientSession, base: str,
                       headers: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
            return await client.ws_connect(
                base + path, params=list(params), protocols=(protocol,), headers=headers,
                ssl=False, max_msg_size=0, autoping=True, autoclose=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=5))
        ws = await self._reach(node, dial)
        if ws.protocol != protocol:
            await ws.close()
            raise errors.internal(f"the node {node['metadata']['name']} does not speak "
                                  f"{protocol}")
        return ws

    @contextlib.asynccontextmanager
    async def get(self, node: dict[str, Any], path: str,
                  params: Iterable[tuple[str, str]] = (), *, timeout: float | None = None
                  ) -> AsyncIterator[aiohttp.ClientResponse]:
        """``GET path`` on the node's API; the response is open inside the block (any
        status: the caller reads it). ``timeout`` bounds the whole request (None: none)."""
        async def request(client: aiohttp.ClientSession, base: str,
                          headers: dict[str, str]) -> aiohttp.ClientResponse:
            return await client.get(base + path, params=list(params), headers=headers,
                                    ssl=False, timeout=aiohttp.ClientTimeout(
                                        total=timeout, sock_connect=CONNECT_TIMEOUT))
        response = await self._reach(node, request)
        async with response:
            yield response

    async def _reach(self, node: dict[str, Any], attempt: Callable[
            [aiohttp.ClientSession, str, dict[str, str]], Awaitable[T]]) -> T:
        """``attempt(client, base URL, auth headers)`` on each endpoint of the node, best
        first, until one answers; a refused upgrade is final; 503 when none answers."""
        name = node["metadata"]["name"]
        token = self._token(name) if callable(self._token) else self._token
        headers = {"Authorization": f"Bearer {token}"}
        failure: Exception | None = None
        for client, base in self._endpoints(node):
            try:
                return await attempt(client, base, headers)
            except aiohttp.WSServerHandshakeError as exc:
                raise _refused(exc) from None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failure = exc
        raise errors.ApiError(503, "ServiceUnavailable",
                              f"the node {name} cannot be reached: {failure}")

    def _endpoints(self, node: dict[str, Any]) -> list[tuple[aiohttp.ClientSession, str]]:
        """Where to reach the node's API, best first: its local socket, then HTTPS."""
        found = [(self._client(), node_api_url(node))]
        path = ((node.get("metadata") or {}).get("annotations") or {}).get(
            NODE_API_SOCKET_ANNOTATION, "")
        if path and _is_socket(path):
            if path not in self._local or self._local[path].closed:
                self._local[path] = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
                    connector=aiohttp.UnixConnector(path=path, limit=0))
            found.insert(0, (self._local[path], "http://localhost"))
        return found

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
                connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def close(self) -> None:
        for session in [self._session, *self._local.values()]:
            if session is not None:
                await session.close()


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _refused(exc: aiohttp.WSServerHandshakeError) -> errors.ApiError:
    text = (exc.headers or {}).get(rc.NODE_ERROR_HEADER)
    if text and exc.status in (400, 404):
        return errors.ProxiedError(exc.status, "BadRequest" if exc.status == 400 else
                                   "NotFound", text)
    return errors.ApiError(503, "ServiceUnavailable",
                           f"error dialing backend: {text or exc.message}")
