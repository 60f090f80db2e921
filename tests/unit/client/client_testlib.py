"""Polling and TLS helpers shared by the client tests (pods: tests/builders.py)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from podling.apiserver.server import RunningServer

Obj = dict[str, Any]


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
