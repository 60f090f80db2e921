"""The scheduling queue: ordering, back-off and event-driven requeue, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from podling.scheduler.queue import (ACTIVE, BACKOFF, IN_FLIGHT, UNSCHEDULABLE, QueueOptions,
                                     SchedulingQueue)
from podling.util.clock import FakeClock

A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock) -> SchedulingQueue:
    return SchedulingQueue(clock)


async def pop_now(queue):
    return await asyncio.wait_for(queue.pop(), 1.0)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("attempts, want", [(0, 0), (1, 1), (2, 2), (3, 4), (4, 8), (5, 10),
                                            (50, 10)])
def test_backoff_durations(queue, attempts, want):
    assert queue.backoff_duration(attempts) == want


async def test_fifo_within_priority_and_priority_first(queue, clock):
    queue.add(A, "1")
    clock.advance(1)
    queue.add(B, "2", priority=10)
    clock.advance(1)
    queue.add(C, "3")
    assert [(await pop_now(queue)).key for _ in range(3)] == [B, A, C]


async def test_add_is_idempotent_and_uid_change_restarts(queue):
    assert queue.add(A, "1")
    assert not queue.add(A, "1")
    entry = await pop_now(queue)
    assert queue.where(A) == IN_FLIGHT and not queue.add(A, "1")
    assert queue.add(A, "2")  # re-created pod
    assert queue.where(A) == ACTIVE
    queue.unschedulable(entry)  # the stale record no longer counts
    assert queue.where(A) == ACTIVE


async def test_unschedulable_waits_for_a_cluster_event(queue, clock):
    queue.add(A, "1")
    entry = await pop_now(queue)
    queue.unschedulable(entry)
    assert queue.where(A) == UNSCHEDULABLE
    clock.advance(60)  # back-off alone does not retry it
    popper = asyncio.ensure_future(queue.pop())
    await settle()
    assert not popper.done()
    assert queue.move_all() == 1  # back-off (1 s) is over: straight to ACTIVE
    assert (await asyncio.wait_for(popper, 1.0)).key == A


async def test_cluster_event_during_backoff_goes_through_backoff(queue, clock):
    queue.add(A, "1")
    queue.unschedulable(await pop_now(queue))
    clock.advance(0.5)
    queue.move_all()
    assert queue.where(A) == BACKOFF
    popper = asyncio.ensure_future(queue.pop())
    await settle()
    assert not popper.done()
    clock.advance(0.5)  # 1 s after the failure
    entry = await asyncio.wait_for(popper, 1.0)
    assert entry.key == A and entry.attempts == 2


async def test_backoff_doubles_per_attempt(queue, clock):
    queue.add(A, "1")
    for attempt, wait in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10)]:
        entry = await pop_now(queue)
        assert entry.attempts == attempt
        queue.retry(entry)
        assert queue.where(A) == BACKOFF
        clock.advance(wait - 0.01)
        queue.flush()
        assert queue.where(A) == BACKOFF
        clock.advance(0.01)
        queue.flush()
        assert queue.where(A) == ACTIVE


async def test_event_while_in_flight_is_not_lost(queue, clock):
    queue.add(A, "1")
    entry = await pop_now(queue)
    queue.move_all()  # e.g. a node was labelled while A was being scheduled
    queue.unschedulable(entry)
    assert queue.where(A) == BACKOFF


async def test_pod_update_while_in_flight_or_parked(queue, clock):
    queue.add(A, "1")
    entry = await pop_now(queue)
    queue.update(A)
    queue.unschedulable(entry)
    assert queue.where(A) == BACKOFF
    clock.advance(1)
    entry = await pop_now(queue)
    queue.unschedulable(entry)
    assert queue.where(A) == UNSCHEDULABLE
    clock.advance(5)
    queue.update(A)  # e.g. a toleration was added
    assert queue.where(A) == ACTIVE


async def test_long_unschedulable_pods_are_retried(clock):
    queue = SchedulingQueue(clock, QueueOptions(max_unschedulable=300))
    queue.add(A, "1")
    queue.unschedulable(await pop_now(queue))
    popper = asyncio.ensure_future(queue.pop())
    await settle()
    clock.advance(299)
    await settle()
    assert not popper.done()
    clock.advance(1)
    assert (await asyncio.wait_for(popper, 1.0)).key == A


async def test_delete_done_and_close(queue):
    queue.add(A, "1")
    queue.add(B, "2")
    queue.delete(A)
    entry = await pop_now(queue)
    assert entry.key == B
    queue.done(entry)
    assert len(queue) == 0
    popper = asyncio.ensure_future(queue.pop())
    await settle()
    queue.close()
    assert await asyncio.wait_for(popper, 1.0) is None


async def test_counts(queue):
    queue.add(A, "1")
    queue.add(B, "2")
    queue.unschedulable(await pop_now(queue))
    assert queue.counts() == {ACTIVE: 1, BACKOFF: 0, UNSCHEDULABLE: 1, IN_FLIGHT: 0}


async def test_unschedulable_timeout_counts_from_the_latest_parking(clock):
    """A pod parked, requeued by an update and parked again waits max_unschedulable from
    its second failure: the first parking's deadline no longer applies."""
    queue = SchedulingQueue(clock, QueueOptions(max_unschedulable=300))
    queue.add(A, "1")
    queue.unschedulable(await pop_now(queue))
    clock.advance(100)
    queue.update(A)  # back-off (1 s) long over: straight to ACTIVE
    queue.unschedulable(await pop_now(queue))
    popper = asyncio.ensure_future(queue.pop())
    clock.advance(200)  # the first parking's deadline
    await settle()
    assert not popper.done()
    assert queue.where(A) == UNSCHEDULABLE
    clock.advance(100)
    assert (await asyncio.wait_for(popper, 1.0)).key == A


async def test_deleted_parked_pod_leaves_no_deadline(clock):
    queue = SchedulingQueue(clock, QueueOptions(max_unschedulable=300))
    queue.add(A, "1")
    queue.unschedulable(await pop_now(queue))
    queue.delete(A)
    queue.add(B, "2")
    queue.unschedulable(await pop_now(queue))
    popper = asyncio.ensure_future(queue.pop())
    clock.advance(300)
    assert (await asyncio.wait_for(popper, 1.0)).key == B
    assert len(queue) == 1
