"""SPDY/3.1 connections and streams over any byte transport (podling's own implementation).

Kubernetes clients (kubectl's SPDY executor and port-forwarder, built on moby/spdystream)
open one stream per channel; the server answers each SYN_STREAM with a SYN_REPLY, moves
bytes as DATA frames and half-closes with FLAG_FIN. Frame layouts live in
:mod:`.spdy_frames`; this module adds the session: stream table, PING, RST_STREAM, GOAWAY.

Flow control. SPDY/3.1 defines 64 KiB stream and session windows, but spdystream (and so
kubectl) neither sends WINDOW_UPDATE nor honours it nor SETTINGS: it writes a DATA frame per
``Write`` call and relies on TCP. Waiting for window updates would stall every transfer after
64 KiB, so this implementation does what the Go peer does: WINDOW_UPDATE and SETTINGS are
parsed and ignored, none are sent, and back-pressure is the transport's. ``write`` awaits
the transport's drain; the read loop stops reading (so TCP pushes back) while one stream has
:data:`STREAM_BUFFER_LIMIT` unread bytes.

Usage (server side)::

    conn = SpdyConnection(transport, server=True, on_stream=handle)   # handle(stream) -> None
    await conn.run()              # until the peer goes away; SpdyProtocolError on garbage

``on_stream`` is awaited inside the read loop, in arrival order: it should register the
stream (and maybe :meth:`SpdyStream.reply`) and return, never wait for other frames.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Awaitable, Callable, Mapping, Protocol

from .spdy_frames import (
    CANCEL, GOAWAY_OK, INTERNAL_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, DataFrame, Frame,
    FrameDecoder, FrameEncoder, GoAway, encode_data_frames, Headers, HeadersFrame, Ping, RstStream, Settings,
    SpdyError, SpdyProtocolError, SynReply, SynStream, WindowUpdate,
)

__all__ = [
    "ByteTransport", "SpdyConnection", "SpdyStream", "SpdyError", "SpdyProtocolError",
    "SpdyClosedError", "CANCEL", "PROTOCOL_ERROR", "REFUSED_STREAM", "INTERNAL_ERROR",
    "MAX_DATA_FRAME", "STREAM_BUFFER_LIMIT",
]

log = logging.getLogger(__name__)

MAX_DATA_FRAME = 64 * 1024
"""Largest DATA payload we send (spdystream accepts up to 16 MiB - 1; 64 KiB keeps latency low)."""
WRITE_BATCH = 256 * 1024
"""Payload bytes written to the transport at once (as several DATA frames) before a drain."""
STREAM_BUFFER_LIMIT = 1024 * 1024
"""Unread bytes one stream may hold before the read loop stops reading the transport."""


class SpdyClosedError(SpdyError):
    """Write to a stream that was closed, reset, or whose connection has ended."""


class ByteTransport(Protocol):
    """An ordered, reliable byte pipe (a raw upgraded socket, a WebSocket tunnel, a test pipe)."""

    async def read(self) -> bytes:
        """The next bytes, any size; ``b""`` at end of stream or after :meth:`close`."""

    def write(self, data: bytes) -> None:
        """Queue *data* in order; never blocks. May raise once the transport is closed."""

    async def drain(self) -> None:
        """Wait until queued output is below the transport's high-water mark."""

    async def close(self) -> None:
        """Flush what is queued and close both directions. Idempotent."""


OnStream = Callable[["SpdyStream"], Awaitable[None]]


