"""``pods/exec`` and ``pods/attach``: the client's protocol on one side, the node's
``v5.channel.k8s.io`` WebSocket on the other (docs/streaming.md).

    check pod + container ─▶ dial the node ─▶ upgrade the client (WebSocket or SPDY)
        ─▶ pump both ways ─▶ the node's status (channel 3) ─▶ the client's status ─▶ close

Either side going away closes the other, so the node ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Protocol

import aiohttp
from aiohttp import WSMsgType, web

from ...api import errors
from ...api import remotecommand as rc
from .node import NodeDialer, check_container


class ClientStreams(Protocol):
    """The client's side of a session, whatever its protocol."""

    async def receive(self) -> tuple[int, bytes] | None:
        """Next (channel, data) from the client: stdin, resize or close; None once gone."""

    async def forward(self, message: bytes) -> None:
        """Output to the client: a node message, channel (stdout / stderr) byte first."""

    async def finish(self, status: dict[str, Any]) -> None:
        """The session's status, then the end of the connection."""

    async def abort(self) -> None:
        """Drop the connection (the node went away without a status)."""


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


def upgrade_kind(request: web.Request) -> str:
    """``websocket``, ``spdy``, or 400 when the request is no upgrade at all."""
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        return "websocket"
    if upgrade.startswith("spdy/3.1"):
        return "spdy"
    raise errors.bad_request("Upgrade request required")


def offered_protocols(request: web.Request) -> list[str]:
    """The WebSocket subprotocols the client offered, in its order."""
    return [p.strip() for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",") if p.strip()]


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
    if kind == "spdy":
        from .spdy_remotecommand import spdy_protocol, serve_spdy  # noqa: PLC0415
        spdy_protocol(request)  # refuse an unknown version before dialing the node
    path = f"/{action}/{namespace}/{name}/{container}"
    node = await dialer.connect(pod, path, options.query(), rc.V5)
    try:
        if kind == "spdy":
            return await serve_spdy(request, node, options)
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


async def relay(client: ClientStreams, node: aiohttp.ClientWebSocketResponse,
                options: rc.StreamOptions) -> None:
    """Pump until the node's status (forwarded to the client) or until either side is gone."""
    upstream = asyncio.create_task(_client_to_node(client, node, options))
    try:
        status = await _node_to_client(node, client)
        if status is None:
            await client.abort()
        else:
            await client.finish(status)
    except (ConnectionError, RuntimeError):
        pass  # the client went away while we wrote; closing the node ends the session
    finally:
        upstream.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await upstream
        await node.close()


async def _node_to_client(node: aiohttp.ClientWebSocketResponse,
                          client: ClientStreams) -> dict[str, Any] | None:
    async for msg in node:
        if msg.type is not WSMsgType.BINARY or not msg.data:
            continue
        if msg.data[0] == rc.ERROR:
            try:
                return json.loads(msg.data[1:])
            except ValueError:
                return rc.failure_status(msg.data[1:].decode(errors="replace"))
        await client.forward(msg.data)
    return None


async def _client_to_node(client: ClientStreams, node: aiohttp.ClientWebSocketResponse,
                          options: rc.StreamOptions) -> None:
    """Forward stdin, resizes and stdin's close; the client gone closes the node."""
    while (received := await client.receive()) is not None:
        channel, data = received
        if channel == rc.STDIN and options.stdin:
            await node.send_bytes(bytes([rc.STDIN]) + data)
        elif channel == rc.RESIZE and options.tty:
            await node.send_bytes(bytes([rc.RESIZE]) + data)
        elif channel == rc.CLOSE and data[:1] == bytes([rc.STDIN]):
            await node.send_bytes(bytes([rc.CLOSE, rc.STDIN]))
    await node.close()
