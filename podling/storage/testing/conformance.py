"""The storage conformance suite: every Storage backend must pass every check here.

Each check is a plain ``async def check_x(factory)``; ``factory(history=N)`` must return a
new, empty, open store that retains at least the newest N events for watches (and not many
more than N, so that old revisions become Compacted). The checks close the stores they open.
A backend's test module runs them all, e.g.::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_conformance(check, factory):
        await check(factory)

Nothing here imports pytest, so any runner can drive the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from ..interface import (Compacted, KeyExists, KeyNotFound, Obj, PreconditionFailed,
                         Preconditions, Storage, WatchEvent, WatchStream)


class StoreFactory(Protocol):
    """Opens a fresh empty store retaining ``history`` events."""

    def __call__(self, *, history: int) -> Awaitable[Storage]: ...


TIMEOUT = 5.0
SMALL_HISTORY = 5
Check = Callable[[StoreFactory], Awaitable[None]]


# -- helpers -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def opened(factory: StoreFactory, *, history: int = 1000) -> AsyncIterator[Storage]:
    """A fresh store, closed on exit."""
    store = await factory(history=history)
    try:
        yield store
    finally:
        await store.close()


def obj(name: str, uid: str | None = None, **spec: Any) -> Obj:
    """A small object with metadata.name/uid and a ``spec``."""
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}"}, "spec": dict(spec)}


def rv(o: Obj) -> int:
    return int(o["metadata"]["resourceVersion"])


async def take(stream: WatchStream, n: int, timeout: float = TIMEOUT) -> list[WatchEvent]:
    """The next ``n`` events of ``stream``; fails if they do not arrive within ``timeout``."""
    async def collect() -> list[WatchEvent]:
        events = []
        async for event in stream:
            events.append(event)
            if len(events) == n:
                break
        return events

    events = await asyncio.wait_for(collect(), timeout)
    assert len(events) == n, f"stream ended after {len(events)} of {n} events"
    return events


async def assert_nothing_pending(stream: WatchStream) -> None:
    """No event is ready on ``stream`` after the loop has had a chance to deliver one."""
    try:
        event = await asyncio.wait_for(stream.__anext__(), 0.05)
    except (asyncio.TimeoutError, StopAsyncIteration):
        return
    raise AssertionError(f"unexpected event {event}")


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``cond`` until true; fail with ``what`` after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def expect(exc: type[BaseException], aw: Awaitable[Any]) -> BaseException:
    try:
        await aw
    except exc as err:
        return err
    raise AssertionError(f"{exc.__name__} not raised")


# -- create / get / list ---------------------------------------------------------------------


async def check_create_get(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        before = s.revision
        given = obj("a", image="x")
        created = await s.create("/pods/ns/a", given)
        assert rv(created) == s.revision > before
        assert "resourceVersion" not in given["metadata"], "create must not mutate its input"
        assert created["spec"] == {"image": "x"} and created["metadata"]["name"] == "a"
        assert await s.get("/pods/ns/a") == created
        assert await s.get_cached("/pods/ns/a") == created  # this store's own write


async def check_list_prefix_and_order(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        keys = ["/pods/b/2", "/pods/a/3", "/podsx/a/1", "/pods/a/1", "/pods/b/1", "/pods/a/2"]
        for key in keys:
            await s.create(key, obj(key))
        items, rev = await s.list("/pods/a/")
        assert [i["metadata"]["name"] for i in items] == ["/pods/a/1", "/pods/a/2", "/pods/a/3"]
        assert rev == s.revision and all(rv(i) <= rev for i in items)
        items, _ = await s.list("/pods/")
        assert [i["metadata"]["name"] for i in items] == sorted(k for k in keys
                                                                 if k.startswith("/pods/"))
        items, _ = await s.list("")
        assert len(items) == len(keys)
        assert (await s.list("/nothing/"))[0] == []


async def check_create_existing_raises(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        first = await s.create("/k", obj("a", v=1))
        before = s.revision
        await expect(KeyExists, s.create("/k", obj("a", v=2)))
        assert s.revision == before and await s.get("/k") == first


async def check_missing_key_raises(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        await expect(KeyNotFound, s.get("/missing"))
        await expect(KeyNotFound, s.get_cached("/missing"))
        await expect(KeyNotFound, s.delete("/missing"))
        await expect(KeyNotFound, s.guaranteed_update("/missing", lambda cur: cur))


async def check_revisions_monotonic(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        seen = [s.revision]
        for i in range(5):
            seen.append(rv(await s.create(f"/k/{i}", obj(str(i)))))
            seen.append(rv(await s.guaranteed_update(f"/k/{i}", lambda c: {**c, "n": 1})))
            assert seen[-1] == s.revision
        seen.append(rv(await s.delete("/k/0")))
        assert seen[-1] == s.revision
        assert all(a < b for a, b in zip(seen, seen[1:])), f"not increasing: {seen}"


async def check_delete_returns_last_state(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        created = await s.create("/k", obj("a", v=1))
        deleted = await s.delete("/k")
        assert rv(deleted) == s.revision > rv(created)
        assert deleted["spec"] == {"v": 1} and deleted["metadata"]["uid"] == "uid-a"
        await expect(KeyNotFound, s.get("/k"))
        assert (await s.list("/"))[0] == []
        await s.create("/k", obj("a", v=2))  # the key can be reused


async def check_preconditions(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        cur = await s.create("/k", obj("a", uid="u1"))
        before = s.revision
        for bad in (Preconditions(uid="u2"), Preconditions(resource_version=str(rv(cur) + 7))):
            await expect(PreconditionFailed, s.delete("/k", bad))
            await expect(PreconditionFailed,
                         s.guaranteed_update("/k", lambda c: {**c, "x": 1}, bad))
        assert s.revision == before and await s.get("/k") == cur
        good = Preconditions(uid="u1", resource_version=cur["metadata"]["resourceVersion"])
        updated = await s.guaranteed_update("/k", lambda c: {**c, "x": 1}, good)
        await expect(PreconditionFailed, s.delete("/k", good))  # rv moved on
        await s.delete("/k", Preconditions(uid="u1",
                                           resource_version=str(rv(updated))))
        await expect(KeyNotFound, s.get("/k"))


# -- guaranteed_update -----------------------------------------------------------------------


async def check_update_applies(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        await s.create("/k", obj("a", v=1))

        def bump(cur: Obj) -> Obj:
            cur["spec"]["v"] += 1
            return cur

        updated = await s.guaranteed_update("/k", bump)
        assert updated["spec"]["v"] == 2 and rv(updated) == s.revision
        assert await s.get("/k") == updated


async def check_update_noop_writes_nothing(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        cur = await s.create("/k", obj("a", v=1))
        before = s.revision
        assert await s.guaranteed_update("/k", lambda c: None) == cur
        assert await s.guaranteed_update("/k", lambda c: c) == cur

        def only_rv(c: Obj) -> Obj:
            c["metadata"]["resourceVersion"] = "12345"
            return c

        assert await s.guaranteed_update("/k", only_rv) == cur
        assert s.revision == before and await s.get("/k") == cur


async def check_update_gets_private_copy(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        cur = await s.create("/k", obj("a", items=[1]))
        snapshot = {"spec": {"items": [1]}, "metadata": dict(cur["metadata"])}

        class Abort(Exception):
            pass

        def mutate_then_fail(c: Obj) -> Obj:
            c["spec"]["items"].append(2)
            c["metadata"]["name"] = "changed"
            raise Abort()

        await expect(Abort, s.guaranteed_update("/k", mutate_then_fail))
        got = await s.get("/k")
        assert got["spec"] == snapshot["spec"] and got["metadata"] == snapshot["metadata"]
        assert cur["spec"]["items"] == [1], "try_update must not see the stored object"
        assert s.revision == rv(cur)


async def check_concurrent_creates_one_wins(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        results = await asyncio.gather(*(s.create("/k", obj(f"n{i}")) for i in range(20)),
                                       return_exceptions=True)
        wins = [r for r in results if isinstance(r, dict)]
        assert len(wins) == 1, results
        assert all(isinstance(r, KeyExists) for r in results if not isinstance(r, dict))
        assert await s.get("/k") == wins[0]


async def check_concurrent_updates_not_lost(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        await s.create("/k", obj("a", n=0))
        base = s.revision

        def incr(c: Obj) -> Obj:
            c["spec"]["n"] += 1
            return c

        await asyncio.gather(*(s.guaranteed_update("/k", incr) for _ in range(30)))
        assert (await s.get("/k"))["spec"]["n"] == 30
        assert s.revision >= base + 30


# -- watch -----------------------------------------------------------------------------------


async def _write_mixed(s: Storage) -> list[tuple[str, str]]:
    """Writes under /w/ and /other/; the expected /w/ events as (type, key)."""
    await s.create("/w/a", obj("a", v=1))
    await s.create("/other/x", obj("x"))
    await s.create("/w/b", obj("b"))
    await s.guaranteed_update("/w/a", lambda c: {**c, "spec": {"v": 2}})
    await s.guaranteed_update("/other/x", lambda c: {**c, "spec": {"v": 2}})
    await s.delete("/w/b")
    await s.delete("/other/x")
    return [("ADDED", "/w/a"), ("ADDED", "/w/b"), ("MODIFIED", "/w/a"), ("DELETED", "/w/b")]


def _assert_events(events: list[WatchEvent], after: int, expected: list[tuple[str, str]]) -> None:
    assert [(e.type, e.key) for e in events] == expected
    revs = [e.rev for e in events]
    assert all(a < b for a, b in zip([after] + revs, revs)), f"not ordered after {after}: {revs}"
    for e in events:
        assert rv(e.obj) == e.rev, "obj must carry the event's revision"
        assert (e.prev is None) == (e.type == "ADDED"), f"prev wrong for {e}"
        if e.prev is not None:
            assert rv(e.prev) < e.rev and e.prev["metadata"]["name"] == e.obj["metadata"]["name"]


async def check_watch_replays_from_revision(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        await s.create("/w/before", obj("before"))
        start = s.revision
        expected = await _write_mixed(s)
        stream = await s.watch("/w/", start)
        events = await take(stream, len(expected))
        _assert_events(events, start, expected)
        deleted = events[-1]
        assert deleted.prev is not None and deleted.obj["spec"] == deleted.prev["spec"]
        assert events[2].prev == events[0].obj
        await assert_nothing_pending(stream)
        stream.close()


async def check_watch_replay_then_live_without_gaps(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        start = s.revision
        for i in range(10):
            await s.create(f"/w/{i:02}", obj(str(i)))
        stream = await s.watch("/w/", start)
        writer = asyncio.create_task(_create_many(s, range(10, 40)))
        events = await take(stream, 40)
        await writer
        assert [e.key for e in events] == [f"/w/{i:02}" for i in range(40)]
        assert [e.rev for e in events] == sorted({e.rev for e in events})
        stream.close()


async def _create_many(s: Storage, numbers: range) -> None:
    for i in numbers:
        await s.create(f"/w/{i:02}", obj(str(i)))


async def check_watch_from_current_sees_only_later(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        await _write_mixed(s)
        await s.create("/w/last", obj("last"))
        stream = await s.watch("/w/", s.revision)
        await assert_nothing_pending(stream)
        created = await s.create("/w/new", obj("new"))
        [event] = await take(stream, 1)
        assert (event.type, event.key, event.rev) == ("ADDED", "/w/new", rv(created))
        stream.close()


async def check_watch_compacted(factory: StoreFactory) -> None:
    async with opened(factory, history=SMALL_HISTORY) as s:
        start = s.revision
        for i in range(4 * SMALL_HISTORY):
            await s.create(f"/c/{i:02}", obj(str(i)))
        err = await expect(Compacted, s.watch("/c/", start))
        assert isinstance(err, Compacted) and err.requested == start
        oldest_ok = s.revision - SMALL_HISTORY
        stream = await s.watch("/c/", oldest_ok)
        events = await take(stream, SMALL_HISTORY)
        assert [e.rev for e in events] == list(range(oldest_ok + 1, s.revision + 1))
        stream.close()
        live = await s.watch("/c/", s.revision)  # the current revision is always watchable
        live.close()


async def check_bookmark_revision(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        await s.create("/a/0", obj("0"))
        start = s.revision
        stream = await s.watch("/a/", start)
        assert start <= stream.bookmark_revision() <= s.revision
        mine = await s.create("/a/1", obj("1"))
        assert stream.bookmark_revision() < rv(mine), "bookmark past an unconsumed event"
        await take(stream, 1)
        assert stream.bookmark_revision() >= rv(mine)
        other = await s.create("/b/1", obj("b"))
        await wait_until(lambda: stream.bookmark_revision() >= rv(other),
                         "bookmark to pass a write outside the prefix")
        stream.close()


async def check_stream_close_ends_iteration(factory: StoreFactory) -> None:
    async with opened(factory) as s:
        stream = await s.watch("/", s.revision)
        reader = asyncio.create_task(take(stream, 1))
        await asyncio.sleep(0)
        stream.close()
        stream.close()  # idempotent
        err = await expect(AssertionError, reader)
        assert "stream ended" in str(err)


async def check_attached_consumer_takes_events_without_waking_a_task(factory: StoreFactory) -> None:
    """An attached consumer is handed the events queued by a write once the writer yields
    (one event-loop turn); one that refuses is detached, and the events wait in order for
    wait() and ready(); a detached stream is woken again as before."""
    async with opened(factory) as s:
        stream = await s.watch("/a/", s.revision)
        taken: list[int] = []
        refuse = False

        def deliver() -> bool:
            if refuse:
                return False
            taken.extend(e.rev for e in stream.ready(10))
            return True
        stream.attach(deliver)
        first = await s.create("/a/1", obj("1"))
        await s.create("/b/1", obj("b"))  # outside the prefix: not handed over
        await asyncio.sleep(0)  # one turn of the loop: the hand-over runs before this resumes
        assert taken == [rv(first)]
        refuse = True
        second = await s.create("/a/2", obj("2"))
        await asyncio.sleep(0)
        third = await s.create("/a/3", obj("3"))  # detached by the refusal: only queued
        refuse = False
        await asyncio.sleep(0)
        assert taken == [rv(first)]
        await asyncio.wait_for(stream.wait(), TIMEOUT)
        assert [e.rev for e in stream.ready(10)] == [rv(second), rv(third)]
        fourth = await s.create("/a/4", obj("4"))
        assert [e.rev for e in await take(stream, 1)] == [rv(fourth)]
        assert taken == [rv(first)] and not stream.closed
        stream.close()
        assert stream.closed
        await asyncio.wait_for(stream.wait(), TIMEOUT)  # returns at once when closed


async def check_close_ends_open_streams(factory: StoreFactory) -> None:
    s = await factory(history=100)
    streams = [await s.watch(prefix, s.revision) for prefix in ("/", "/a/", "/b/")]
    readers = [asyncio.create_task(_drain(stream)) for stream in streams]
    await s.create("/a/x", obj("x"))
    await s.close()
    counts = await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT)
    assert counts == [1, 1, 0]
    await s.close()  # idempotent


async def _drain(stream: WatchStream) -> int:
    n = 0
    async for _ in stream:
        n += 1
    return n


CHECKS: list[Check] = [
    check_create_get,
    check_list_prefix_and_order,
    check_create_existing_raises,
    check_missing_key_raises,
    check_revisions_monotonic,
    check_delete_returns_last_state,
    check_preconditions,
    check_update_applies,
    check_update_noop_writes_nothing,
    check_update_gets_private_copy,
    check_concurrent_creates_one_wins,
    check_concurrent_updates_not_lost,
    check_watch_replays_from_revision,
    check_watch_replay_then_live_without_gaps,
    check_watch_from_current_sees_only_later,
    check_watch_compacted,
    check_bookmark_revision,
    check_stream_close_ends_iteration,
    check_attached_consumer_takes_events_without_waking_a_task,
    check_close_ends_open_streams,
]
"""Every check, in a stable order; run each against a fresh factory."""
