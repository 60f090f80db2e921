"""The probes' lean HTTP GET against raw servers on 127.0.0.1: what it sends, Content-Length,
chunked and until-EOF bodies (at most 10 KiB), answers read in pieces, a malformed answer,
EOF before the head ends, refused, timed out and cancelled (every socket closed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import AsyncIterator

import pytest

from podling.agent.prober.http_get import (MAX_BODY, MalformedResponse, _Exchange, build_request,
                                          exchange, http_get, literal_address, tcp_connect)


@contextlib.asynccontextmanager
async def answering(reply: bytes) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server answering every request with ``reply`` then closing; yields (port, the
    requests' heads)."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(reply)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], heads
    finally:
        server.close()
        await server.wait_closed()


async def test_request_line_and_headers() -> None:
    async with answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as (port, heads):
        got = await http_get("127.0.0.1", port, "/healthz?full=1",
                             [("Host", f"127.0.0.1:{port}"), ("User-Agent", "kube-probe/1.32"),
                              ("X-Probe", "1")])
    assert got == (200, b"ok")
    lines = heads[0].decode().split("\r\n")
    assert lines[0] == "GET /healthz?full=1 HTTP/1.1"
    assert lines[1:5] == [f"Host: 127.0.0.1:{port}", "User-Agent: kube-probe/1.32",
                          "X-Probe: 1", "Connection: close"]


@pytest.mark.parametrize("reply, code, body", [
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", 404, b"nope"),
    (b"HTTP/1.0 302 Found\r\nLocation: /\r\n\r\ngo there", 302, b"go there"),  # until EOF
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     200, b"abcde"),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_BODY + 5000), 200, b"x" * MAX_BODY),
])
async def test_response_bodies(reply, code, body) -> None:
    async with answering(reply) as (port, _):
        assert await http_get("127.0.0.1", port, "/", []) == (code, body)


async def test_a_non_http_answer_is_malformed() -> None:
    async with answering(b"SSH-2.0-OpenSSH\r\n\r\n") as (port, _):
        with pytest.raises(MalformedResponse, match="SSH-2.0"):
            await http_get("127.0.0.1", port, "/", [])


async def test_refused_connections_raise_oserror() -> None:
    async with answering(b"") as (port, _):
        await tcp_connect("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError):
        await tcp_connect("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError):
        await http_get("localhost", port, "/", [])  # a name is resolved first


@contextlib.asynccontextmanager
async def trickling(reply: bytes, *, pause: float = 0.01) -> AsyncIterator[int]:
    """A server sending ``reply`` a few bytes at a time (partial reads), then closing."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        for i in range(0, len(reply), 7):
            writer.write(reply[i:i + 7])
            await writer.drain()
            await asyncio.sleep(pause)
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # the transports close on the next iterations


@pytest.mark.parametrize("reply, code, body", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", 200, b"hello world"),
    (b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     500, b"hello"),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 204, b""),
])
async def test_answers_read_in_pieces(reply, code, body) -> None:
    async with trickling(reply) as port:
        assert await exchange((socket.AF_INET, ("127.0.0.1", port)),
                              build_request("/", []), 5.0) == (code, body)


async def test_eof_before_the_head_ends_is_malformed() -> None:
    async with trickling(b"HTTP/1.1 200 OK\r\nContent-") as port:
        with pytest.raises(MalformedResponse, match="HTTP/1.1 200 OK"):
            await exchange((socket.AF_INET, ("127.0.0.1", port)), build_request("/", []), 5.0)
    async with answering(b"") as (port, _):
        with pytest.raises(MalformedResponse, match="EOF"):
            await http_get("127.0.0.1", port, "/", [])


async def test_a_silent_server_times_out_and_every_socket_is_closed() -> None:
    await asyncio.sleep(0.05)
    before = len(os.listdir("/proc/self/fd"))
    async with trickling(b"HTTP/1.1 200 OK\r\n\r\n", pause=5.0) as port:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await exchange((socket.AF_INET, ("127.0.0.1", port)), build_request("/", []), 0.2)
        assert 0.15 < loop.time() - start < 2.0
        task = asyncio.ensure_future(
            exchange((socket.AF_INET, ("127.0.0.1", port)), build_request("/", []), 30.0))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(os.listdir("/proc/self/fd")) <= before


async def test_connect_only_and_refused_errno() -> None:
    async with answering(b"") as (port, _):
        assert await exchange((socket.AF_INET, ("127.0.0.1", port)), None, 5.0) == (0, b"")
    with pytest.raises(ConnectionRefusedError) as caught:
        await exchange((socket.AF_INET, ("127.0.0.1", port)), None, 5.0)
    assert caught.value.strerror == "Connection refused"


def test_literal_addresses() -> None:
    assert literal_address("10.0.0.7", 80) == (socket.AF_INET, ("10.0.0.7", 80))
    assert literal_address("[fd00::1]", 8080) == (socket.AF_INET6, ("fd00::1", 8080, 0, 0))
    assert literal_address("localhost", 80) is None
    assert build_request("/x", [("Host", "h")]) == \
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"


async def test_a_status_code_of_non_ascii_digits_is_malformed() -> None:
    async with answering("HTTP/1.1 2²0 OK\r\n\r\n".encode("latin-1")) as (port, _):
        with pytest.raises(MalformedResponse, match="HTTP/1.1 2"):
            await http_get("127.0.0.1", port, "/", [], timeout=5.0)


async def test_a_handshake_still_under_way_goes_on_from_the_writer_callback(monkeypatch) -> None:
    """On loopback the handshake completes within connect_ex; the path through the
    writer callback (a slower network) must give the same answers."""
    monkeypatch.setattr(_Exchange, "_established", lambda self: False)
    async with answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as (port, heads):
        assert await http_get("127.0.0.1", port, "/", [], timeout=5.0) == (200, b"ok")
        await tcp_connect("127.0.0.1", port, timeout=5.0)
    assert heads[0].startswith(b"GET / HTTP/1.1\r\n")
