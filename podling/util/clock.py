"""Clocks: the real one and a fake one for tests (docs/architecture.md §5).

Code that measures time takes a ``Clock`` instead of calling ``time.time()`` /
``asyncio.sleep`` directly, so that tests can move time by hand.

``now()`` is wall-clock seconds since the Unix epoch (float), the unit every podling
timestamp uses; ``monotonic()`` is for measuring durations. Both clocks are also callable
(``clock()`` is ``clock.now()``), so they fit parameters typed ``Callable[[], float]``
(``time.time``-like) as well as ``Clock``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of time and a way to wait for it."""

    def now(self) -> float:
        """Wall-clock seconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time. Cancellable."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def __call__(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when ``advance`` / ``set`` is called.

    ``sleep`` returns once the fake time has reached the sleeper's deadline (a sleep of
    0 or less returns after one loop iteration). ``now`` and ``monotonic`` move together.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._start = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, fut))
        try:
            await fut
        finally:
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not fut]

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must be >= 0) and wake due sleepers."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        """Jump to ``when`` (not before the current time) and wake due sleepers."""
        if when < self._now:
            raise ValueError("a clock cannot go backwards")
        self._now = when
        for deadline, fut in list(self._sleepers):
            if deadline <= self._now and not fut.done():
                fut.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (lets a test wait until code is blocked)."""
        return sum(1 for _, f in self._sleepers if not f.done())
