"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Each pod known to the queue is in exactly one place (Kubernetes' PriorityQueue)::

                add                     pop
      (new) ──────────▶ ACTIVE ─────────────────▶ IN FLIGHT ──done()──▶ (forgotten)
                          ▲  ▲                      │    │
          back-off over   │  │ cluster event,       │    │ error / a cluster event or
          (flush)         │  │ back-off already over│    │ pod update while in flight
                          │  │                      │    ▼
                        BACKOFF ◀── cluster event ── │  BACKOFF
                                    (back-off not    ▼
                                     over yet)    UNSCHEDULABLE (unschedulable(): no node
                                                   fits; stays until a cluster event, a
                                                   change of the pod, or max_unschedulable
                                                   seconds)

ACTIVE is ordered by priority (higher first), then by the time the pod was queued. The
back-off of a pod after its n-th failed attempt is ``initial × 2^(n-1)``, at most
``maximum`` (Kubernetes: 1 s and 10 s), counted from the failure.

Who may call: everything on one event loop; ``pop`` is awaited by one consumer.
Time comes from a :class:`~podling.util.clock.Clock` (a FakeClock in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from ..util.clock import Clock, SystemClock

Key = tuple[str, str]
ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass(frozen=True)
class QueueOptions:
    """Back-off ``initial`` seconds doubling up to ``maximum``; an unschedulable pod is
    retried anyway after ``max_unschedulable`` seconds (Kubernetes: 1 s, 10 s, 5 min)."""

    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    max_unschedulable: float = 300.0


@dataclass
class QueuedPod:
    """The queue's record of one pod. ``attempts`` counts pops."""

    key: Key
    uid: str
    priority: int = 0
    queued_at: float = 0.0
    attempts: int = 0
    failed_at: float = 0.0
    where: str = ACTIVE
    popped_cycle: int = 0
    changed_in_flight: bool = False
    generation: int = field(default=0, compare=False)


class SchedulingQueue:
    """Active queue + back-off queue + unschedulable pool (see the module docstring)."""

    def __init__(self, clock: Clock | None = None, options: QueueOptions = QueueOptions()
                 ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.options = options
        self._pods: dict[Key, QueuedPod] = {}
        self._active: list[tuple[int, float, int, Key, int]] = []
        self._backoff: list[tuple[float, int, Key, int]] = []
        self._seq = itertools.count()
        self._move_cycle = 0
        self._wake = asyncio.Event()
        self._closed = False
        self._parked: set[Key] = set()  # the keys in UNSCHEDULABLE
        # (failed_at + max_unschedulable, seq, key, generation) of each parking, so the
        # periodic flush and the next deadline need not scan every parked pod; an item
        # whose generation is stale is skipped
        self._parked_deadlines: list[tuple[float, int, Key, int]] = []

    # -- producers -------------------------------------------------------------------------

    def add(self, key: Key, uid: str = "", priority: int = 0) -> bool:
        """Queue a new pending pod (ACTIVE). A pod already known with the same uid is left
        where it is (False); a different uid (re-created pod) starts afresh."""
        known = self._pods.get(key)
        if known is not None and known.uid == uid:
            return False
        entry = QueuedPod(key, uid, priority, queued_at=self.clock.monotonic())
        self._pods[key] = entry
        self._to_active(entry)
        return True

    def update(self, key: Key) -> None:
        """The pod's spec or labels changed: an unschedulable pod may fit now."""
        entry = self._pods.get(key)
        if entry is None:
            return
        if entry.where == IN_FLIGHT:
            entry.changed_in_flight = True
        elif entry.where == UNSCHEDULABLE:
            self._requeue(entry)

    def delete(self, key: Key) -> None:
        """Forget the pod (deleted, bound by someone else, no longer ours). Idempotent."""
        entry = self._pods.pop(key, None)
        if entry is not None:
            self._parked.discard(key)
            entry.generation += 1  # invalidates its heap items

    def move_all(self) -> int:
        """A cluster event that may make pods fit: every UNSCHEDULABLE pod goes to ACTIVE
        (back-off over) or BACKOFF; pods in flight will go to BACKOFF if they fail.
        Returns how many pods moved."""
        self._move_cycle += 1
        moved = [self._pods[k] for k in self._parked]
        for entry in moved:
            self._requeue(entry)
        return len(moved)

    # -- the consumer ----------------------------------------------------------------------

    async def pop(self) -> QueuedPod | None:
        """The next pod to schedule (now IN FLIGHT); waits for one. None once closed."""
        while not self._closed:
            self.flush()
            entry = self._pop_active()
            if entry is not None:
                entry.attempts += 1
                entry.popped_cycle = self._move_cycle
                entry.changed_in_flight = False
                return entry
            await self._wait(self._next_deadline())
        return None

    def unschedulable(self, entry: QueuedPod) -> None:
        """No node fits ``entry`` (it must be IN FLIGHT): park it in UNSCHEDULABLE, or in
        BACKOFF when the cluster or the pod changed since it was popped."""
        if not self._in_flight(entry):
            return
        entry.failed_at = self.clock.monotonic()
        if entry.changed_in_flight or self._move_cycle > entry.popped_cycle:
            self._to_backoff(entry)
        else:
            self._move(entry, UNSCHEDULABLE)

    def retry(self, entry: QueuedPod) -> None:
        """An error (not a misfit, e.g. the bind failed): try again after the back-off."""
        if self._in_flight(entry):
            entry.failed_at = self.clock.monotonic()
            self._to_backoff(entry)

    def done(self, entry: QueuedPod) -> None:
        """The pod was bound: forget it."""
        if self._in_flight(entry):
            self.delete(entry.key)

    def close(self) -> None:
        """Make ``pop`` return None. Idempotent."""
        self._closed = True
        self._wake.set()

    # -- introspection ---------------------------------------------------------------------

    def where(self, key: Key) -> str | None:
        entry = self._pods.get(key)
        return None if entry is None else entry.where

    def counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for entry in self._pods.values():
            out[entry.where] += 1
        return out

    def __len__(self) -> int:
        return len(self._pods)

    def backoff_duration(self, attempts: int) -> float:
        """The back-off after ``attempts`` failed tries."""
        if attempts <= 0:
            return 0.0
        return min(self.options.max_backoff,
                   self.options.initial_backoff * 2 ** min(attempts - 1, 30))

    def backoff_until(self, entry: QueuedPod) -> float:
        return entry.failed_at + self.backoff_duration(entry.attempts)

    # -- internals -------------------------------------------------------------------------

    def flush(self) -> None:
        """Move pods whose back-off is over to ACTIVE, and pods unschedulable for longer
        than ``max_unschedulable`` onwards (the periodic flush of Kubernetes)."""
        now = self.clock.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key, generation = heapq.heappop(self._backoff)
            entry = self._pods.get(key)
            if entry is not None and entry.generation == generation and entry.where == BACKOFF:
                self._to_active(entry)
        deadlines = self._parked_deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, key, generation = heapq.heappop(deadlines)
            entry = self._pods.get(key)
            if entry is not None and entry.generation == generation \
                    and entry.where == UNSCHEDULABLE:
                self._requeue(entry)

    def _in_flight(self, entry: QueuedPod) -> bool:
        return self._pods.get(entry.key) is entry and entry.where == IN_FLIGHT

    def _requeue(self, entry: QueuedPod) -> None:
        if self.backoff_until(entry) <= self.clock.monotonic():
            self._to_active(entry)
        else:
            self._to_backoff(entry)

    def _move(self, entry: QueuedPod, where: str) -> None:
        entry.where = where
        entry.generation += 1
        if where == UNSCHEDULABLE:
            self._parked.add(entry.key)
            heapq.heappush(self._parked_deadlines,
                           (entry.failed_at + self.options.max_unschedulable,
                            next(self._seq), entry.key, entry.generation))
        else:
            self._parked.discard(entry.key)

    def _to_active(self, entry: QueuedPod) -> None:
        self._move(entry, ACTIVE)
        heapq.heappush(self._active, (-entry.priority, entry.queued_at, next(self._seq),
                                      entry.key, entry.generation))
        self._wake.set()

    def _to_backoff(self, entry: QueuedPod) -> None:
        self._move(entry, BACKOFF)
        heapq.heappush(self._backoff, (self.backoff_until(entry), next(self._seq), entry.key,
                                       entry.generation))
        self._wake.set()

    def _pop_active(self) -> QueuedPod | None:
        while self._active:
            _, _, _, key, generation = heapq.heappop(self._active)
            entry = self._pods.get(key)
            if entry is not None and entry.generation == generation and entry.where == ACTIVE:
                self._move(entry, IN_FLIGHT)
                return entry
        return None

    def _next_deadline(self) -> float | None:
        deadlines = [self._backoff[0][0]] if self._backoff else []  # may be stale: harmless
        self._drop_stale_parked()
        if self._parked_deadlines:
            deadlines.append(self._parked_deadlines[0][0])
        return min(deadlines) if deadlines else None

    def _drop_stale_parked(self) -> None:
        """Pop the parked-deadline items of pods that left UNSCHEDULABLE since."""
        deadlines = self._parked_deadlines
        while deadlines:
            _, _, key, generation = deadlines[0]
            entry = self._pods.get(key)
            if entry is not None and entry.generation == generation \
                    and entry.where == UNSCHEDULABLE:
                return
            heapq.heappop(deadlines)

    async def _wait(self, deadline: float | None) -> None:
        """Until something is added or moved, or the clock reaches ``deadline``."""
        self._wake.clear()
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if deadline is not None:
            waiters.append(asyncio.ensure_future(
                self.clock.sleep(max(0.0, deadline - self.clock.monotonic()))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for waiter in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
