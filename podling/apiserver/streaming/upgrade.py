"""Byte transports for :class:`~.spdy.SpdyConnection`, and the SPDY upgrade handshake.

* :func:`accept_spdy_upgrade` — kubectl's ``POST … Connection: Upgrade, Upgrade: SPDY/3.1``:
  answer ``101 Switching Protocols`` and take the raw connection over from aiohttp
  (:class:`RawUpgradeTransport`).
* :class:`WebSocketTransport` — a SPDY byte stream carried in WebSocket binary messages with
  arbitrary boundaries (kubectl 1.31+ port-forward, subprotocol
  ``SPDY/3.1+portforward.k8s.io``).
* :func:`memory_transport_pair` — two connected in-memory transports for tests.

aiohttp 3.14 only switches its HTTP parser into "upgraded" mode for ``websocket``; for
``SPDY/3.1`` it would go on parsing the client's frames as HTTP requests. So, as
``WebSocketResponse`` does, we install our own payload parser with
``request.protocol.set_parser`` — before the 101 is written, so that the client's first
frame, sent as soon as it reads the 101, already goes to us.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Iterable

from aiohttp import WSMsgType, web

SPDY_31 = "SPDY/3.1"
HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"

READ_HIGH_WATER = 1024 * 1024
"""Unread bytes at which a raw upgraded connection stops reading the socket."""
WS_HIGH_WATER = 1024 * 1024
WS_MAX_MESSAGE = 256 * 1024


class UpgradeError(Exception):
    """The request is not a SPDY/3.1 upgrade (answer 400)."""


def offered_protocols(values: Iterable[str]) -> list[str]:
    """Header values, repeated and/or comma-joined, as one list (blanks dropped)."""
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def choose_protocol(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """The first *offered* protocol that is *supported* (the client's order wins, as in
    Kubernetes' ``httpstream.Handshake``); None when nothing matches."""
    wanted = set(supported)
    return next((p for p in offered_protocols(offered) if p in wanted), None)


def is_spdy_upgrade(request: web.BaseRequest) -> bool:
    """``Connection`` has the ``upgrade`` token and ``Upgrade`` is SPDY/3.1."""
    connection = {t.strip().lower() for v in request.headers.getall("Connection", [])
                  for t in v.split(",")}
    upgrade = request.headers.get("Upgrade", "").strip().lower()
    return "upgrade" in connection and upgrade == SPDY_31.lower()


async def accept_spdy_upgrade(request: web.BaseRequest, protocol: str | None
                              ) -> tuple[web.StreamResponse, RawUpgradeTransport]:
    """Answer ``101`` (with ``X-Stream-Protocol-Version: protocol`` when given) and return
    the response and the raw connection.

    Negotiate first (:func:`choose_protocol`) and answer a mismatch with an ordinary error
    instead of calling this. The handler must keep running while the transport is in use
    and then return the response; aiohttp closes the connection after it. Raises
    :class:`UpgradeError` when the request is no SPDY upgrade, ConnectionResetError when
    the client is already gone.
    """
    if not is_spdy_upgrade(request):
        raise UpgradeError("expected Connection: Upgrade and Upgrade: SPDY/3.1")
    if request.transport is None or request.transport.is_closing():
        raise ConnectionResetError("client went away before the upgrade")
    transport = RawUpgradeTransport(request.protocol, request.transport)
    headers = {"Connection": "Upgrade", "Upgrade": SPDY_31}
    if protocol:
        headers[HEADER_PROTOCOL_VERSION] = protocol
    response = web.StreamResponse(status=101, headers=headers)
    response.force_close()
    request.protocol.set_parser(transport)  # type: ignore[arg-type]
    await response.prepare(request)
    return response, transport


class RawUpgradeTransport:
    """The socket of an upgraded aiohttp request as a :class:`~.spdy.ByteTransport`.

    aiohttp feeds it through the payload-parser interface (``feed_data`` / ``feed_eof``);
    reading pauses the socket above :data:`READ_HIGH_WATER` unread bytes.
    """

    def __init__(self, protocol: Any, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._readable = asyncio.Event()

    # aiohttp's payload parser interface
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._readable.set()
            if self._size >= READ_HIGH_WATER and not self._paused:
                self._paused = True
                self._set_reading(False)
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def _set_reading(self, on: bool) -> None:
        try:
            if on:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()
        except (AttributeError, NotImplementedError, RuntimeError):
            pass  # the transport has no read flow control; the buffer just grows

    # ByteTransport
    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size < READ_HIGH_WATER // 4:
            self._paused = False
            self._set_reading(True)
        return chunk

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("connection closed")
        self._transport.write(data)

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("connection closed")
        await self._protocol._drain_helper()  # aiohttp's BaseProtocol write flow control

    async def close(self) -> None:
        self._eof = True
        self._readable.set()
        self._transport.close()  # flushes what is buffered, then closes


class WebSocketTransport:
    """A :class:`~.spdy.ByteTransport` over binary messages of an aiohttp WebSocket (either end).

    Writes are queued as they are (a ``bytes`` or ``bytearray`` is kept, not copied: do not
    change it afterwards) and sent by one sender task: a large write as one message, small
    consecutive writes joined into messages of up to :data:`WS_MAX_MESSAGE` bytes;
    :meth:`drain` waits while more than :data:`WS_HIGH_WATER` bytes are queued.
    Text, ping and pong messages are ignored; a close or error is the end of stream.
    """

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._pieces: collections.deque[bytes | bytearray] = collections.deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._sender: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closing = False

    async def read(self) -> bytes:
        while not self._closing:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
            elif msg.type not in (WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG):
                return b""
        return b""

    def write(self, data: bytes) -> None:
        if self._error is not None or self._closing:
            raise ConnectionResetError(f"WebSocket closed: {self._error or 'closing'}")
        if not data:
            return
        self._pieces.append(data if isinstance(data, (bytes, bytearray)) else bytes(data))
        self._queued += len(data)
        if self._queued >= WS_HIGH_WATER:
            self._drained.clear()
        self._wake.set()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def drain(self) -> None:
        await self._drained.wait()
        if self._error is not None:
            raise ConnectionResetError(f"WebSocket closed: {self._error}")

    async def _send_loop(self) -> None:
        try:
            while self._pieces or not self._closing:
                if not self._pieces:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                chunk = self._next_message()
                if self._queued < WS_HIGH_WATER:
                    self._drained.set()
                await self._ws.send_bytes(chunk)
        except Exception as exc:  # noqa: BLE001 - reported to writers via drain/write
            self._error = exc
            self._pieces.clear()
            self._queued = 0
        finally:
            self._drained.set()

    def _next_message(self) -> bytes | bytearray:
        """Take the next message off the queue: one large write as it is (no copy), or small
        writes joined up to :data:`WS_MAX_MESSAGE` bytes."""
        first = self._pieces.popleft()
        if len(first) >= WS_MAX_MESSAGE or not self._pieces:
            self._queued -= len(first)
            return first
        parts, size = [first], len(first)
        while self._pieces and size + len(self._pieces[0]) <= WS_MAX_MESSAGE:
            piece = self._pieces.popleft()
            parts.append(piece)
            size += len(piece)
        self._queued -= size
        return b"".join(parts)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), 10)
            except asyncio.TimeoutError:
                self._sender.cancel()
        await self._ws.close()


