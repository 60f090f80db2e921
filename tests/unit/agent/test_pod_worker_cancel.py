"""PodWorkers under the two races that used to hang the agent: a termination request while
an ordinary sync hangs (the sync is cancelled, termination starts at once), and stop() while
a worker is being woken (the cancellation is never swallowed)."""

from __future__ import annotations

import asyncio

from podling.agent.pod.pod_workers import PodWorkers
from podling.agent.pod.sync_result import PodSyncResult

TIMEOUT = 5.0


def pod(uid: str = "u1", deleting: bool = False) -> dict:
    meta = {"uid": uid, "name": "p", "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


class ScriptedSync:
    """An ordinary sync hangs until cancelled; a terminating sync is done at once."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.cancelled = 0
        self.hanging = asyncio.Event()
        self.terminated = asyncio.Event()

    async def __call__(self, pod: dict, terminating: bool) -> PodSyncResult:
        self.calls.append(terminating)
        if terminating:
            self.terminated.set()
            return PodSyncResult(done=True)
        self.hanging.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


async def test_a_termination_request_cancels_the_hanging_sync() -> None:
    sync = ScriptedSync()
    workers = PodWorkers(sync, resync_seconds=30, jitter=lambda s: s)
    workers.update(pod())
    await asyncio.wait_for(sync.hanging.wait(), TIMEOUT)
    workers.update(pod(deleting=True))
    await asyncio.wait_for(sync.terminated.wait(), TIMEOUT)
    assert sync.calls == [False, True]
    assert sync.cancelled == 1
    for _ in range(20):  # the done result lets the worker end
        if not workers.known():
            break
        await asyncio.sleep(0.01)
    assert workers.known() == set()
    await workers.stop()


async def test_an_ordinary_update_does_not_cancel_the_sync() -> None:
    sync = ScriptedSync()
    workers = PodWorkers(sync, resync_seconds=30, jitter=lambda s: s)
    workers.update(pod())
    await asyncio.wait_for(sync.hanging.wait(), TIMEOUT)
    workers.update(pod())
    await asyncio.sleep(0)
    assert sync.cancelled == 0 and sync.calls == [False]
    await asyncio.wait_for(workers.stop(), TIMEOUT)
    assert sync.cancelled == 1  # stop cancels it


async def test_stop_while_a_worker_is_being_woken_finishes() -> None:
    synced = asyncio.Event()

    async def quick(pod: dict, terminating: bool) -> PodSyncResult:
        synced.set()
        return PodSyncResult(requeue_after=30.0)

    workers = PodWorkers(quick, resync_seconds=30, jitter=lambda s: s)
    workers.update(pod())
    await asyncio.wait_for(synced.wait(), TIMEOUT)
    for _ in range(5):  # the worker is now waiting for a wake-up or its requeue time
        await asyncio.sleep(0)
    workers.notify("u1")  # woken and cancelled in the same loop iteration
    await asyncio.wait_for(workers.stop(), TIMEOUT)
    assert workers.known() == set()
