"""Helpers shared by the scheduler's server-backed tests: the nodes they register."""

from __future__ import annotations

from builders import NodeBuilder, make_node

NODE_NAMES = ("172.31.2.11", "172.31.2.12", "172.31.2.13")


def ready_node(name: str) -> NodeBuilder:
    """An agent-less node as the scheduler tests register it: Ready as a kubelet reports."""
    return make_node(name).ready(reason="KubeletReady", message="kubelet is posting ready status")
