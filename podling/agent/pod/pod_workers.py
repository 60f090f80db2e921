"""One serialized worker per pod UID (docs/architecture.md §4).

    update(pod) ──▶ [worker uid] ──▶ sync(pod, terminating) ──▶ PodSyncResult
                        ▲   │                                      │ done ─▶ the worker ends
           notify(uid) ─┘   └── sleeps until the next update, notify, or requeue time ◀┘

The requeue time: ``requeue_after`` of the result when it is sooner than the resync period
(a back-off expiring, a retry); else the resync period, jittered (±10% by default) so that
pods admitted together do not resync in lockstep. A sync that raises is retried after a
jittered ``RETRY_SECONDS``. Tests inject ``jitter`` (e.g. the identity) to stay
deterministic.

A worker keeps only the latest desired state of its pod; an update that needs no sync
(:func:`.updates.needs_sync`: the agent's own status write coming back) replaces it without
waking the worker. A pod whose termination finished is remembered (its uid, among the last
FINISHED_KEPT): its deletion seen afterwards starts no second termination. Once a pod has been seen with a
``deletionTimestamp`` (or as removed from the API), that termination request sticks: a later
ordinary update never turns it back into a running pod, and an ordinary sync in progress is
cancelled so that termination starts at once (as the kubelet cancels its in-flight sync: a
hanging image pull must not hold a deletion). ``sync`` is never run twice at once for one
pod; different pods sync concurrently. A cancelled sync leaves whatever it created for the
terminating sync to remove (every sync starts from what the runtime reports).
"""

from __future__ import annotations

import asyncio
import logging
import collections
import random
from dataclasses import dataclass
from typing import Awaitable, Callable

from podling.agent.pod.sync_result import PodSyncResult
from podling.api.types import Obj
from podling.util import timeline

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # after a failed sync
JITTER_FRACTION = 0.1
FINISHED_KEPT = 4096  # uids of terminated pods remembered
Sync = Callable[[Obj, bool], Awaitable[PodSyncResult]]
Jitter = Callable[[float], float]


def jittered(seconds: float) -> float:
    """``seconds`` ± JITTER_FRACTION, uniformly."""
    return seconds * random.uniform(1 - JITTER_FRACTION, 1 + JITTER_FRACTION)


@dataclass
class _Worker:
    pod: Obj
    terminating: bool
    wake: asyncio.Event
    task: asyncio.Task[None] | None = None
    in_flight: asyncio.Future[PodSyncResult] | None = None  # an ordinary sync running now


class PodWorkers:
    """Runs ``sync(pod, terminating)`` per pod and requeues it after the result's delay
    (level-triggered resync) until the result is ``done``."""

    def __init__(self, sync: Sync, *, resync_seconds: float = 30.0,
                 jitter: Jitter = jittered) -> None:
        self._sync = sync
        self._resync = resync_seconds
        self._jitter = jitter
        self._workers: dict[str, _Worker] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._closed = False

    def update(self, pod: Obj, *, removed: bool = False, wake: bool = True) -> None:
        """A new desired state; ``removed`` means the pod is gone from the API. Without
        ``wake`` a running worker only keeps the object for its next sync."""
        uid = pod["metadata"]["uid"]
        if uid in self._finished:
            return
        timeline.mark(uid, "agent.received")
        terminating = removed or bool(pod["metadata"].get("deletionTimestamp"))
        worker = self._workers.get(uid)
        if worker is None:
            if self._closed:
                return
            worker = _Worker(pod, terminating, asyncio.Event())
            self._workers[uid] = worker
            worker.task = asyncio.create_task(self._run(uid, worker), name=f"pod-{uid}")
        else:
            worker.pod = pod
            if terminating and not worker.terminating and worker.in_flight is not None:
                log.info("pod %s is terminating: cancelling the sync in progress", uid)
                worker.in_flight.cancel()
            worker.terminating = worker.terminating or terminating
            if not wake and not terminating:
                return
        worker.wake.set()

    def notify(self, uid: str) -> None:
        """Something changed in the runtime for this pod: sync it soon."""
        worker = self._workers.get(uid)
        if worker is not None:
            worker.wake.set()

    def known(self) -> set[str]:
        """The uids of the pods that have a worker."""
        return set(self._workers)

    def _next_delay(self, result: PodSyncResult) -> float:
        wanted = result.requeue_after
        if wanted is not None and 0 < wanted < self._resync:
            return wanted
        return self._jitter(self._resync)

    async def _run(self, uid: str, worker: _Worker) -> None:
        delay = 0.0
        while not self._closed:
            if delay > 0:
                await _wait_for_wake(worker.wake, delay)
            worker.wake.clear()
            try:
                result = await self._sync_once(worker)
            except asyncio.CancelledError:
                raise
            except Exception:
                retry = self._jitter(RETRY_SECONDS)
                log.exception("sync of pod %s failed; retrying in %.1fs", uid, retry)
                await asyncio.sleep(retry)  # wake-ups do not cut a retry delay short
                delay = 0.0
                continue
            if result is None:  # superseded by a termination request
                delay = 0.0
                continue
            for failed in result.errors():
                log.debug("pod %s: %s %s: %s %s", uid, failed.action.value, failed.target,
                          failed.error, failed.message)
            if result.done:
                self._workers.pop(uid, None)
                self._finished[uid] = None
                while len(self._finished) > FINISHED_KEPT:
                    self._finished.popitem(last=False)
                return
            delay = self._next_delay(result)

    async def _sync_once(self, worker: _Worker) -> PodSyncResult | None:
        """One sync of the worker's pod; None when a termination request cancelled it."""
        timeline.mark(worker.pod["metadata"]["uid"], "agent.sync")
        sync = asyncio.ensure_future(self._sync(worker.pod, worker.terminating))
        worker.in_flight = None if worker.terminating else sync
        try:
            return await sync
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if sync.cancelled() and current is not None and not current.cancelling():
                return None  # the sync was cancelled, not this worker
            raise
        finally:
            worker.in_flight = None

    async def stop(self) -> None:
        """Cancel every worker (containers keep running; a restarted agent adopts them)."""
        self._closed = True
        tasks = [w.task for w in self._workers.values() if w.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()


async def _wait_for_wake(wake: asyncio.Event, seconds: float) -> None:
    """Wait until ``wake`` is set or ``seconds`` pass. Unlike ``asyncio.wait_for`` on Python
    3.11, a cancellation that arrives as the event is set is never swallowed."""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        pass
