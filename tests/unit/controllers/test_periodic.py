"""PeriodicController: one pass per period of its clock; a failed pass is retried on the
next one, not at once; stop cancels and is idempotent."""

from __future__ import annotations

import asyncio

from podling.controllers.periodic import PeriodicController
from podling.util.clock import FakeClock

TIMEOUT = 5.0


class Scripted(PeriodicController):
    name = "scripted-controller"

    def __init__(self, clock: FakeClock, failures: int) -> None:
        self._clock = clock
        self._period = 10.0
        self.failures = failures
        self.passes = 0
        self.passed = asyncio.Event()

    async def sync(self) -> None:
        self.passes += 1
        self.passed.set()
        if self.passes <= self.failures:
            raise RuntimeError("the API is down")


async def next_pass(c: Scripted) -> None:
    await asyncio.wait_for(c.passed.wait(), TIMEOUT)
    c.passed.clear()


async def test_a_failed_pass_is_retried_after_a_period_not_at_once() -> None:
    clock = FakeClock()
    c = Scripted(clock, failures=1)
    c.start()
    try:
        await next_pass(c)  # the first pass fails
        for _ in range(20):
            await asyncio.sleep(0)
        assert c.passes == 1  # no tight retry loop
        clock.advance(10)
        await next_pass(c)
        assert c.passes == 2
    finally:
        await c.stop()
        await c.stop()  # idempotent
    clock.advance(10)
    for _ in range(20):
        await asyncio.sleep(0)
    assert c.passes == 2  # stopped: no more passes
