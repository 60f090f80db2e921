"""``pods/portforward``: every forwarded connection becomes one node WebSocket
(``portforward.podling.io``, docs/streaming.md §2).

Client protocols:
- SPDY/3.1, raw (``X-Stream-Protocol-Version: portforward.k8s.io``) or tunnelled in a
  WebSocket (``SPDY/3.1+portforward.k8s.io``, kubectl 1.31+): see :mod:`.spdy_portforward`;
- the channel WebSocket of the Python client (``?ports=80,443``): one WebSocket carries one
  connection per listed port; channel 2i is port i's data, 2i+1 its error text, and the first
  message on each channel from the server is the port number (2 bytes, little-endian).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Awaitable

import aiohttp
from aiohttp import WSMsgType, web

from ...api import errors
from ...api import remotecommand as rc
from .forward import error_text, open_port, splice
from .node import NodeDialer
from .relay import offered_protocols, upgrade_kind
from .spdy_portforward import serve_spdy_port_forward


async def serve_port_forward(request: web.Request, dialer: NodeDialer, namespace: str,
                             name: str) -> web.StreamResponse:
    """Serve one ``portforward`` request end to end."""
    kind = upgrade_kind(request)
    pod = await dialer.pod(namespace, name)
    offered = offered_protocols(request)
    if kind == "spdy" or rc.PORT_FORWARD_WEBSOCKET_SPDY in offered:
        return await serve_spdy_port_forward(request, dialer, pod,
                                             websocket=(kind == "websocket"))
    ports = _ports(request.query.getall("ports", []))
    chosen = next((p for p in (rc.V4, rc.V1, rc.PORT_FORWARD_SPDY) if p in offered), None)
    nodes = [await open_port(dialer, pod, port) for port in ports]
    try:
        ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (), max_msg_size=0)
        await ws.prepare(request)
        await _serve_channels(ws, pod, ports, nodes)
        return ws
    finally:
        for node in nodes:
            await node.close()


def _ports(values: list[str]) -> list[int]:
    ports: list[int] = []
    for value in ",".join(values).split(","):
        try:
            port = int(value)
        except ValueError:
            raise errors.bad_request(f"unable to parse {value!r} as a port") from None
        if not 0 < port < 65536:
            raise errors.bad_request(f"port {port} must be between 1 and 65535")
        ports.append(port)
    if not ports:
        raise errors.bad_request("at least one port must be specified")
    return ports


async def _serve_channels(ws: web.WebSocketResponse, pod: dict[str, Any], ports: list[int],
                          nodes: list[aiohttp.ClientWebSocketResponse]) -> None:
    """The Python client's channel protocol over ``ws``; ends when every port is done."""
    inboxes: list[asyncio.Queue[bytes]] = [asyncio.Queue() for _ in ports]
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            await ws.send_bytes(bytes([channel]) + port.to_bytes(2, "little"))

    def session(index: int) -> Awaitable[None]:
        data_channel, error_channel = bytes([2 * index]), bytes([2 * index + 1])

        async def send(data: bytes) -> None:
            await ws.send_bytes(data_channel + data)

        async def fail(text: str) -> None:
            await ws.send_bytes(error_channel + error_text(pod, ports[index], text).encode())

        async def done() -> None:
            pass

        return splice(nodes[index], receive=inboxes[index].get, send=send, fail=fail,
                      finish=done)

    sessions = asyncio.gather(*(session(i) for i in range(len(ports))))
    reader = asyncio.create_task(_dispatch(ws, inboxes))
    try:
        await asyncio.wait({reader, sessions}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        sessions.cancel()
        for task in (reader, sessions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await ws.close()


async def _dispatch(ws: web.WebSocketResponse, inboxes: list[asyncio.Queue[bytes]]) -> None:
    """Route the client's data messages to their port; the client gone ends every port."""
    async for msg in ws:
        if msg.type is WSMsgType.BINARY and len(msg.data) > 1 and msg.data[0] % 2 == 0:
            index = msg.data[0] // 2
            if index < len(inboxes):
                inboxes[index].put_nowait(msg.data[1:])
    for inbox in inboxes:
        inbox.put_nowait(b"")