class MemoryTransport:
    """One end of :func:`memory_transport_pair`: what one end writes, the other reads."""

    def __init__(self, limit: int) -> None:
        self.peer: MemoryTransport | None = None
        self._limit = limit
        self._inbox: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._closed = False
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    async def read(self) -> bytes:
        while not self._inbox:
            if self._eof or self._closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._inbox.popleft()
        self._size -= len(chunk)
        if self._size < self._limit:
            self._space.set()
        return chunk

    def write(self, data: bytes) -> None:
        peer = self.peer
        if self._closed or peer is None or peer._closed:
            raise ConnectionResetError("memory transport closed")
        peer._inbox.append(bytes(data))
        peer._size += len(data)
        peer._readable.set()
        if peer._size >= peer._limit:
            peer._space.clear()

    async def drain(self) -> None:
        if self._closed:
            raise ConnectionResetError("memory transport closed")
        if self.peer is not None:
            await self.peer._space.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        self._readable.set()
        self._space.set()
        if self.peer is not None:
            self.peer._eof = True
            self.peer._readable.set()


def memory_transport_pair(limit: int = 256 * 1024) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected transports; a writer's drain waits while its peer has *limit* unread bytes."""
    a, b = MemoryTransport(limit), MemoryTransport(limit)
    a.peer, b.peer = b, a
    return a, b
