"""Port-forward for SPDY/3.1 clients: a raw upgrade (``portforward.k8s.io``) or SPDY tunnelled
in a WebSocket (``SPDY/3.1+portforward.k8s.io``, kubectl 1.31+).

Per forwarded connection the client opens an ``error`` and a ``data`` stream with the same
``requestid`` and ``port`` headers. Once both are there, one node WebSocket carries the
connection (:func:`.portforward.splice`); an error text goes on ``error``, as the kubelet's.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from ...api import errors
from ...api import remotecommand as rc
from .node import NodeDialer
from .forward import error_text, open_port, splice
from .spdy import SpdyClosedError, SpdyConnection, SpdyStream
from .upgrade import (HEADER_PROTOCOL_VERSION, WebSocketTransport, accept_spdy_upgrade,
                      choose_protocol)


async def serve_spdy_port_forward(request: web.Request, dialer: NodeDialer,
                                  pod: dict[str, Any], *, websocket: bool
                                  ) -> web.StreamResponse:
    """Serve one SPDY port-forward connection until the client closes it."""
    if websocket:
        ws = web.WebSocketResponse(protocols=(rc.PORT_FORWARD_WEBSOCKET_SPDY,), max_msg_size=0,
                                   heartbeat=None)
        await ws.prepare(request)
        response: web.StreamResponse = ws
        transport: Any = WebSocketTransport(ws)
    else:
        offered = request.headers.getall(HEADER_PROTOCOL_VERSION, [])
        if choose_protocol(offered, (rc.PORT_FORWARD_SPDY,)) is None:
            raise errors.ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate "
                                  f"protocol: client supports {offered}, server supports "
                                  f"[{rc.PORT_FORWARD_SPDY}]")
        response, transport = await accept_spdy_upgrade(request, rc.PORT_FORWARD_SPDY)
    conn = SpdyConnection(transport, server=True)
    runner = asyncio.create_task(conn.run())
    forwards: set[asyncio.Task[None]] = set()
    try:
        await _accept_pairs(conn, dialer, pod, forwards)
    finally:
        for task in forwards:
            task.cancel()
        await asyncio.gather(*forwards, return_exceptions=True)
        await conn.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    return response


async def _accept_pairs(conn: SpdyConnection, dialer: NodeDialer, pod: dict[str, Any],
                        forwards: set[asyncio.Task[None]]) -> None:
    pending: dict[str, dict[str, SpdyStream]] = {}
    while (stream := await conn.accept()) is not None:
        await stream.reply()
        request_id = stream.headers.get("requestid", "")
        pair = pending.setdefault(request_id, {})
        pair[stream.headers.get("streamtype", "")] = stream
        if {"error", "data"} <= pair.keys():
            del pending[request_id]
            task = asyncio.create_task(_forward(dialer, pod, pair["error"], pair["data"]))
            forwards.add(task)
            task.add_done_callback(forwards.discard)


async def _forward(dialer: NodeDialer, pod: dict[str, Any], error: SpdyStream,
                   data: SpdyStream) -> None:
    """One forwarded connection; never raises (a failure is reported on ``error``)."""
    try:
        port = int(data.headers.get("port", ""))
    except ValueError:
        port = 0

    async def fail(text: str) -> None:
        with contextlib.suppress(SpdyClosedError):
            await error.write(error_text(pod, port, text).encode())

    try:
        if not 0 < port < 65536:
            await fail(f"invalid port {data.headers.get('port', '')!r}")
            return
        try:
            node = await open_port(dialer, pod, port)
        except errors.ApiError as exc:
            await fail(exc.message)
            return
        await splice(node, receive=data.read, send=data.write, fail=fail, finish=data.close)
    except (SpdyClosedError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(SpdyClosedError):
            await error.close()
            await data.close()
