"""Relaying one exec / attach session: the client's side (any protocol, as
:class:`ClientStreams`) against the node's ``v5.channel.k8s.io`` WebSocket, and what every
streaming request starts with (the kind of upgrade, the offered subprotocols).

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
