"""What ``@nodes`` stands for on a node: itself, then its Ready peers (ClusterNodes)."""

from __future__ import annotations

from typing import Any

from podling.agent.images_nodes import ClusterNodes, node_api_url, peer_urls


def _node(name: str, ready: str = "True", ip: str = "10.0.0.1", api: str = "",
          port: int = 0) -> dict[str, Any]:
    node: dict[str, Any] = {
        "metadata": {"name": name, "annotations": {"podling.io/node-api": api} if api else {}},
        "status": {"conditions": [{"type": "Ready", "status": ready}],
                   "addresses": [{"type": "InternalIP", "address": ip}]}}
    if port:
        node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return node


def test_peers_are_the_ready_nodes_but_me_by_name() -> None:
    nodes = [_node("c", api="https://10.0.0.3:10250"), _node("me", api="https://127.0.0.1:1"),
             _node("b", ip="10.0.0.2", port=10250), _node("down", "Unknown", api="https://x:1"),
             _node("noaddr", ip="")]
    assert peer_urls(nodes, "me") == ["https://10.0.0.2:10250", "https://10.0.0.3:10250"]


def test_a_loopback_peer_only_from_its_own_machine() -> None:
    nodes = [_node("me", ip="10.0.0.1"), _node("same", ip="10.0.0.1", api="https://127.0.0.1:5"),
             _node("other", ip="10.0.0.9", api="https://127.0.0.1:6")]
    assert peer_urls(nodes, "me") == ["https://127.0.0.1:5"]


def test_node_api_url_prefers_the_annotation() -> None:
    assert node_api_url(_node("a", api="https://h:1", port=2)) == "https://h:1"
    assert node_api_url(_node("a", ip="fd00::1", port=2)) == "https://[fd00::1]:2"
    assert node_api_url(_node("a")) == ""


class _Client:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def list(self, resource: Any) -> tuple[list[dict[str, Any]], str]:
        self.calls += 1
        if self.fail:
            raise OSError("connection refused")
        return [_node("me"), _node("peer", api="https://10.0.0.2:1")], "1"


async def test_cluster_nodes_caches_and_survives_an_api_outage() -> None:
    now = [0.0]
    client = _Client()
    nodes = ClusterNodes(client, "me", "https://127.0.0.1:9",  # type: ignore[arg-type]
                         clock=lambda: now[0])
    assert await nodes.urls() == ["https://127.0.0.1:9", "https://10.0.0.2:1"]
    assert await nodes.urls() == ["https://127.0.0.1:9", "https://10.0.0.2:1"]
    assert client.calls == 1  # cached
    now[0], client.fail = 10.0, True
    assert await nodes.urls() == ["https://127.0.0.1:9", "https://10.0.0.2:1"]
    assert client.calls == 2
