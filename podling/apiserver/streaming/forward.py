"""One forwarded connection: a node WebSocket (``portforward.podling.io``, docs/streaming.md
§2) spliced to whatever carries the connection on the client's side (a SPDY data stream, or
a channel of the Python client's WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import WSMsgType

from ...api import remotecommand as rc
from .node import NodeDialer


def error_text(pod: dict[str, Any], port: int, detail: str) -> str:
    """What the client is told on a connection's error stream (the kubelet's wording)."""
    meta = pod["metadata"]
    return (f"error forwarding port {port} to pod {meta['name']}_{meta.get('namespace', '')}, "
            f"uid {meta.get('uid', '')}: {detail}")


async def open_port(dialer: NodeDialer, pod: dict[str, Any], port: int
                    ) -> aiohttp.ClientWebSocketResponse:
    """The node WebSocket of one forwarded connection to ``port``."""
    meta = pod["metadata"]
    return await dialer.connect(pod, f"/portforward/{meta['namespace']}/{meta['name']}",
                                [("port", str(port))], rc.PORT_FORWARD_NODE)


async def splice(node: aiohttp.ClientWebSocketResponse, *,
                 receive: Callable[[], Awaitable[bytes]],
                 send: Callable[[bytes], Awaitable[None]],
                 fail: Callable[[str], Awaitable[None]],
                 finish: Callable[[], Awaitable[None]]) -> None:
    """Copy one connection both ways. ``receive`` returns b"" when the client has no more to
    send (then the pod socket is half-closed); ``send`` delivers pod bytes; ``fail`` reports a
    node error text; ``finish`` ends the client's side once the pod side is done."""

    async def upstream() -> None:
        while data := await receive():
            await node.send_bytes(data)
        if not node.closed:
            await node.send_str("eof")

    task = asyncio.create_task(upstream())
    try:
        async for msg in node:
            if msg.type is WSMsgType.BINARY:
                await send(msg.data)
            elif msg.type is WSMsgType.TEXT:
                await fail(msg.data)
                break
        await finish()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await node.close()
