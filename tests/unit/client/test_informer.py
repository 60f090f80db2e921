"""Informer against a real in-process API server: initial sync, live events in order, re-list
after 410 with synthesised differences, reconnect after a server restart, handler failures,
stop(), resync, selectors and back-off."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, AsyncIterator

import pytest

from builders import make_pod
from client_testlib import eventually
from podling.client import (ADDED, DELETED, MODIFIED, SYNC, ApiClient, ApiConnectionError,
                            Backoff, BackoffPolicy, ClientConfig, Informer, InformerOptions)

Obj = dict[str, Any]
FAST = InformerOptions(backoff=BackoffPolicy(initial=0.01, maximum=0.05), min_clean_watch=0.0)


class Recorder:
    """A handler that records (type, name, rv, old rv) for every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str | None]] = []

    async def __call__(self, type_: str, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        old_rv = old["metadata"]["resourceVersion"] if old is not None else None
        self.events.append((type_, meta["name"], meta["resourceVersion"], old_rv))

    def names(self, *types: str) -> list[tuple[str, str]]:
        return [(t, n) for t, n, _, _ in self.events if not types or t in types]


class GatedClient:
    """The real client, with a gate on watch: closing the gate ends the current stream at its
    next event (bookmarks arrive every 0.2 s), and new watches wait until it opens again."""

    def __init__(self, real: ApiClient) -> None:
        self.real = real
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.lists = 0
        self.watch_versions: list[str] = []

    async def list(self, *args: Any, **kwargs: Any) -> tuple[list[Obj], str]:
        self.lists += 1
        return await self.real.list(*args, **kwargs)

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple[str, Obj]]:
        self.watch_versions.append(kwargs.get("resource_version", ""))
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        async for item in self.real.watch(*args, **kwargs):
            if not self.gate.is_set():
                return
            yield item


@pytest.fixture
async def informers() -> AsyncIterator[list[Informer]]:
    """Informers to stop at the end even when a test fails half-way."""
    created: list[Informer] = []
    yield created
    for informer in created:
        await informer.stop()


async def _started(informers: list[Informer], informer: Informer) -> Informer:
    informers.append(informer)
    informer.start()
    assert await informer.wait_synced(5)
    return informer


async def test_initial_sync_fills_the_store_and_reports_added(client, informers) -> None:
    for name in ("a", "b"):
        await client.create("pods", make_pod(name).bare().build())
    informer = Informer(client, "pods", namespace="default", resync_period=None, options=FAST)
    recorder = Recorder()
    informer.add_handler(recorder)
    assert not informer.has_synced
    await _started(informers, informer)
    assert informer.has_synced
    assert sorted(recorder.names()) == [(ADDED, "a"), (ADDED, "b")]
    assert informer.get("default", "a")["metadata"]["name"] == "a"
    assert informer.get("default", "zzz") is None
    assert sorted(p["metadata"]["name"] for p in informer.list()) == ["a", "b"]
    assert int(informer.resource_version) > 0


async def test_live_events_arrive_in_order_with_old_state(client, informers) -> None:
    informer = Informer(client, "pods", resync_period=None, options=FAST)
    recorder = Recorder()
    informer.add_handler(recorder)
    await _started(informers, informer)
    created = await client.create("pods", make_pod("web").bare().build())
    patched = await client.patch("pods", "web", {"metadata": {"labels": {"x": "1"}}})
    await client.create("pods", make_pod("other").bare().build())
    await client.delete("pods", "web")
    await eventually(lambda: len(recorder.events) == 4)
    rv_created = created["metadata"]["resourceVersion"]
    rv_patched = patched["metadata"]["resourceVersion"]
    assert recorder.events[0] == (ADDED, "web", rv_created, None)
    assert recorder.events[1] == (MODIFIED, "web", rv_patched, rv_created)
    assert recorder.events[2][:2] == (ADDED, "other")
    assert recorder.events[3][0:2] == (DELETED, "web") and recorder.events[3][3] == rv_patched
    assert informer.get("default", "web") is None
    assert informer.get("default", "other") is not None


