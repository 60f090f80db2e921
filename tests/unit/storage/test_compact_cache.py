"""The cache's compact form: objects kept as encoded bytes, encoded once per version, the
event history bounded by bytes as well as by count."""

from __future__ import annotations

import copy
import json

import pytest

from podling.storage import cache
from podling.storage.compact import Stored, decode, freeze
from podling.storage.interface import Compacted
from podling.storage.memory import MemoryStore
from podling.util.jsoncopy import clone


def obj(name: str, payload: str = "") -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": {"data": payload}}


async def test_a_write_is_encoded_once_and_every_reader_gets_those_bytes() -> None:
    store = MemoryStore()
    stream = await store.watch("/p/", 0)
    created = await store.create("/p/a", obj("a"))
    event = await stream.__anext__()
    assert isinstance(created, Stored)
    assert event.obj is created  # the watcher gets the very object (and bytes) written
    assert json.loads(created.encoded) == created
    got = await store.get("/p/a")
    assert got.encoded is created.encoded  # type: ignore[attr-defined]
    encoded, rev = await store.list_encoded("/p/")
    assert encoded == [created.encoded] and rev == store.revision
    stream.close()


async def test_objects_not_recently_used_are_decoded_afresh_from_their_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "HOT_OBJECTS", 2)
    store = MemoryStore()
    first = await store.create("/p/a", obj("a"))
    for name in "bcd":
        await store.create(f"/p/{name}", obj(name))
    again = await store.get("/p/a")
    assert again == first and again is not first  # decoded from the kept bytes
    items, _ = await store.list("/p/")
    assert [o["metadata"]["name"] for o in items] == ["a", "b", "c", "d"]


async def test_update_hands_a_private_plain_copy_and_keeps_the_stored_one() -> None:
    store = MemoryStore()
    created = await store.create("/p/a", obj("a", "x"))
    seen: list[dict] = []

    def change(current: dict) -> dict:
        seen.append(current)
        current["spec"]["data"] = "y"
        return current

    updated = await store.guaranteed_update("/p/a", change)
    assert type(seen[0]) is dict
    assert created["spec"]["data"] == "x" and updated["spec"]["data"] == "y"
    assert json.loads(updated.encoded)["spec"]["data"] == "y"  # type: ignore[attr-defined]


async def test_history_is_bounded_by_bytes_and_older_watches_get_compacted() -> None:
    big = "z" * 1000
    store = MemoryStore(history=1000, history_bytes=5000)
    for i in range(20):
        await store.create(f"/p/{i:02d}", obj(f"{i:02d}", big))
    assert store.history_bytes <= 5000
    assert store.compacted_revision > 0
    with pytest.raises(Compacted):
        await store.watch("/p/", 1)
    # the retained tail replays in order, decoded from its bytes
    stream = await store.watch("/p/", store.compacted_revision)
    names = []
    while True:
        batch = stream.ready(100)
        if not batch:
            break
        names += [e.obj["metadata"]["name"] for e in batch]
    assert names == [f"{i:02d}" for i in range(20)][-len(names):]
    assert len(names) == store.revision - store.compacted_revision
    stream.close()


async def test_the_newest_event_is_kept_even_when_it_alone_exceeds_the_byte_bound() -> None:
    store = MemoryStore(history=10, history_bytes=10)
    await store.create("/p/a", obj("a", "a lot more than ten bytes"))
    stream = await store.watch("/p/", 0)
    assert [e.obj["metadata"]["name"] for e in stream.ready(10)] == ["a"]
    stream.close()


def test_copies_of_a_stored_object_are_plain_dicts_without_its_bytes() -> None:
    stored = freeze(obj("a", "x"))
    for made in (copy.copy(stored), copy.deepcopy(stored), clone(stored), dict(stored)):
        assert type(made) is dict and made == stored
    deep = clone(stored)
    deep["spec"]["data"] = "changed"
    assert stored["spec"]["data"] == "x"
    assert decode(stored.encoded) == stored


async def test_a_reopened_sqlite_store_loads_only_the_history_within_its_byte_bound(
        tmp_path) -> None:
    from podling.storage.sqlite import SqliteStore
    path = str(tmp_path / "s.db")
    store = await SqliteStore.open(path, history_bytes=3500)
    for i in range(10):
        await store.create(f"/p/{i}", obj(str(i), "z" * 1000))
    revision = store.revision
    await store.close()

    store = await SqliteStore.open(path, history_bytes=3500)
    try:
        assert store.revision == revision
        assert 0 < store.history_bytes <= 3500
        oldest = store.compacted_revision
        assert 0 < oldest < revision
        with pytest.raises(Compacted):
            await store.watch("/p/", oldest - 1)
        stream = await store.watch("/p/", oldest)
        assert [e.rev for e in stream.ready(100)] == list(range(oldest + 1, revision + 1))
        stream.close()
        assert len((await store.list_encoded("/p/"))[0]) == 10  # every object still there
    finally:
        await store.close()
