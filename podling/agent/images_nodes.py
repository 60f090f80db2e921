"""What ``@nodes`` (registries.yaml) stands for on this node: the cluster's node mirrors.

:meth:`ClusterNodes.urls` gives the node API base URLs of

1. this node (its own store: an image it has resolves here, with no traffic off the host);
2. every other node whose Ready condition is True, by name: its ``podling.io/node-api``
   annotation (written by its agent), else ``https://<InternalIP>:<daemonEndpoints port>``.
   A peer whose node API listens on a loopback address (the server's local agent does) is
   reachable only from its own machine: it is listed only when its InternalIP is this node's,
   so a pull never sends the token to whatever listens on this machine's loopback.

Node objects are read (a node may list nodes) at most every :data:`CACHE_SECONDS`; when the
API cannot be reached the last list is used. Nothing else is ever added: a pull through
``@nodes`` only goes to nodes of this cluster.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from podling.api.resources import NODE_API_ANNOTATION, NODES
from podling.api.views import NodeView
from podling.client import ApiClient

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0


class ClusterNodes:
    """The node mirrors of one node (see the module docstring)."""

    def __init__(self, client: ApiClient, node_name: str, own_url: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._node_name = node_name
        self._own_url = own_url
        self._clock = clock
        self._peers: list[str] = []
        self._read_at: float | None = None

    async def urls(self) -> list[str]:
        """This node's URL, then the Ready peers' (see the module docstring)."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= CACHE_SECONDS:
            try:
                nodes, _ = await self._client.list(NODES)
                self._peers = peer_urls(nodes, self._node_name)
                self._read_at = now
            except Exception as e:  # the API is down: keep what we knew
                log.warning("listing nodes for @nodes failed (%s); using %d known peer(s)",
                            e, len(self._peers))
        return [self._own_url, *self._peers]


def peer_urls(nodes: list[dict[str, Any]], self_name: str) -> list[str]:
    """Node API URLs of the Ready nodes other than ``self_name``, by node name (loopback
    ones only for nodes on this node's InternalIP)."""
    views = {NodeView.from_obj(n).name: NodeView.from_obj(n) for n in nodes}
    own = views[self_name].address("InternalIP") if self_name in views else None
    out = []
    for obj in sorted(nodes, key=lambda n: n.get("metadata", {}).get("name", "")):
        view = NodeView.from_obj(obj)
        if view.name == self_name or view.ready_status != "True":
            continue
        url = node_api_url(obj)
        if url and (not _loopback(url) or view.address("InternalIP") == own):
            out.append(url)
    return out


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def node_api_url(node: dict[str, Any]) -> str:
    """Where ``node``'s API listens: its annotation, else InternalIP and kubelet port."""
    annotated = (node.get("metadata", {}).get("annotations") or {}).get(NODE_API_ANNOTATION)
    if annotated:
        return str(annotated)
    ip = NodeView.from_obj(node).address("InternalIP")
    port = (((node.get("status") or {}).get("daemonEndpoints") or {})
            .get("kubeletEndpoint") or {}).get("Port")
    if not ip or not port:
        return ""
    host = f"[{ip}]" if ":" in ip else ip
    return f"https://{host}:{port}"