async def test_relist_after_expired_synthesises_the_differences(start_server, informers, caplog
                                                                ) -> None:
    caplog.set_level(logging.INFO, logger="podling.client.informer")
    server = await start_server(history=5)
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        for name in ("gone", "same", "changed", "replaced"):
            await api.create("pods", make_pod(name).bare().build())
        gated = GatedClient(api)
        informer = Informer(gated, "pods", resync_period=None, options=FAST)
        recorder = Recorder()
        informer.add_handler(recorder)
        await _started(informers, informer)
        old_replaced = informer.get("default", "replaced")
        recorder.events.clear()

        gated.gate.clear()  # the current watch ends; the next one waits at the gate
        await asyncio.wait_for(gated.waiting.wait(), 5)
        stale_rv = gated.watch_versions[-1]
        await api.delete("pods", "gone")
        await api.patch("pods", "changed", {"metadata": {"labels": {"v": "2"}}})
        await api.delete("pods", "replaced")
        await api.create("pods", make_pod("replaced").bare().build())
        for i in range(6):  # push the informer's version out of the server's history
            await api.create("pods", make_pod(f"new{i}").bare().build())
        gated.gate.set()

        await eventually(lambda: len(recorder.events) >= 10)
        assert gated.lists == 2  # the watch from the stale version got 410 → re-list
        assert "too old resource version" in caplog.text
        assert int(informer.resource_version) > int(stale_rv)
        names = recorder.names()
        assert sorted(names) == sorted([(DELETED, "gone"), (MODIFIED, "changed"),
                                        (DELETED, "replaced"), (ADDED, "replaced")]
                                       + [(ADDED, f"new{i}") for i in range(6)])
        assert names.index((DELETED, "replaced")) < names.index((ADDED, "replaced"))
        new_replaced = informer.get("default", "replaced")
        assert new_replaced["metadata"]["uid"] != old_replaced["metadata"]["uid"]
        assert informer.get("default", "gone") is None
        assert informer.get("default", "same") is not None

        recorder.events.clear()  # and it keeps watching after the re-list
        await api.create("pods", make_pod("after").bare().build())
        await eventually(lambda: recorder.names() == [(ADDED, "after")])


async def test_reconnects_after_the_server_restarts(start_server, tmp_path, informers
                                                    ) -> None:
    data_dir = str(tmp_path / "durable")
    server = await start_server(datastore="sqlite", data_dir=data_dir)
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path)
    async with ApiClient(config) as api:
        await api.create("pods", make_pod("before").bare().build())
        informer = Informer(api, "pods", resync_period=None, options=FAST)
        recorder = Recorder()
        informer.add_handler(recorder)
        await _started(informers, informer)
        await server.stop()
        await asyncio.sleep(0.2)  # the informer fails to re-list meanwhile and backs off
        server = await start_server(datastore="sqlite", data_dir=data_dir, port=server.port)
        await api.create("pods", make_pod("after").bare().build())
        await eventually(lambda: informer.get("default", "after") is not None)
    assert recorder.names() == [(ADDED, "before"), (ADDED, "after")]


async def test_failing_handlers_do_not_stop_delivery(client, informers) -> None:
    seen: list[str] = []

    def broken_sync(type_: str, obj: Obj, old: Obj | None) -> None:
        raise RuntimeError("sync handler bug")

    async def broken_async(type_: str, obj: Obj, old: Obj | None) -> None:
        raise KeyError("async handler bug")

    def good(type_: str, obj: Obj, old: Obj | None) -> None:
        seen.append(f"{type_} {obj['metadata']['name']}")

    informer = Informer(client, "pods", resync_period=None, options=FAST)
    for handler in (broken_sync, broken_async, good):
        informer.add_handler(handler)
    await _started(informers, informer)
    await client.create("pods", make_pod("one").bare().build())
    await client.create("pods", make_pod("two").bare().build())
    await eventually(lambda: seen == ["ADDED one", "ADDED two"])
    informer.remove_handler(good)
    await client.create("pods", make_pod("three").bare().build())
    await eventually(lambda: informer.get("default", "three") is not None)
    assert seen == ["ADDED one", "ADDED two"]


