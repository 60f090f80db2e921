"""A tiny grpc.health.v1 Health server for tests of the grpc probe, written with ``h2``
(server side) over asyncio.

``statuses`` maps a service name ("" is the server as a whole) to a HealthCheckResponse
status (1 SERVING, 2 NOT_SERVING); a service not in it gets the trailers-only reply
``grpc-status 5`` / ``unknown service``, as grpc-go's health server answers. ``mode``:
``"serve"``; ``"hang"`` (handshake, then never answer a call); ``"silent"`` (accept TCP,
never send HTTP/2 SETTINGS). ``calls`` counts the Check calls answered or held.

    async with serve_health({"": 1}) as server:   # on the running loop; server.port
    with HealthServerThread({"": 1}, host) as s:   # on a thread of its own (sync tests)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import AsyncIterator

import h2.config
import h2.connection
import h2.events


def _response(status: int) -> bytes:
    body = b"\x08" + bytes([status])
    return b"\x00" + len(body).to_bytes(4, "big") + body


def _service(message: bytes) -> str:
    body = message[5:]
    if len(body) >= 2 and body[0] == 0x0A:
        return body[2:2 + body[1]].decode()
    return ""


class HealthServer:
    def __init__(self, statuses: dict[str, int], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.statuses = dict(statuses)
        self.host = host
        self._port = port
        self.mode = "serve"
        self.calls = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == "silent":
                await reader.read()  # until the client goes
                return
            conn = h2.connection.H2Connection(h2.config.H2Configuration(
                client_side=False, header_encoding="utf-8"))
            conn.initiate_connection()
            writer.write(conn.data_to_send())
            bodies: dict[int, bytes] = {}
            while chunk := await reader.read(65536):
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        self._answer(conn, event.stream_id, bodies.pop(event.stream_id, b""))
                writer.write(conn.data_to_send())
                await writer.drain()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, conn: h2.connection.H2Connection, sid: int, message: bytes) -> None:
        self.calls += 1
        if self.mode == "hang":
            return
        service = _service(message)
        head = [(":status", "200"), ("content-type", "application/grpc")]
        if service not in self.statuses:
            conn.send_headers(sid, head + [("grpc-status", "5"),
                                           ("grpc-message", "unknown service")], end_stream=True)
            return
        conn.send_headers(sid, head)
        conn.send_data(sid, _response(self.statuses[service]))
        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)


@contextlib.asynccontextmanager
async def serve_health(statuses: dict[str, int], host: str = "127.0.0.1"
                       ) -> AsyncIterator[HealthServer]:
    server = HealthServer(statuses, host)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class HealthServerThread:
    """A :class:`HealthServer` on an event loop of its own thread, for synchronous tests;
    ``set(service, status)`` changes an answer."""

    def __init__(self, statuses: dict[str, int], host: str = "127.0.0.1", *, port: int = 0,
                 netns: str | None = None) -> None:
        """``netns``: a network namespace path (``/proc/PID/ns/net``) the server's thread
        enters first, so that it listens inside that namespace (a pod's)."""
        self.server = HealthServer(statuses, host, port)
        self._loop = asyncio.new_event_loop()
        self._netns = netns
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self._netns is not None:  # setns moves this thread only
            from podling.runtime.oci.portforward import CLONE_NEWNET, setns
            fd = os.open(self._netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        self._loop.run_forever()

    @property
    def port(self) -> int:
        return self.server.port

    def set(self, service: str, status: int) -> None:
        self._loop.call_soon_threadsafe(self.server.statuses.__setitem__, service, status)

    def __enter__(self) -> "HealthServerThread":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
