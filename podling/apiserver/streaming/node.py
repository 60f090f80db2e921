"""Reaching a pod's node for a streaming session (docs/streaming.md §2).

:class:`NodeDialer` checks what the API server checks before Kubernetes upgrades a request
(the pod, its node, the container) and opens the node API's WebSocket with the node's
credentials. Every refusal is an :class:`~podling.api.errors.ApiError` raised *before* the
client's connection is upgraded: a ``Status``, or the node's own text where the node refused
(a container that is not running), as Kubernetes passes on the kubelet's answer.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Callable, Iterable

import aiohttp

from ...api import errors
from ...api import remotecommand as rc
from ...api.resources import NODE_API_SOCKET_ANNOTATION
from ..podlogs import choose_container, node_api_url
from ..registry.store import RegistryStore

COMPLETED_PHASES = ("Succeeded", "Failed")
CONNECT_TIMEOUT = 10.0


def check_container(pod: dict[str, Any], wanted: str, action: str) -> str:
    """The container a session targets (Kubernetes' messages when none or a wrong one is
    named, or the pod has completed). ``action`` is ``exec`` or ``attach``."""
    container = choose_container(pod, wanted)
    phase = (pod.get("status") or {}).get("phase", "")
    if phase in COMPLETED_PHASES:
        verb = "exec into" if action == "exec" else "attach to"
        raise errors.bad_request(f"cannot {verb} a container in a completed pod; current "
                                 f"phase is {phase}")
    return container


class NodeDialer:
    """Opens node API WebSockets; one HTTP client session, shared by every stream.

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

    async def connect(self, pod: dict[str, Any], path: str,
                      params: Iterable[tuple[str, str]], protocol: str
                      ) -> aiohttp.ClientWebSocketResponse:
        """Open ``path`` on the pod's node as a WebSocket speaking ``protocol``."""
        node_name = pod["spec"]["nodeName"]
        node = await self.nodes.get(None, node_name)
        token = self._token(node_name) if callable(self._token) else self._token
        failure: Exception | None = None
        for client, base in self._endpoints(node):
            try:
                ws = await client.ws_connect(
                    base + path, params=list(params), protocols=(protocol,),
                    headers={"Authorization": f"Bearer {token}"}, ssl=False, max_msg_size=0,
                    autoping=True, autoclose=False,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5))
                break
            except aiohttp.WSServerHandshakeError as exc:
                raise _refused(exc) from None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failure = exc
        else:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"the node {node_name} cannot be reached: {failure}")
        if ws.protocol != protocol:
            await ws.close()
            raise errors.internal(f"the node {node_name} does not speak {protocol}")
        return ws

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
