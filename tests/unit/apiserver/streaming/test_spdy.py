"""SPDY/3.1 codec and sessions (podling/apiserver/streaming/spdy*.py) over in-memory pipes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import struct
import zlib

import pytest

from podling.apiserver.streaming import spdy_frames as f
from podling.apiserver.streaming.spdy import (
    CANCEL, SpdyClosedError, SpdyConnection, SpdyProtocolError, SpdyStream,
)
from podling.apiserver.streaming.upgrade import memory_transport_pair

TIMEOUT = 20


# -- the dictionary and header compression ---------------------------------------------


def test_dictionary_is_the_spdy3_one():
    assert len(f.DICTIONARY) == 1423
    assert zlib.adler32(f.DICTIONARY) == 0xE3C6A7C2
    assert f.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert f.DICTIONARY.endswith(b",*,enq=0.")


def test_compressed_block_names_the_dictionary_and_is_sync_flushed():
    block = f.FrameEncoder().compress({"streamtype": "error"})
    assert block[2:6] == struct.pack(">I", 0xE3C6A7C2)  # zlib FDICT id
    assert block.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH marker


def test_header_blocks_share_one_context_per_direction():
    enc, dec = f.FrameEncoder(), f.FrameDecoder()
    blocks = [{"streamtype": t, "port": "80", "requestid": str(i)}
              for i, t in enumerate(["error", "data", "error", "data"])]
    wire = [enc.compress(h) for h in blocks]
    assert len(wire[2]) < len(wire[0])  # the context remembers earlier blocks
    assert [dec.headers(w) for w in wire] == blocks
    with pytest.raises(f.SpdyProtocolError):
        f.FrameDecoder().headers(wire[3])  # a fresh context cannot decode a later block


def test_decoder_matches_plain_zlib_with_the_dictionary():
    """A block made with zlib directly (as spdystream does) decodes."""
    z = zlib.compressobj(zdict=f.DICTIONARY)
    raw = f.encode_header_block({"streamtype": "data", "port": "8080"})
    wire = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    assert f.FrameDecoder().headers(wire) == {"streamtype": "data", "port": "8080"}


def test_header_block_layout_and_repeats():
    block = f.encode_header_block({"A": ["x", "y"], "b": ""})
    assert block == (b"\x00\x00\x00\x02" b"\x00\x00\x00\x01a" b"\x00\x00\x00\x03x\x00y"
                     b"\x00\x00\x00\x01b" b"\x00\x00\x00\x00")
    assert f.decode_header_block(block) == {"a": "x\0y", "b": ""}


# -- frames --------------------------------------------------------------------------------

FRAMES = [
    f.DataFrame(1, b"hello"),
    f.DataFrame(3, b"", fin=True),
    f.DataFrame(0x7FFFFFFF, bytes(range(256)) * 300),
    f.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
    f.SynStream(5, {}, associated_id=3, priority=7, slot=2, fin=True, unidirectional=True),
    f.SynReply(1, {}),
    f.SynReply(3, {"x-a": "b"}, fin=True),
    f.RstStream(5, f.CANCEL),
    f.Settings((f.Setting(f.SETTINGS_INITIAL_WINDOW_SIZE, 65536, 1), f.Setting(4, 100))),
    f.Settings(clear=True),
    f.Ping(1),
    f.Ping(0xFFFFFFFF),
    f.GoAway(7, f.GOAWAY_PROTOCOL_ERROR),
    f.HeadersFrame(9, {"k": "v"}, fin=True),
    f.WindowUpdate(0, 1 << 20),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda fr: type(fr).__name__)
def test_frame_round_trip(frame):
    assert f.FrameDecoder().feed(f.FrameEncoder().encode(frame)) == [frame]


def test_all_frames_in_one_stream_split_at_every_byte():
    enc = f.FrameEncoder()
    wire = b"".join(enc.encode(fr) for fr in FRAMES)
    dec, out = f.FrameDecoder(), []
    for i in range(len(wire)):
        out += dec.feed(wire[i:i + 1])
    dec.eof()
    assert out == FRAMES


@pytest.mark.parametrize("frame, wire", [
    (f.Ping(1), "80030006 00000004 00000001"),
    (f.RstStream(3, f.CANCEL), "80030003 00000008 00000003 00000005"),
    (f.GoAway(5, 0), "80030007 00000008 00000005 00000000"),
    (f.WindowUpdate(1, 0x10000), "80030009 00000008 00000001 00010000"),
    (f.DataFrame(1, b"ab", fin=True), "00000001 01000002 6162"),
])
def test_fixed_frames_match_the_spec_layout(frame, wire):
    assert f.FrameEncoder().encode(frame).hex() == wire.replace(" ", "")


def test_syn_stream_layout():
    wire = f.FrameEncoder().encode(f.SynStream(1, {"a": "b"}, priority=3, fin=True))
    assert wire[:4] == b"\x80\x03\x00\x01" and wire[4] == f.FLAG_FIN
    assert int.from_bytes(wire[5:8], "big") == len(wire) - 8
    assert wire[8:18] == b"\x00\x00\x00\x01" b"\x00\x00\x00\x00" b"\x60\x00"


def test_unknown_control_frames_are_skipped():
    credential = bytes.fromhex("8003000a 00000002 abcd")
    assert f.FrameDecoder().feed(credential + f.encode_data(1, b"x")) == [f.DataFrame(1, b"x")]


GARBAGE = {
    "http request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "spdy/2 control frame": bytes.fromhex("80020006 00000004 00000001"),
    "data on stream 0": bytes.fromhex("00000000 00000001 00"),
    "data with unknown flags": bytes.fromhex("00000001 02000000"),
    "rst of wrong length": bytes.fromhex("80030003 00000004 00000001"),
    "rst with status 0": bytes.fromhex("80030003 00000008 00000001 00000000"),
    "ping with flags": bytes.fromhex("80030006 01000004 00000001"),
    "settings count mismatch": bytes.fromhex("80030004 00000008 00000002 00000000"),
    "syn_stream without header block": bytes.fromhex("80030001 0000000a 00000001 00000000 0000"),
    "syn_stream, header block not zlib": bytes.fromhex("80030001 0000000e 00000001 00000000 0000")
    + b"junk",
    "syn_reply on stream 0": bytes.fromhex("80030002 00000004 00000000"),
    "window update of 0": bytes.fromhex("80030009 00000008 00000001 00000000"),
    "syn_stream with unknown flags": bytes.fromhex("80030001 8000000a 00000001 00000000 0000"),
}


@pytest.mark.parametrize("wire", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_a_protocol_error(wire):
    dec = f.FrameDecoder()
    with pytest.raises(f.SpdyProtocolError):
        dec.feed(wire)
        dec.eof()


def test_header_bomb_is_refused():
    z = zlib.compressobj(zdict=f.DICTIONARY)
    huge = f.encode_header_block({"a": "x" * (2 * f.MAX_HEADER_BLOCK)})
    block = z.compress(huge) + z.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(f.SpdyProtocolError, match="too large"):
        f.FrameDecoder().headers(block)


def test_random_bytes_raise_only_protocol_errors():
    rng = random.Random(1234)
    for _ in range(2000):
        dec = f.FrameDecoder()
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
        if rng.random() < 0.5:  # make it look like a v3 control frame more often
            data = b"\x80\x03" + data
        try:
            dec.feed(data)
            dec.eof()
        except f.SpdyProtocolError:
            pass


# -- sessions over an in-memory pipe ------------------------------------------------------


class Pair:
    """A client and a server SpdyConnection joined by memory transports, both running."""

    def __init__(self, on_stream=None):
        a, b = memory_transport_pair()
        self.client = SpdyConnection(a, server=False)
        self.server = SpdyConnection(b, server=True, on_stream=on_stream)
        self.tasks = [asyncio.create_task(c.run()) for c in (self.client, self.server)]

    async def close(self):
        await self.client.close()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), TIMEOUT)


async def read_all(stream: SpdyStream) -> bytes:
    out = bytearray()
    while chunk := await stream.read():
        out += chunk
    return bytes(out)


async def test_open_reply_and_ten_mib_both_ways():
    up, down = os.urandom(10 << 20), os.urandom(10 << 20)
    got: dict[str, bytes] = {}

    async def serve(stream: SpdyStream):
        async def work():
            await stream.reply({"x-ok": "1"})
            writer = asyncio.create_task(stream.write(down))
            got["server"] = await read_all(stream)
            await writer
            await stream.close()
        asyncio.create_task(work())

    pair = Pair(serve)
    stream = await pair.client.open_stream({"StreamType": "data", "port": "80"})
    await asyncio.wait_for(stream.wait_reply(), TIMEOUT)
    assert stream.reply_headers == {"x-ok": "1"}

    async def send():
        await stream.write(up)
        await stream.close()

    sender = asyncio.create_task(send())
    got["client"] = await asyncio.wait_for(read_all(stream), TIMEOUT)
    await asyncio.wait_for(sender, TIMEOUT)
    await asyncio.sleep(0)
    assert hashlib.sha256(got["server"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["client"]).digest() == hashlib.sha256(down).digest()
    assert pair.client.open_streams == 0 and pair.server.open_streams == 0
    await pair.close()


async def test_server_sees_headers_and_early_fin():
    pair = Pair()
    stream = await pair.client.open_stream({"streamtype": "error", "port": "80"}, fin=True)
    peer = await asyncio.wait_for(pair.server.accept(), TIMEOUT)
    assert peer.headers == {"streamtype": "error", "port": "80"}
    assert peer.id == 1 and await peer.read() == b""
    await peer.write(b"oops")  # replies implicitly first
    await peer.close()
    await asyncio.wait_for(stream.wait_reply(), TIMEOUT)
    assert await read_all(stream) == b"oops"
    await pair.close()


async def test_ping_both_ways():
    pair = Pair()
    assert await pair.client.ping(TIMEOUT) >= 0
    assert await pair.server.ping(TIMEOUT) >= 0
    await pair.close()


async def test_rst_from_peer_ends_reads_and_writes():
    pair = Pair()
    stream = await pair.client.open_stream({"streamtype": "data"})
    peer = await asyncio.wait_for(pair.server.accept(), TIMEOUT)
    await stream.write(b"before reset")
    stream.reset()
    assert await asyncio.wait_for(read_all(peer), TIMEOUT) == b"before reset"
    assert peer.reset_status == CANCEL
    with pytest.raises(SpdyClosedError):
        await peer.write(b"x")
    with pytest.raises(SpdyClosedError):
        await stream.write(b"x")
    await pair.close()


async def test_stream_refused_by_a_failing_handler():
    async def broken(stream):
        raise RuntimeError("handler bug")

    pair = Pair(broken)
    stream = await pair.client.open_stream({"streamtype": "data"})
    with pytest.raises(SpdyClosedError):
        await asyncio.wait_for(stream.wait_reply(), TIMEOUT)
    assert stream.reset_status == f.INTERNAL_ERROR
    await pair.close()


async def test_goaway_refuses_new_streams_and_keeps_old_ones():
    pair = Pair()
    old = await pair.client.open_stream({"streamtype": "data"})
    peer = await asyncio.wait_for(pair.server.accept(), TIMEOUT)
    await pair.server.goaway()
    for _ in range(100):
        if pair.client.goaway_received:
            break
        await asyncio.sleep(0.01)
    assert pair.client.goaway_received == f.GoAway(1, f.GOAWAY_OK)
    with pytest.raises(SpdyClosedError):
        await pair.client.open_stream({"streamtype": "data"})
    with pytest.raises(SpdyClosedError):
        await pair.server.open_stream({})
    await peer.write(b"still here")
    await peer.close()
    assert await asyncio.wait_for(read_all(old), TIMEOUT) == b"still here"
    await pair.close()


async def test_clean_eof_ends_streams_and_run():
    pair = Pair()
    stream = await pair.client.open_stream({"streamtype": "data"})
    peer = await asyncio.wait_for(pair.server.accept(), TIMEOUT)
    await pair.client.close()
    assert await asyncio.wait_for(peer.read(), TIMEOUT) == b""
    assert peer.reset_status == -1
    await asyncio.wait_for(asyncio.gather(*pair.tasks), TIMEOUT)
    assert pair.server.closed.is_set() and pair.client.closed.is_set()
    with pytest.raises(SpdyClosedError):
        await stream.write(b"x")
    assert await pair.server.accept() is None


async def test_slow_reader_holds_back_the_writer():
    pair = Pair()
    stream = await pair.client.open_stream({"streamtype": "data"})
    peer = await asyncio.wait_for(pair.server.accept(), TIMEOUT)
    writer = asyncio.create_task(stream.write(b"x" * (8 << 20)))
    await asyncio.sleep(0.2)
    assert not writer.done()  # the server's buffer and the pipe are full
    assert len(await asyncio.wait_for(read_all_until(peer, 8 << 20), TIMEOUT)) == 8 << 20
    await asyncio.wait_for(writer, TIMEOUT)
    await pair.close()


async def read_all_until(stream: SpdyStream, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += await stream.read()
    return bytes(out)


@pytest.mark.parametrize("wire", [GARBAGE["http request"], GARBAGE["spdy/2 control frame"],
                                  b"\x80\x03\x00\x06\x00\x00"], ids=["http", "v2", "truncated"])
async def test_garbage_ends_the_session_with_a_protocol_error(wire):
    mine, theirs = memory_transport_pair()
    conn = SpdyConnection(mine, server=True)
    run = asyncio.create_task(conn.run())
    theirs.write(wire)
    await theirs.close()
    with pytest.raises(SpdyProtocolError):
        await asyncio.wait_for(run, TIMEOUT)
    assert conn.closed.is_set()


async def test_goaway_sent_on_protocol_error():
    mine, theirs = memory_transport_pair()
    conn = SpdyConnection(mine, server=True)
    run = asyncio.create_task(conn.run())
    theirs.write(f.FrameEncoder().encode(f.SynStream(1, {"a": "b"})) + GARBAGE["data on stream 0"])
    with pytest.raises(SpdyProtocolError):
        await asyncio.wait_for(run, TIMEOUT)
    replies = f.FrameDecoder().feed(await theirs.read())
    assert replies[-1] == f.GoAway(1, f.GOAWAY_PROTOCOL_ERROR)


async def test_peer_stream_ids_must_grow_with_the_right_parity():
    mine, theirs = memory_transport_pair()
    conn = SpdyConnection(mine, server=True)
    run = asyncio.create_task(conn.run())
    enc = f.FrameEncoder()
    theirs.write(enc.encode(f.SynStream(3, {})) + enc.encode(f.SynStream(1, {}))
                 + enc.encode(f.SynStream(4, {})))
    frames = []
    while len(frames) < 2:
        frames += f.FrameDecoder().feed(await asyncio.wait_for(theirs.read(), TIMEOUT))
    assert frames == [f.RstStream(1, f.PROTOCOL_ERROR), f.RstStream(4, f.PROTOCOL_ERROR)]
    assert (await conn.accept()).id == 3
    await theirs.close()
    await asyncio.wait_for(run, TIMEOUT)


def test_data_frames_in_one_buffer_decode_to_the_payload():
    payload = os.urandom(200_000)
    wire = f.encode_data_frames(7, memoryview(payload), 65536)
    frames = f.FrameDecoder().feed(bytes(wire))
    assert [len(fr.data) for fr in frames] == [65536, 65536, 65536, 200_000 - 3 * 65536]
    assert all(fr.stream_id == 7 and not fr.fin for fr in frames)
    assert b"".join(fr.data for fr in frames) == payload
    assert f.encode_data_frames(7, b"", 65536) == b""
    with pytest.raises(ValueError):
        f.encode_data_frames(0, b"x", 65536)
