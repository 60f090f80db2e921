"""watch._Sink: events written to a watcher's connection during the store's fan-out.

The sink frames the events queued by then as one HTTP chunk while the connection keeps up, and refuses
(so that the watch task takes over with flow control) when the transport's buffer is above
its high-water mark or the connection is closing; nothing is lost or reordered across a
refusal, the refused events stay queued on the stream. A write that fails ends the stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from podling.apiserver.encoding import encode_event
from podling.apiserver.handlers import match_all
from podling.apiserver.watch import _Sink
from podling.storage.cache import CachedStore


class FakeTransport:
    """What the sink uses of an asyncio transport, with a settable buffer and a write log."""

    def __init__(self, high: int = 1000) -> None:
        self.high = high
        self.buffered = 0
        self.closing = False
        self.fail = False
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self.high // 4, self.high)

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError("gone")
        self.written.append(data)


class JsonWriter:
    """The _Writer surface _line uses: plain JSON lines."""

    def encode(self, type_: str, obj: dict, *, stored: bool = True) -> bytes:
        return encode_event(type_, obj, stored=stored)


def pod(name: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns"}}


def unframe(chunks: list[bytes]) -> list[tuple[str, str]]:
    """(type, name) of every event in HTTP chunks "<hex size>\\r\\n<lines>\\r\\n"."""
    events = []
    for chunk in chunks:
        size, _, rest = chunk.partition(b"\r\n")
        assert rest.endswith(b"\r\n") and len(rest) == int(size, 16) + 2, chunk[:80]
        for line in rest[:-2].splitlines():
            event = json.loads(line)
            events.append((event["type"], event["object"]["metadata"]["name"]))
    return events


async def open_sink(transport: FakeTransport) -> tuple[CachedStore, Any, _Sink]:
    store = CachedStore()
    stream = await store.watch("/pods/", store.revision)
    sink = _Sink(stream, JsonWriter(), match_all, transport)  # type: ignore[arg-type]
    stream.attach(sink.deliver)
    return store, stream, sink


def test_changes_are_written_as_framed_chunks_once_the_writer_yields():
    async def scenario():
        transport = FakeTransport()
        store, stream, _ = await open_sink(transport)
        await store.create("/pods/a", pod("a"))
        await asyncio.sleep(0)  # the hand-over runs once the writer yields
        assert unframe(transport.written) == [("ADDED", "a")]
        await store.guaranteed_update("/pods/a", lambda o: {**o, "spec": {"x": 1}})
        await store.delete("/pods/a")  # two writes before a yield: one chunk
        await asyncio.sleep(0)
        assert len(transport.written) == 2
        assert unframe(transport.written) == [("ADDED", "a"), ("MODIFIED", "a"),
                                              ("DELETED", "a")]
        assert stream.ready(10) == []
    asyncio.run(scenario())


def test_a_full_buffer_refuses_and_the_events_wait_in_order_for_the_task():
    async def scenario():
        transport = FakeTransport(high=1000)
        store, stream, _ = await open_sink(transport)
        await store.create("/pods/a", pod("a"))
        await asyncio.sleep(0)
        transport.buffered = 1001  # the client stopped reading
        await store.create("/pods/b", pod("b"))
        await asyncio.sleep(0)
        await store.create("/pods/c", pod("c"))  # detached by the refusal: only queued
        await asyncio.sleep(0)
        assert unframe(transport.written) == [("ADDED", "a")]
        await asyncio.wait_for(stream.wait(), 1)  # the task is woken
        assert [e.obj["metadata"]["name"] for e in stream.ready(10)] == ["b", "c"]
    asyncio.run(scenario())


def test_a_closing_connection_refuses_and_a_failing_one_ends_the_stream():
    async def scenario():
        for breaks in ("closing", "fail"):
            transport = FakeTransport()
            store, stream, _ = await open_sink(transport)
            setattr(transport, breaks, True)
            created = await store.create("/pods/a", pod("a"))  # the write itself succeeds
            assert created["metadata"]["name"] == "a"
            await asyncio.wait_for(stream.wait(), 1)
            assert transport.written == []
            if breaks == "closing":  # left queued for the task, which meets the closed socket
                assert [e.obj["metadata"]["name"] for e in stream.ready(10)] == ["a"]
            else:
                assert stream.closed
    asyncio.run(scenario())