class SpdyStream:
    """One SPDY stream: bytes in (:meth:`read`) and out (:meth:`write`), independently closed.

    ::

        open ──close()──▶ local closed ──peer FIN──▶ done
          └──peer FIN───▶ remote closed ──close()──▶ done
        any ──reset() | peer RST_STREAM | connection end──▶ done

    After the peer's RST or the connection's end, data already received is still returned
    by :meth:`read`, then ``b""``; after our own :meth:`reset` it is discarded.
    """

    def __init__(self, conn: SpdyConnection, stream_id: int, headers: Headers, *,
                 local: bool) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers = headers
        """SYN_STREAM headers (names lower-case): the peer's, or ours for an opened stream."""
        self.reply_headers: Headers = {}
        """Headers of the peer's SYN_REPLY and HEADERS frames (streams we opened)."""
        self.reset_status: int | None = None
        """RST_STREAM status once reset by either side (``-1``: the connection ended)."""
        self.local_closed = False
        self.remote_closed = False
        self._local = local
        self._replied = asyncio.Event()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def __repr__(self) -> str:
        return f"<SpdyStream {self.id} {self.headers.get('streamtype', '')!r}>"

    @property
    def replied(self) -> bool:
        """True once SYN_REPLY went out (peer's stream) or came in (ours)."""
        return self._replied.is_set()

    async def read(self) -> bytes:
        """The next DATA payload; ``b""`` once the peer finished, reset, or went away."""
        while not self._chunks:
            if self.remote_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < STREAM_BUFFER_LIMIT:
            self._space.set()
        return chunk

    async def write(self, data: bytes) -> None:
        """Send *data* as DATA frames of at most :data:`MAX_DATA_FRAME` bytes, handed to the
        transport :data:`WRITE_BATCH` bytes at a time (one copy of the payload, one drain each).

        Replies first if we have not yet (spdystream drops DATA that precedes SYN_REPLY).
        Awaits the transport's drain, so a fast producer waits for a slow consumer.
        Raises :class:`SpdyClosedError` after :meth:`close`, :meth:`reset` or the end.
        """
        self._check_writable()
        if not self._local and not self.replied:
            await self.reply()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), WRITE_BATCH):
            self._check_writable()
            self.conn.send_raw(encode_data_frames(self.id, view[start:start + WRITE_BATCH],
                                                  MAX_DATA_FRAME))
            await self.conn.drain()

    async def close(self) -> None:
        """Half-close: FIN our side (replying first if needed). Idempotent; no-op once reset."""
        if self.local_closed or self.reset_status is not None:
            return
        if not self._local and not self.replied:
            await self.reply(fin=True)
            return
        self.local_closed = True
        self.conn.send(DataFrame(self.id, b"", fin=True))
        self.conn.forget_if_done(self)
        await self.conn.drain()

    def reset(self, status: int = CANCEL) -> None:
        """Abort both directions with RST_STREAM *status*; discards unread data. Idempotent."""
        if self.reset_status is not None:
            return
        if not (self.local_closed and self.remote_closed):
            self.conn.send(RstStream(self.id, status), quiet=True)
        self._chunks.clear()
        self._buffered = 0
        self._end(status)

    async def reply(self, headers: Mapping[str, str] | None = None, *, fin: bool = False) -> None:
        """Accept the peer's stream with SYN_REPLY (``fin``: and half-close). Later calls no-op."""
        if self._local:
            raise SpdyError("only the peer's streams are replied to")
        if self.replied or self.reset_status is not None:
            return
        self._check_writable()
        self._replied.set()
        self.local_closed = fin
        self.conn.send(SynReply(self.id, dict(headers or {}), fin))
        if fin:
            self.conn.forget_if_done(self)
        await self.conn.drain()

    async def wait_reply(self, timeout: float | None = None) -> None:
        """Wait for the peer's SYN_REPLY to a stream we opened; SpdyClosedError if reset."""
        waiter = asyncio.ensure_future(self._replied.wait())
        ended = asyncio.ensure_future(self._wait_ended())
        try:
            await asyncio.wait_for(asyncio.wait({waiter, ended},
                                                return_when=asyncio.FIRST_COMPLETED), timeout)
        finally:
            waiter.cancel()
            ended.cancel()
        if not self.replied:
            raise SpdyClosedError(f"stream {self.id} ended before SYN_REPLY")

    async def _wait_ended(self) -> None:
        while self.reset_status is None:
            self._readable.clear()
            await self._readable.wait()

    # -- called by the connection ------------------------------------------------------

    def _check_writable(self) -> None:
        if self.local_closed or self.reset_status is not None:
            raise SpdyClosedError(f"stream {self.id} is closed for writing")

    async def _feed(self, data: bytes) -> None:
        """Queue the peer's DATA; waits while the reader is :data:`STREAM_BUFFER_LIMIT` behind."""
        if self.remote_closed or self.reset_status is not None:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._readable.set()
        if self._buffered >= STREAM_BUFFER_LIMIT:
            self._space.clear()
            await self._space.wait()

    def _finish_remote(self) -> None:
        self.remote_closed = True
        self._readable.set()
        self.conn.forget_if_done(self)

    def _end(self, status: int) -> None:
        """Both directions are over (RST either way, or the connection ended)."""
        self.reset_status = status
        self.local_closed = self.remote_closed = True
        self._readable.set()
        self._space.set()
        self.conn.forget_if_done(self)


