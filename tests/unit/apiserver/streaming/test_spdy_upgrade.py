"""SPDY over a raw aiohttp upgrade and over WebSocket messages (streaming/upgrade.py)."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from aiohttp import web

from podling.apiserver.streaming.spdy import SpdyConnection, SpdyStream
from podling.apiserver.streaming.upgrade import (
    WebSocketTransport, accept_spdy_upgrade, choose_protocol, is_spdy_upgrade,
)

TIMEOUT = 20


@pytest.mark.parametrize("offered, supported, chosen", [
    (["v4.channel.k8s.io", "v3.channel.k8s.io"], ["v3.channel.k8s.io", "v4.channel.k8s.io"],
     "v4.channel.k8s.io"),
    (["v5.channel.k8s.io, v4.channel.k8s.io"], ["v4.channel.k8s.io"], "v4.channel.k8s.io"),
    (["channel.k8s.io", " portforward.k8s.io ,"], ["portforward.k8s.io"], "portforward.k8s.io"),
    (["v1.channel.k8s.io"], ["v4.channel.k8s.io"], None),
    ([], ["v4.channel.k8s.io"], None),
])
def test_choose_protocol(offered, supported, chosen):
    assert choose_protocol(offered, supported) == chosen


class StreamTransport:
    """asyncio streams as a ByteTransport (the client side of these tests)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head=b""):
        self.reader, self.writer, self.head = reader, writer, head

    async def read(self) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            return head
        return await self.reader.read(1 << 16)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()


async def echo_streams(stream: SpdyStream) -> None:
    """Server side: reply, echo every byte back, FIN when the client FINs."""
    async def echo():
        await stream.reply()
        while data := await stream.read():
            await stream.write(data)
        await stream.close()
    asyncio.create_task(echo())


async def spdy_handler(request: web.Request) -> web.StreamResponse:
    if not is_spdy_upgrade(request):
        return web.Response(status=400, text="not an upgrade")
    offered = request.headers.getall("X-Stream-Protocol-Version", [])
    protocol = choose_protocol(offered, ["portforward.k8s.io"])
    response, transport = await accept_spdy_upgrade(request, protocol)
    await SpdyConnection(transport, server=True, on_stream=echo_streams).run()
    return response


async def ws_handler(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=["SPDY/3.1+portforward.k8s.io"])
    await ws.prepare(request)
    await SpdyConnection(WebSocketTransport(ws), server=True, on_stream=echo_streams).run()
    return ws


@pytest.fixture
async def server():
    app = web.Application()
    app.router.add_post("/spdy", spdy_handler)
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield port
    await runner.cleanup()


async def raw_upgrade(port: int) -> tuple[bytes, StreamTransport]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /spdy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                 b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return head, StreamTransport(reader, writer)


async def echo_through(client: SpdyConnection, payload: bytes) -> bytes:
    stream = await client.open_stream({"streamtype": "data", "port": "80", "requestid": "0"})
    await asyncio.wait_for(stream.wait_reply(), TIMEOUT)

    async def send():
        await stream.write(payload)
        await stream.close()

    sender = asyncio.create_task(send())
    out = bytearray()
    while chunk := await asyncio.wait_for(stream.read(), TIMEOUT):
        out += chunk
    await sender
    return bytes(out)


async def test_raw_upgrade_answers_101_and_carries_spdy(server):
    head, transport = await raw_upgrade(server)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    assert headers["connection"] == "Upgrade" and headers["upgrade"] == "SPDY/3.1"
    assert headers["x-stream-protocol-version"] == "portforward.k8s.io"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    client = SpdyConnection(transport, server=False)
    run = asyncio.create_task(client.run())
    payload = os.urandom(5 << 20)
    assert await echo_through(client, payload) == payload
    assert await echo_through(client, b"second stream") == b"second stream"
    assert await client.ping(TIMEOUT) >= 0
    await client.close()
    await asyncio.wait_for(run, TIMEOUT)


async def test_non_upgrade_post_gets_an_ordinary_answer(server):
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{server}/spdy") as resp:
            assert resp.status == 400


async def test_websocket_tunnel_carries_spdy(server):
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://127.0.0.1:{server}/ws",
                                      protocols=["SPDY/3.1+portforward.k8s.io"])
        assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
        client = SpdyConnection(WebSocketTransport(ws), server=False)
        run = asyncio.create_task(client.run())
        payload = os.urandom(3 << 20)
        assert await echo_through(client, payload) == payload
        await client.close()
        await asyncio.wait_for(run, TIMEOUT)


class _RecordingWebSocket:
    """Just what WebSocketTransport sends with: the messages, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    async def close(self) -> None:
        pass


async def test_websocket_tunnel_joins_small_writes_and_sends_large_ones_whole():
    from podling.apiserver.streaming.upgrade import WS_MAX_MESSAGE
    ws = _RecordingWebSocket()
    transport = WebSocketTransport(ws)
    small = [bytes([i]) * 100 for i in range(5)]
    large = os.urandom(WS_MAX_MESSAGE + 10)
    for piece in small:
        transport.write(piece)
    transport.write(large)
    transport.write(b"tail")
    await transport.drain()
    await transport.close()
    assert ws.sent == [b"".join(small), large, b"tail"]
