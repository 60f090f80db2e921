"""Helpers shared by the scheduler's server-backed tests (the nodes, polling)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from builders import NodeBuilder, make_node

NODE_NAMES = ("172.31.2.11", "172.31.2.12", "172.31.2.13")


def ready_node(name: str) -> NodeBuilder:
    """An agent-less node as the scheduler tests register it: Ready as a kubelet reports."""
    return make_node(name).ready(reason="KubeletReady", message="kubelet is posting ready status")


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                   what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