def _informer_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("informer-")]


async def test_stop_leaves_no_tasks_running(client) -> None:
    informer = Informer(client, "pods", resync_period=0.05, options=FAST)

    async def slow(type_: str, obj: Obj, old: Obj | None) -> None:
        await asyncio.sleep(10)  # a handler busy at stop() time is cancelled

    informer.add_handler(slow)
    await client.create("pods", make_pod("a").bare().build())
    informer.start()
    with pytest.raises(RuntimeError, match="already started"):
        informer.start()
    await asyncio.sleep(0.1)
    assert len(_informer_tasks()) == 2
    await asyncio.wait_for(informer.stop(), 5)
    assert _informer_tasks() == []
    await informer.stop()  # idempotent
    assert await informer.wait_synced(0.1) is False


async def test_resync_redelivers_every_object_as_sync(client, informers) -> None:
    for name in ("a", "b"):
        await client.create("pods", make_pod(name).bare().build())
    informer = Informer(client, "pods", resync_period=0.05, options=FAST)
    seen: list[tuple[str, str, bool]] = []

    def handler(type_: str, obj: Obj, old: Obj | None) -> None:
        seen.append((type_, obj["metadata"]["name"], old is obj))

    informer.add_handler(handler)
    await _started(informers, informer)
    await eventually(lambda: len([s for s in seen if s[0] == SYNC]) >= 4)
    syncs = [s for s in seen if s[0] == SYNC]
    assert {name for _, name, _ in syncs} == {"a", "b"}
    assert all(same for _, _, same in syncs)  # same object, same resourceVersion


async def test_selectors_limit_the_store(client, informers) -> None:
    await client.create("pods", make_pod("web").labels(app="web").bare().build())
    await client.create("pods", make_pod("db").labels(app="db").bare().build())
    informer = Informer(client, "pods", namespace="default", label_selector="app=web",
                        resync_period=None, options=FAST)
    recorder = Recorder()
    informer.add_handler(recorder)
    await _started(informers, informer)
    assert [p["metadata"]["name"] for p in informer.list()] == ["web"]
    await client.patch("pods", "web", {"metadata": {"labels": {"app": "other"}}})
    await client.patch("pods", "db", {"metadata": {"labels": {"app": "web"}}})
    await eventually(lambda: len(recorder.events) == 3)
    assert recorder.names() == [(ADDED, "web"), (DELETED, "web"), (ADDED, "db")]
    assert [p["metadata"]["name"] for p in informer.list()] == ["db"]


class FailingClient:
    """Every list fails: the informer must back off, not spin."""

    def __init__(self) -> None:
        self.calls = 0

    async def list(self, *args: Any, **kwargs: Any) -> tuple[list[Obj], str]:
        self.calls += 1
        raise ApiConnectionError("refused")

    def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple[str, Obj]]:
        raise AssertionError("never reached")


async def test_errors_back_off_instead_of_spinning() -> None:
    failing = FailingClient()
    options = InformerOptions(backoff=BackoffPolicy(initial=0.02, factor=2, maximum=0.1))
    informer = Informer(failing, "pods", resync_period=None, options=options)
    informer.start()
    try:
        assert await informer.wait_synced(0.5) is False
        assert 2 <= failing.calls <= 9  # 0.02 + 0.04 + 0.08 + 0.1 + 0.1 …, with jitter
    finally:
        await informer.stop()


