"""Table tests of PodWorkers with a scripted ``sync``: coalescing, concurrency, sticky kills,
requeues, the end of a worker, stop() and failed syncs (docs/architecture.md §4).

Every wait is on an asyncio event with a timeout; no test sleeps or measures time. The
resync period is an hour unless a case is about it, so a sync that is not caused by the
case itself cannot happen while the test runs."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable

import pytest

from podling.agent.pod.pod_workers import RETRY_SECONDS, PodWorkers
from podling.agent.pod.sync_result import PodSyncResult

TIMEOUT = 5.0
HOUR = 3600.0
Outcome = PodSyncResult | BaseException


def pod(uid: str = "u1", version: int = 1, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": f"p-{uid}", "resourceVersion": str(version)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


class ScriptedSync:
    """A ``sync`` that records every call as (uid, version, terminating), counts how many
    run at once (per uid and in all), blocks the uids in ``hold`` until :meth:`release`,
    and returns (or raises) the next outcome scripted for the uid (default: not done)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []
        self.returned = 0
        self.cancelled: list[str] = []
        self.active: collections.Counter[str] = collections.Counter()
        self.max_active: collections.Counter[str] = collections.Counter()
        self.max_total = 0
        self.script: dict[str, list[Outcome]] = collections.defaultdict(list)
        self.permits: dict[str, asyncio.Semaphore] = {}
        self.changed = asyncio.Event()

    def hold(self, *uids: str) -> None:
        for uid in uids:
            self.permits[uid] = asyncio.Semaphore(0)

    def release(self, uid: str, n: int = 1) -> None:
        for _ in range(n):
            self.permits[uid].release()

    def then(self, uid: str, *outcomes: Outcome) -> None:
        self.script[uid].extend(outcomes)

    async def __call__(self, p: dict[str, Any], terminating: bool) -> PodSyncResult:
        uid = p["metadata"]["uid"]
        self.calls.append((uid, int(p["metadata"]["resourceVersion"]), terminating))
        self.active[uid] += 1
        self.max_active[uid] = max(self.max_active[uid], self.active[uid])
        self.max_total = max(self.max_total, sum(self.active.values()))
        self.changed.set()
        try:
            if uid in self.permits:
                await self.permits[uid].acquire()
            outcome = self.script[uid].pop(0) if self.script[uid] else PodSyncResult()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        except asyncio.CancelledError:
            self.cancelled.append(uid)
            raise
        finally:
            self.active[uid] -= 1
            self.returned += 1
            self.changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait (at most TIMEOUT) until ``predicate()`` holds; it is checked after every
        call and every return of a sync."""
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), TIMEOUT)

    async def calls_reach(self, n: int) -> None:
        await self.until(lambda: len(self.calls) >= n)

    def of(self, uid: str) -> list[tuple[int, bool]]:
        return [(v, t) for u, v, t in self.calls if u == uid]


def worker_task(uid: str) -> asyncio.Task[Any]:
    """The worker task of ``uid`` (PodWorkers names it ``pod-<uid>``)."""
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == f"pod-{uid}"]
    return task


@pytest.fixture
async def make():
    """A factory of (PodWorkers, ScriptedSync); every PodWorkers made is stopped after."""
    made: list[PodWorkers] = []

    def factory(*, resync: float = HOUR, jitter: Callable[[float], float] = lambda d: d
                ) -> tuple[PodWorkers, ScriptedSync]:
        sync = ScriptedSync()
        workers = PodWorkers(sync, resync_seconds=resync, jitter=jitter)
        made.append(workers)
        return workers, sync
    yield factory
    for workers in made:
        await workers.stop()


# -- coalescing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("during, then_synced", [
    ([2], [2]),  # one update while v1 syncs: synced next
    ([2, 3, 4], [4]),  # several: only the latest
    (["notify"], [1]),  # a runtime change: the same pod again, once
    (["notify", "notify"], [1]),
    ([2, "notify", 3], [3]),
], ids=["one-update", "three-updates", "notify", "two-notifies", "updates-and-notify"])
async def test_updates_during_a_sync_are_coalesced(make, during, then_synced) -> None:
    workers, sync = make()
    sync.hold("u1")
    workers.update(pod(version=1))
    await sync.calls_reach(1)
    for step in during:
        if step == "notify":
            workers.notify("u1")
        else:
            workers.update(pod(version=step))
    sync.release("u1", 10)
    await sync.calls_reach(2)
    await sync.until(lambda: sync.returned == 2)
    workers.update(pod(version=99))  # nothing else was queued: this one is next
    await sync.calls_reach(3)
    assert sync.of("u1") == [(1, False), *[(v, False) for v in then_synced], (99, False)]
    assert sync.max_active["u1"] == 1


async def test_an_update_after_a_sync_wakes_the_worker_at_once(make) -> None:
    workers, sync = make()
    workers.update(pod(version=1))
    await sync.until(lambda: sync.returned == 1)  # now waiting for the (hour-long) resync
    workers.update(pod(version=2))
    await sync.calls_reach(2)
    assert sync.of("u1") == [(1, False), (2, False)]


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("pods", [2, 5])
async def test_different_pods_sync_concurrently(make, pods) -> None:
    workers, sync = make()
    uids = [f"u{i}" for i in range(pods)]
    sync.hold(*uids)
    for uid in uids:
        workers.update(pod(uid))
    await sync.until(lambda: sum(sync.active.values()) == pods)  # all inside sync at once
    assert sync.max_total == pods
    assert all(sync.max_active[uid] == 1 for uid in uids)
    for uid in uids:
        sync.release(uid)
    await sync.until(lambda: sync.returned == pods)


async def test_a_blocked_pod_does_not_hold_up_another(make) -> None:
    workers, sync = make()
    sync.hold("slow")
    workers.update(pod("slow"))
    workers.update(pod("fast"))
    await sync.until(lambda: sync.of("fast") != [] and sync.active["fast"] == 0)
    workers.update(pod("fast", 2))
    await sync.until(lambda: len(sync.of("fast")) == 2)
    assert sync.active["slow"] == 1 and sync.of("slow") == [(1, False)]
    sync.release("slow")


# -- kills stick --------------------------------------------------------------------------------


@pytest.mark.parametrize("kill", ["deletionTimestamp", "removed"])
@pytest.mark.parametrize("while_syncing", [True, False])
async def test_a_kill_is_never_overwritten_by_a_later_update(make, kill,
                                                             while_syncing) -> None:
    workers, sync = make()
    sync.hold("u1")
    workers.update(pod(version=1))
    await sync.calls_reach(1)
    if not while_syncing:
        sync.release("u1")
        await sync.until(lambda: sync.returned == 1)
    if kill == "removed":
        workers.update(pod(version=2), removed=True)
    else:
        workers.update(pod(version=2, deleting=True))
    workers.update(pod(version=3))  # an ordinary update after the kill
    sync.release("u1", 10)
    await sync.calls_reach(2)
    assert sync.of("u1")[1] == (3, True)  # the latest pod, still terminating
    await sync.until(lambda: sync.returned == 2)
    workers.update(pod(version=4))
    await sync.calls_reach(3)
    assert sync.of("u1") == [(1, False), (3, True), (4, True)]


# -- requeue ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resync, requeue_after, jitter_to, jittered", [
    (HOUR, 0.01, None, []),  # a sooner requeue is exact, never jittered
    (0.01, None, None, [0.01]),  # no requeue: the resync period, through the jitter
    (HOUR, None, 0.01, [HOUR]),  # ... and the jitter's answer is the delay
    (0.01, HOUR, None, [0.01]),  # a requeue later than the resync: the resync wins
    (HOUR, 0.0, 0.01, [HOUR]),  # 0 is no requeue time
], ids=["requeue-exact", "resync-jittered", "jitter-decides", "resync-wins", "zero-requeue"])
async def test_the_result_schedules_the_next_sync(make, resync, requeue_after, jitter_to,
                                                  jittered) -> None:
    asked: list[float] = []

    def jitter(seconds: float) -> float:
        asked.append(seconds)
        return seconds if jitter_to is None else jitter_to
    workers, sync = make(resync=resync, jitter=jitter)
    sync.then("u1", PodSyncResult(requeue_after=requeue_after))
    sync.hold("u1")
    workers.update(pod())
    sync.release("u1")
    await sync.calls_reach(2)  # nothing but the scheduled wake-up can cause this one
    assert asked == jittered
    assert sync.of("u1") == [(1, False), (1, False)]
    sync.release("u1")


# -- the end of a worker ------------------------------------------------------------------------


async def test_a_done_result_ends_the_worker_and_it_is_forgotten(make) -> None:
    workers, sync = make()
    sync.then("u1", PodSyncResult(), PodSyncResult(done=True))
    workers.update(pod(version=1))
    await sync.until(lambda: sync.returned == 1)
    assert workers.known() == {"u1"}
    workers.update(pod(version=2, deleting=True))
    await asyncio.wait_for(worker_task("u1"), TIMEOUT)
    assert workers.known() == set()
    assert sync.of("u1") == [(1, False), (2, True)]
    workers.update(pod(version=3), removed=True)  # the DELETED event that follows
    assert workers.known() == set()  # no second termination of a finished pod
    assert sync.of("u1") == [(1, False), (2, True)]


async def test_an_update_without_wake_is_kept_for_the_next_sync(make) -> None:
    workers, sync = make()
    sync.then("u1", PodSyncResult(), PodSyncResult())
    workers.update(pod(version=1))
    await sync.until(lambda: sync.returned == 1)
    workers.update(pod(version=2), wake=False)  # our own status write coming back
    assert not workers._workers["u1"].wake.is_set()  # the worker sleeps on
    workers.notify("u1")  # its next sync (here: an exit) reads the kept object
    await sync.calls_reach(2)
    assert sync.of("u1") == [(1, False), (2, False)]


async def test_a_deletion_wakes_even_without_wake(make) -> None:
    workers, sync = make()
    sync.then("u1", PodSyncResult(), PodSyncResult(done=True))
    workers.update(pod(version=1))
    await sync.until(lambda: sync.returned == 1)
    workers.update(pod(version=2, deleting=True), wake=False)
    await sync.calls_reach(2)
    assert sync.of("u1") == [(1, False), (2, True)]


async def test_a_done_pod_does_not_stop_the_others(make) -> None:
    workers, sync = make()
    sync.then("u1", PodSyncResult(done=True))
    workers.update(pod("u1", deleting=True))
    workers.update(pod("u2"))
    await asyncio.wait_for(worker_task("u1"), TIMEOUT)
    await sync.until(lambda: sync.returned == 2)
    assert workers.known() == {"u2"}
    workers.update(pod("u2", 2))
    await sync.until(lambda: len(sync.of("u2")) == 2)


# -- stop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["in sync", "waiting for the resync", "in the retry delay"])
async def test_stop_cancels_every_worker_cleanly(make, where) -> None:
    workers, sync = make(jitter=lambda d: HOUR if d == RETRY_SECONDS else d)
    if where == "in sync":
        sync.hold("u1")
    if where == "in the retry delay":
        sync.then("u1", RuntimeError("boom"))
    workers.update(pod("u1"))
    workers.update(pod("u2"))
    await sync.calls_reach(2)
    if where != "in sync":
        await sync.until(lambda: sync.returned == 2)
    tasks = [worker_task("u1"), worker_task("u2")]
    await asyncio.wait_for(workers.stop(), TIMEOUT)
    assert all(t.done() for t in tasks)
    assert sync.cancelled == (["u1"] if where == "in sync" else [])
    assert workers.known() == set()
    workers.update(pod("u3"))  # a stopped PodWorkers takes no new pods
    assert workers.known() == set() and not [
        t for t in asyncio.all_tasks() if t.get_name() == "pod-u3"]
    await workers.stop()  # idempotent


# -- failed syncs -------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("runtime down"), KeyError("metadata"),
                                   OSError(5, "EIO")], ids=repr)
@pytest.mark.parametrize("update_while_failing", [False, True])
async def test_a_sync_that_raises_is_retried_and_the_worker_lives(make, error,
                                                                  update_while_failing) -> None:
    asked: list[float] = []

    def jitter(seconds: float) -> float:
        asked.append(seconds)
        return 0.0 if seconds == RETRY_SECONDS else seconds
    workers, sync = make(jitter=jitter)
    sync.then("u1", error, PodSyncResult())
    sync.hold("u1")
    workers.update(pod(version=1))
    await sync.calls_reach(1)
    if update_while_failing:
        workers.update(pod(version=2))
    sync.release("u1", 2)
    await sync.until(lambda: sync.returned == 2)
    assert asked[0] == RETRY_SECONDS
    assert sync.of("u1") == [(1, False), (2 if update_while_failing else 1, False)]
    assert workers.known() == {"u1"} and not worker_task("u1").done()
    workers.update(pod(version=5))
    await sync.calls_reach(3)  # still serving updates