class SpdyConnection:
    """One SPDY/3.1 session over a :class:`ByteTransport`.

    *server* picks stream and ping id parity (server even, client odd). Peer streams go to
    *on_stream* (awaited in the read loop) or, without it, to :meth:`accept`.
    Only :meth:`run` reads the transport; every other method may be called from any task.
    """

    def __init__(self, transport: ByteTransport, *, server: bool,
                 on_stream: OnStream | None = None) -> None:
        self.transport = transport
        self.server = server
        self.peer_settings: dict[int, int] = {}
        self.goaway_received: GoAway | None = None
        self.closed = asyncio.Event()
        """Set when :meth:`run` has finished (the connection is unusable)."""
        self._on_stream = on_stream
        self._accepted: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._streams: dict[int, SpdyStream] = {}
        self._encoder = FrameEncoder()
        self._decoder = FrameDecoder()
        self._next_id = 2 if server else 1
        self._last_peer_id = 0
        self._next_ping = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._goaway_sent = False
        self._ended = False

    # -- sending -------------------------------------------------------------------------

    def send(self, frame: Frame, *, quiet: bool = False) -> None:
        """Encode and queue one frame (atomically: header contexts stay in wire order).

        Raises :class:`SpdyClosedError` once the connection ended, unless *quiet*.
        """
        if self._ended:
            if quiet:
                return
            raise SpdyClosedError("SPDY connection closed")
        try:
            self.transport.write(self._encoder.encode(frame))
        except (ConnectionError, RuntimeError) as exc:
            if not quiet:
                raise SpdyClosedError(f"transport closed: {exc}") from exc

    def send_raw(self, encoded: bytes | bytearray) -> None:
        """Queue already encoded DATA frames (no header block: any order is wire order)."""
        if self._ended:
            raise SpdyClosedError("SPDY connection closed")
        try:
            self.transport.write(encoded)
        except (ConnectionError, RuntimeError) as exc:
            raise SpdyClosedError(f"transport closed: {exc}") from exc

    async def drain(self) -> None:
        """Wait for the transport's drain; SpdyClosedError if it fails."""
        try:
            await self.transport.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise SpdyClosedError(f"transport closed: {exc}") from exc

    async def open_stream(self, headers: Mapping[str, str], *, fin: bool = False) -> SpdyStream:
        """Send SYN_STREAM and return the stream (use :meth:`SpdyStream.wait_reply`)."""
        if self.goaway_received is not None or self._goaway_sent:
            raise SpdyClosedError("connection is going away; no new streams")
        stream = SpdyStream(self, self._next_id, {k.lower(): v for k, v in headers.items()},
                            local=True)
        self._next_id += 2
        self._streams[stream.id] = stream
        stream.local_closed = fin
        self.send(SynStream(stream.id, stream.headers, fin=fin))
        await self.drain()
        return stream

    async def ping(self, timeout: float = 10.0) -> float:
        """Round trip of one PING, in seconds; TimeoutError or SpdyClosedError otherwise."""
        ping_id, self._next_ping = self._next_ping, self._next_ping + 2
        waiter = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = waiter
        start = time.monotonic()
        try:
            self.send(Ping(ping_id))
            await asyncio.wait_for(waiter, timeout)
        finally:
            self._pings.pop(ping_id, None)
        return time.monotonic() - start

    async def goaway(self, status: int = GOAWAY_OK) -> None:
        """Tell the peer we accept no new streams (existing ones go on). Idempotent."""
        if not self._goaway_sent:
            self._goaway_sent = True
            self.send(GoAway(self._last_peer_id, status), quiet=True)
            await self.drain()

    async def close(self) -> None:
        """GOAWAY, then close the transport; :meth:`run` ends soon after. Idempotent."""
        if not self._goaway_sent and not self._ended:
            self._goaway_sent = True
            self.send(GoAway(self._last_peer_id, GOAWAY_OK), quiet=True)
        await self.transport.close()

    async def accept(self) -> SpdyStream | None:
        """The next peer stream (when no *on_stream* was given); None once the connection ended."""
        return await self._accepted.get()

    # -- receiving -----------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch frames until the transport ends.

        Returns at a clean end of stream. On malformed input sends GOAWAY(PROTOCOL_ERROR)
        and raises :class:`SpdyProtocolError`. Either way (and on cancellation) every stream
        ends and the transport is closed.
        """
        try:
            while True:
                data = await self.transport.read()
                if not data:
                    self._decoder.eof()
                    return
                for frame in self._decoder.parse(data):
                    await self._dispatch(frame)
        except SpdyProtocolError as exc:
            log.info("SPDY protocol error from peer: %s", exc)
            self.send(GoAway(self._last_peer_id, exc.status), quiet=True)
            raise
        finally:
            await self._shutdown()

    async def _dispatch(self, frame: Frame) -> None:
        match frame:
            case DataFrame(sid, data, fin):
                stream = self._streams.get(sid)
                if stream is not None:  # unknown: recently reset by us, or never opened
                    if data:
                        await stream._feed(data)
                    if fin:
                        stream._finish_remote()
            case SynStream():
                await self._on_syn_stream(frame)
            case SynReply(sid, headers, fin) | HeadersFrame(sid, headers, fin):
                self._on_reply(sid, headers, fin, isinstance(frame, SynReply))
            case RstStream(sid, status):
                stream = self._streams.get(sid)
                if stream is not None:
                    stream._end(status)
            case Ping(ping_id):
                self._on_ping(ping_id)
            case GoAway():
                self._on_goaway(frame)
            case Settings(entries):
                self.peer_settings.update({e.id: e.value for e in entries})
            case WindowUpdate():
                pass  # no window enforcement: see the module docstring

    async def _on_syn_stream(self, frame: SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 != (1 if self.server else 0) or sid <= self._last_peer_id:
            self.send(RstStream(sid, PROTOCOL_ERROR), quiet=True)
            return
        self._last_peer_id = sid
        if self._goaway_sent or self._ended:
            self.send(RstStream(sid, REFUSED_STREAM), quiet=True)
            return
        stream = SpdyStream(self, sid, frame.headers, local=False)
        stream.remote_closed = frame.fin
        if frame.unidirectional:
            stream.local_closed = True
            stream._replied.set()
        self._streams[sid] = stream
        if self._on_stream is None:
            self._accepted.put_nowait(stream)
            return
        try:
            await self._on_stream(stream)
        except Exception:  # noqa: BLE001 - a handler bug must not kill the session
            log.exception("SPDY stream handler failed for %r", stream)
            stream.reset(INTERNAL_ERROR)

    def _on_reply(self, sid: int, headers: Headers, fin: bool, syn_reply: bool) -> None:
        stream = self._streams.get(sid)
        if stream is None or not stream._local or (syn_reply and stream.replied):
            return
        stream.reply_headers.update(headers)
        stream._replied.set()
        stream._readable.set()
        if fin:
            stream._finish_remote()

    def _on_ping(self, ping_id: int) -> None:
        if ping_id % 2 != self._next_ping % 2:
            self.send(Ping(ping_id), quiet=True)  # the peer's: echo it
            return
        waiter = self._pings.get(ping_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_goaway(self, frame: GoAway) -> None:
        self.goaway_received = frame
        for stream in list(self._streams.values()):
            if stream._local and stream.id > frame.last_good_stream_id:
                stream._end(REFUSED_STREAM)

    def forget_if_done(self, stream: SpdyStream) -> None:
        """Drop a stream from the table once both directions are over."""
        if stream.local_closed and stream.remote_closed:
            self._streams.pop(stream.id, None)

    @property
    def open_streams(self) -> int:
        """Streams with at least one direction still open."""
        return len(self._streams)

    async def _shutdown(self) -> None:
        self._ended = True
        for stream in list(self._streams.values()):
            stream._end(-1)
        self._streams.clear()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(SpdyClosedError("SPDY connection closed"))
        self._accepted.put_nowait(None)
        try:
            await self.transport.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.debug("closing the SPDY transport failed", exc_info=True)
        self.closed.set()
