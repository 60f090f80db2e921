"""One serialized worker per pod UID (DESIGN.md §4).

    update(pod) ──▶ [worker uid] ──▶ sync(pod) ──▶ returns a requeue delay or DONE
                        ▲   │
           notify(uid) ─┘   └── sleeps until the next update, notify, or requeue time

A worker keeps only the latest desired state of its pod. Once a pod has been seen with a
``deletionTimestamp`` (or as removed from the API), that termination request sticks: a later
ordinary update never turns it back into a running pod. ``sync`` is never run twice at once
for one pod; different pods sync concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

DONE = -1.0  # sync's answer when the pod is finished with and the worker can go
RETRY_SECONDS = 2.0  # after a failed sync
Obj = dict[str, Any]


@dataclass
class _Worker:
    pod: Obj
    terminating: bool
    wake: asyncio.Event
    task: asyncio.Task | None = None


class PodWorkers:
    """Runs ``sync(pod, terminating)`` per pod; ``sync`` returns seconds until it wants to
    run again (level-triggered resync), or DONE."""

    def __init__(self, sync: Callable[[Obj, bool], Awaitable[float]], *,
                 resync_seconds: float = 30.0) -> None:
        self._sync = sync
        self._resync = resync_seconds
        self._workers: dict[str, _Worker] = {}
        self._closed = False

    def update(self, pod: Obj, *, removed: bool = False) -> None:
        """A new desired state; ``removed`` means the pod is gone from the API."""
        uid = pod["metadata"]["uid"]
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
            worker.terminating = worker.terminating or terminating
        worker.wake.set()

    def notify(self, uid: str) -> None:
        """Something changed in the runtime for this pod: sync it soon."""
        worker = self._workers.get(uid)
        if worker is not None:
            worker.wake.set()

    def known(self) -> set[str]:
        return set(self._workers)

    async def _run(self, uid: str, worker: _Worker) -> None:
        delay = 0.0
        while True:
            if delay > 0:
                try:
                    await asyncio.wait_for(worker.wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            worker.wake.clear()
            try:
                delay = await self._sync(worker.pod, worker.terminating)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync of pod %s failed; retrying in %gs", uid, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)  # wake-ups do not cut a retry delay short
                delay = 0.0
                continue
            if delay == DONE:
                self._workers.pop(uid, None)
                return
            delay = min(delay, self._resync) if delay > 0 else self._resync

    async def stop(self) -> None:
        """Cancel every worker (containers keep running; a restarted agent adopts them)."""
        self._closed = True
        tasks = [w.task for w in self._workers.values() if w.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
