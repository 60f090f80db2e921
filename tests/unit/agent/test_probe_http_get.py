"""The probes' lean HTTP GET against raw servers on 127.0.0.1: what it sends, Content-Length,
chunked and until-EOF bodies (at most 10 KiB), a malformed answer, the socket closed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import pytest

from podling.agent.prober.http_get import MAX_BODY, MalformedResponse, http_get, tcp_connect


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
