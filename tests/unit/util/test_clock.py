"""podling.util.clock: the fake clock tests move by hand, and the real one."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import pytest

from podling.util.clock import Clock, FakeClock, SystemClock


def test_both_clocks_are_clocks_and_callables() -> None:
    for clock in (FakeClock(), SystemClock()):
        assert isinstance(clock, Clock)
        as_callable: Callable[[], float] = clock
        assert as_callable() == pytest.approx(clock.now(), abs=1.0)


def test_fake_clock_moves_only_by_hand() -> None:
    clock = FakeClock(100.0)
    assert (clock(), clock.now(), clock.monotonic()) == (100.0, 100.0, 0.0)
    clock.advance(2.5)
    assert (clock(), clock.monotonic()) == (102.5, 2.5)
    clock.set(200.0)
    assert clock() == 200.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(199.0)


async def test_fake_sleep_wakes_when_time_reaches_the_deadline() -> None:
    clock = FakeClock(0.0)
    sleeper = asyncio.create_task(clock.sleep(10))
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    clock.advance(9.9)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(0.1)
    await asyncio.wait_for(sleeper, 5)
    assert clock.sleepers == 0


async def test_fake_sleep_of_zero_returns_and_cancel_forgets_the_sleeper() -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(0), 5)
    sleeper = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert clock.sleepers == 0


def test_system_clock_is_the_real_time() -> None:
    before = time.time()
    assert before <= SystemClock()() <= time.time()
