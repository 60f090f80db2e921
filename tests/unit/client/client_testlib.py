"""Builders and polling helpers shared by the client tests."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from podling.apiserver.server import RunningServer

Obj = dict[str, Any]


def make_pod(name: str, labels: dict[str, str] | None = None, node: str = "") -> Obj:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels or {}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    if node:
        pod["spec"]["nodeName"] = node
    return pod


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def ca_file(server: RunningServer) -> str:
    return os.path.join(server.config.data_dir, "server", "ca.crt")