def test_backoff_grows_is_bounded_and_resets() -> None:
    backoff = Backoff(BackoffPolicy(initial=1, factor=2, maximum=10, jitter=0.5),
                      rng=random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    assert 1 <= delays[0] <= 1.5 and 2 <= delays[1] <= 3 and 4 <= delays[2] <= 6
    assert all(d <= 10 for d in delays) and delays[-1] == pytest.approx(10, rel=0.5)
    assert backoff.failures == 8
    backoff.reset()
    assert 1 <= backoff.next() <= 1.5


async def test_transform_applies_to_listed_and_watched_objects(client, informers) -> None:
    await client.create("pods", make_pod("listed").labels(app="x").bare().build())

    def transform(obj: Obj) -> Obj:
        meta = obj["metadata"]
        return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid",
                                                 "resourceVersion")},
                "transformed": True}

    informer = Informer(client, "pods", namespace="default", resync_period=None,
                        options=FAST, transform=transform)
    seen: list[tuple[str, Obj, Obj | None]] = []
    informer.add_handler(lambda t, obj, old: seen.append((t, obj, old)))
    await _started(informers, informer)
    await client.create("pods", make_pod("watched").labels(app="x").bare().build())
    await client.patch("pods", "watched", {"metadata": {"labels": {"app": "y"}}})
    await eventually(lambda: len(seen) == 3)
    assert [(t, o["metadata"]["name"]) for t, o, _ in seen] == \
        [(ADDED, "listed"), (ADDED, "watched"), (MODIFIED, "watched")]
    assert all(o["transformed"] and "labels" not in o["metadata"] for _, o, _ in seen)
    assert seen[2][2] is seen[1][1]  # old: the transformed object stored before
    assert informer.get("default", "watched") is seen[2][1]


async def test_a_compact_store_hands_out_equal_fresh_copies(client, informers) -> None:
    """compact=True: the same events and contents, but every read is a decoded copy (never
    the delivered object itself), so a reader cannot change the store."""
    await client.create("pods", make_pod("listed").bare().build())
    informer = Informer(client, "pods", namespace="default", resync_period=None,
                        options=FAST, compact=True)
    seen: list[tuple[str, Obj, Obj | None]] = []
    informer.add_handler(lambda t, obj, old: seen.append((t, obj, old)))
    await _started(informers, informer)
    await client.create("pods", make_pod("watched").bare().build())
    await client.patch("pods", "watched", {"metadata": {"labels": {"app": "y"}}})
    await client.delete("pods", "listed")
    await eventually(lambda: len(seen) == 4)
    assert [(t, o["metadata"]["name"]) for t, o, _ in seen] == \
        [(ADDED, "listed"), (ADDED, "watched"), (MODIFIED, "watched"), (DELETED, "listed")]
    added, modified, deleted = seen[1], seen[2], seen[3]
    assert modified[2] == added[1] and modified[2] is not added[1]  # old: a decoded copy
    assert deleted[2] == seen[0][1]
    current = informer.get("default", "watched")
    assert current == modified[1] and current is not modified[1]
    current["metadata"]["labels"]["app"] = "changed by a reader"
    assert informer.get("default", "watched")["metadata"]["labels"] == {"app": "y"}
    assert [p["metadata"]["name"] for p in informer.list()] == ["watched"]
    assert informer.get("default", "listed") is None


async def test_a_lost_connection_resumes_the_watch_without_a_relist(start_server, tmp_path,
                                                                    informers) -> None:
    data_dir = str(tmp_path / "durable")
    server = await start_server(datastore="sqlite", data_dir=data_dir)
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path)
    async with ApiClient(config) as api:
        gated = GatedClient(api)
        await api.create("pods", make_pod("before").bare().build())
        informer = Informer(gated, "pods", resync_period=None, options=FAST)  # type: ignore[arg-type]
        recorder = Recorder()
        informer.add_handler(recorder)
        await _started(informers, informer)
        gated.gate.clear()  # the stream ends at its next bookmark; the next watch waits
        await eventually(gated.waiting.is_set)
        await server.stop()  # as if killed: the next watches are refused, no error answers
        attempts = len(gated.watch_versions)
        gated.gate.set()
        await eventually(lambda: len(gated.watch_versions) >= attempts + 2)
        last = informer.resource_version
        server = await start_server(datastore="sqlite", data_dir=data_dir, port=server.port)
        await api.create("pods", make_pod("after").bare().build())
        await eventually(lambda: informer.get("default", "after") is not None)
    assert gated.lists == 1  # no re-list: the watch resumed from where it was
    assert last and set(gated.watch_versions[attempts - 1:attempts + 2]) == {last}
    assert recorder.names() == [(ADDED, "before"), (ADDED, "after")]
