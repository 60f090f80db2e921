"""``pods/exec`` and ``pods/attach``: the client's protocol on one side, the node's
``v5.channel.k8s.io`` WebSocket on the other (docs/streaming.md).

    check pod + container ─▶ dial the node ─▶ upgrade the client (WebSocket or SPDY)
        ─▶ pump both ways ─▶ the node's status (channel 3) ─▶ the client's status ─▶ close

The relaying itself is in :mod:`.relay`; SPDY clients in :mod:`.spdy_remotecommand`.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from ...api import errors
from ...api import remotecommand as rc
from .node import NodeDialer, check_container
from .relay import offered_protocols, relay, upgrade_kind
from .spdy_remotecommand import serve_spdy, spdy_protocol


class WebSocketStreams:
    """A client on a channel WebSocket (v1 … v5)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.structured = protocol in (rc.V5, rc.V4)

    async def receive(self) -> tuple[int, bytes] | None:
        async for msg in self.ws:
            # the Python client sends str stdin as TEXT messages: chr(channel) + text
            data = msg.data.encode() if msg.type is WSMsgType.TEXT else msg.data
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT) and data:
                return data[0], data[1:]
        return None

    async def forward(self, message: bytes) -> None:
        await self.ws.send_bytes(message)  # the same framing as the node's: no copy

    async def finish(self, status: dict[str, Any]) -> None:
        payload = rc.encode_status(status) if self.structured else rc.status_text(status).encode()
        if payload:
            await self.ws.send_bytes(bytes([rc.ERROR]) + payload)
        await self.ws.close()

    async def abort(self) -> None:
        await self.ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR)


async def serve_remote_command(request: web.Request, dialer: NodeDialer, namespace: str,
                               name: str, action: str) -> web.StreamResponse:
    """Serve one ``exec`` or ``attach`` request end to end."""
    kind = upgrade_kind(request)
    options = rc.StreamOptions.from_query(request.query, request.query.getall("command", []))
    if action == "exec" and not options.command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (options.stdin or options.stdout or options.stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    pod = await dialer.pod(namespace, name)
    container = check_container(pod, options.container, action)
    protocol = spdy_protocol(request) if kind == "spdy" else ""  # refused before dialing
    path = f"/{action}/{namespace}/{name}/{container}"
    node = await dialer.connect(pod, path, options.query(), rc.V5)
    try:
        if kind == "spdy":
            return await serve_spdy(request, node, options, protocol)
        offered = offered_protocols(request)
        chosen = next((p for p in rc.CHANNEL_PROTOCOLS if p in offered), None)
        if offered and chosen is None:
            raise errors.bad_request(f"none of the offered subprotocols {offered} is supported; "
                                     f"supported: {list(rc.CHANNEL_PROTOCOLS)}")
        ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (), max_msg_size=0,
                                   heartbeat=None)
        await ws.prepare(request)
        await relay(WebSocketStreams(ws, chosen or rc.V1), node, options)
        return ws
    finally:
        await node.close()
