"""exec / attach for SPDY/3.1 clients (``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``, older
clients): the client opens one stream per channel, named by its ``streamtype`` header.

    101 + X-Stream-Protocol-Version ─▶ accept error, stdin?, stdout?, stderr?, resize? (30 s)
        ─▶ relay (stdin's FIN = stdin closed) ─▶ status on "error" ─▶ FIN all ─▶ GOAWAY
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from aiohttp import web

from ...api import errors
from ...api import remotecommand as rc
from .relay import relay
from .spdy import SpdyClosedError, SpdyConnection, SpdyStream
from .upgrade import HEADER_PROTOCOL_VERSION, accept_spdy_upgrade, choose_protocol

#: v5 over SPDY is v4 (stdin's close is the stream's FIN); v1–v3 report errors as text.
SPDY_PROTOCOLS = (rc.V5, rc.V4, rc.V3, rc.V2, rc.V1)


def spdy_protocol(request: web.Request) -> str:
    """The protocol version to answer, or 403 as Kubernetes answers a failed negotiation."""
    offered = request.headers.getall(HEADER_PROTOCOL_VERSION, [])
    chosen = choose_protocol(offered, SPDY_PROTOCOLS)
    if chosen is None:
        raise errors.ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate "
                              f"protocol: client supports {offered}, server supports "
                              f"{list(SPDY_PROTOCOLS)}")
    return chosen


class SpdyStreams:
    """The client's side of a session as SPDY streams (see ClientStreams)."""

    def __init__(self, conn: SpdyConnection, streams: dict[str, SpdyStream],
                 protocol: str) -> None:
        self.conn = conn
        self.streams = streams
        self.structured = protocol in (rc.V5, rc.V4)
        self._inbox: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=64)
        self._readers = [asyncio.create_task(self._read_stdin())]
        if "resize" in streams:
            self._readers.append(asyncio.create_task(self._read_resize()))
        self._readers.append(asyncio.create_task(self._watch_connection()))

    async def receive(self) -> tuple[int, bytes] | None:
        return await self._inbox.get()

    async def forward(self, message: bytes) -> None:
        stream = self.streams.get("stdout" if message[0] == rc.STDOUT else "stderr")
        if stream is not None:
            try:
                await stream.write(memoryview(message)[1:])
            except SpdyClosedError as exc:
                raise ConnectionError(str(exc)) from None

    async def finish(self, status: dict[str, Any]) -> None:
        payload = rc.encode_status(status) if self.structured else rc.status_text(status).encode()
        with contextlib.suppress(SpdyClosedError):
            if payload:
                await self.streams["error"].write(payload)
            for stream in self.streams.values():
                await stream.close()
        await self._stop()

    async def abort(self) -> None:
        for stream in self.streams.values():
            stream.reset()
        await self._stop()

    async def _stop(self) -> None:
        for task in self._readers:
            task.cancel()
        await self.conn.close()

    async def _read_stdin(self) -> None:
        stdin = self.streams.get("stdin")
        if stdin is None:
            return
        while data := await stdin.read():
            await self._inbox.put((rc.STDIN, data))
        await self._inbox.put((rc.CLOSE, bytes([rc.STDIN])))

    async def _read_resize(self) -> None:
        """The resize stream is a sequence of JSON objects with arbitrary boundaries."""
        decoder, buffer = json.JSONDecoder(), ""
        while data := await self.streams["resize"].read():
            buffer += data.decode(errors="replace")
            while buffer.strip():
                try:
                    size, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break
                buffer = buffer.lstrip()[end:]
                parsed = rc.parse_resize(json.dumps(size).encode())
                if parsed is not None:
                    await self._inbox.put((rc.RESIZE, rc.encode_resize(*parsed)))

    async def _watch_connection(self) -> None:
        await self.conn.closed.wait()
        await self._inbox.put(None)


def expected_streams(options: rc.StreamOptions, protocol: str) -> set[str]:
    """The streams a client of ``protocol`` opens for ``options`` (Kubernetes' rule)."""
    wanted = {"error"}
    wanted |= {name for name in ("stdin", "stdout", "stderr") if getattr(options, name)}
    if options.tty and protocol not in (rc.V1, rc.V2):
        wanted.add("resize")
    return wanted


async def accept_streams(conn: SpdyConnection, wanted: set[str],
                         timeout: float = rc.STREAM_CREATION_TIMEOUT) -> dict[str, SpdyStream]:
    """Reply to the client's streams until every wanted one is there (extra ones too)."""
    streams: dict[str, SpdyStream] = {}

    async def collect() -> None:
        while not wanted <= streams.keys():
            stream = await conn.accept()
            if stream is None:
                raise ConnectionError("the client went away before opening its streams")
            await stream.reply()
            streams[stream.headers.get("streamtype", "")] = stream

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise ConnectionError("timed out waiting for the client's streams") from None
    return streams


async def serve_spdy(request: web.Request, node: aiohttp.ClientWebSocketResponse,
                     options: rc.StreamOptions, protocol: str) -> web.StreamResponse:
    """Upgrade to SPDY ``protocol`` (see :func:`spdy_protocol`) and relay the session
    between its streams and the node."""
    response, transport = await accept_spdy_upgrade(request, protocol)
    conn = SpdyConnection(transport, server=True)
    runner = asyncio.create_task(conn.run())
    try:
        streams = await accept_streams(conn, expected_streams(options, protocol))
        await relay(SpdyStreams(conn, streams, protocol), node, options)
    except (ConnectionError, SpdyClosedError):
        pass
    finally:
        await conn.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    return response
