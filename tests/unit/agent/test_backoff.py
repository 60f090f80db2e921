"""Back-off arithmetic with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from podling.agent.backoff import Backoff, go_duration
from podling.util.clock import Clock, FakeClock, SystemClock

K = ("uid", "c")


def test_delays_double_to_the_cap():
    clock = FakeClock()
    bo = Backoff(clock=clock)
    seen = []
    for _ in range(8):
        seen.append(bo.record_failure(K))
        clock.advance(1)
    assert seen == [10, 20, 40, 80, 160, 300, 300, 300]


def test_next_delay_does_not_change_state():
    bo = Backoff(clock=FakeClock())
    assert bo.next_delay(K) == 10 and bo.next_delay(K) == 10
    bo.record_failure(K)
    assert bo.next_delay(K) == 20 and bo.current(K) == 10


def test_in_backoff_since_last_update():
    clock = FakeClock()
    bo = Backoff(clock=clock)
    assert bo.in_backoff(K) == (False, 0.0)
    bo.record_failure(K)
    clock.advance(4)
    assert bo.in_backoff(K) == (True, 6)
    clock.advance(6)
    assert bo.in_backoff(K) == (False, 0.0)


def test_in_backoff_since_event_time():
    t = 1000.0
    bo = Backoff(clock=FakeClock(t))
    bo.record_failure(K, t)            # restarted at t, delay 10
    bo.record_failure(K, t + 1)        # restarted again, delay 20
    assert bo.in_backoff(K, t + 30, since=t + 25) == (True, 15)
    assert bo.in_backoff(K, t + 45, since=t + 25) == (False, 0.0)


def test_reset_after_quiet_period():
    clock = FakeClock()
    bo = Backoff(clock=clock)
    for _ in range(4):
        bo.record_failure(K)
    assert bo.current(K) == 80
    clock.advance(601)
    assert bo.current(K) == 0 and bo.in_backoff(K) == (False, 0.0)
    assert bo.record_failure(K) == 10


def test_reset_measured_against_since():
    bo = Backoff(clock=FakeClock(0))
    bo.record_failure(K, 0)
    bo.record_failure(K, 1)  # 20
    # it ran for 700 s before failing: the next restart starts over
    assert bo.in_backoff(K, 705, since=701) == (False, 0.0)
    assert bo.record_failure(K, 705, since=701) == 10


def test_reset_forget_and_gc():
    clock = FakeClock()
    bo = Backoff(clock=clock)
    bo.record_failure(("u1", "a"))
    bo.record_failure(("u1", "b"))
    bo.record_failure(("u2", "a"))
    bo.reset(("u1", "a"))
    bo.reset(("u1", "a"))
    assert bo.current(("u1", "a")) == 0 and bo.current(("u1", "b")) == 10
    bo.forget_prefix("u1")
    assert bo.current(("u1", "b")) == 0 and bo.current(("u2", "a")) == 10
    clock.advance(700)
    bo.gc()
    assert bo._entries == {}


def test_custom_numbers_and_validation():
    bo = Backoff(1, 4, clock=FakeClock())
    assert [bo.record_failure(K) for _ in range(4)] == [1, 2, 4, 4]
    with pytest.raises(ValueError):
        Backoff(10, 5)


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (10, "10s"), (59, "59s"), (60, "1m0s"), (80, "1m20s"), (160, "2m40s"),
    (300, "5m0s"), (3600, "1h0m0s"), (3725, "1h2m5s"),
])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


async def test_fake_clock_sleep_wakes_on_advance():
    clock = FakeClock(100)
    assert isinstance(clock, Clock) and isinstance(SystemClock(), Clock)
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    clock.advance(4)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1)
    await asyncio.wait_for(task, 1)
    assert clock.now() == 105 and clock.monotonic() == 5
    with pytest.raises(ValueError):
        clock.advance(-1)
    await clock.sleep(0)
    await SystemClock().sleep(0)
