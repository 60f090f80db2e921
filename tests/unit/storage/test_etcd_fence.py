"""ReadFence: readers that arrive before a check starts share it; a reader that arrives
while one runs waits for the next; a failing check fails the readers that joined it."""

from __future__ import annotations

import asyncio

import pytest

from podling.storage.etcd.fence import ReadFence


class Check:
    """A check that counts its runs and finishes when the test releases it."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> None:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail


async def test_readers_that_arrive_together_share_one_check() -> None:
    check = Check()
    fence = ReadFence(check)
    readers = [asyncio.create_task(fence.wait()) for _ in range(5)]
    await check.started.wait()
    check.release.set()
    await asyncio.gather(*readers)
    assert check.runs == 1


async def test_a_reader_that_arrives_during_a_check_waits_for_the_next() -> None:
    check = Check()
    fence = ReadFence(check)
    first = asyncio.create_task(fence.wait())
    await check.started.wait()  # the first check has begun: it cannot vouch for later reads
    late = asyncio.create_task(fence.wait())
    await asyncio.sleep(0)
    assert check.runs == 1 and not late.done()
    check.release.set()
    await asyncio.gather(first, late)
    assert check.runs == 2


async def test_a_failing_check_fails_its_readers_and_the_next_one_runs_afresh() -> None:
    check = Check()
    check.fail = RuntimeError("etcd gone")
    check.release.set()
    fence = ReadFence(check)
    results = await asyncio.gather(fence.wait(), fence.wait(), return_exceptions=True)
    assert [str(r) for r in results] == ["etcd gone", "etcd gone"]
    check.fail = None
    await fence.wait()
    assert check.runs == 2


async def test_a_cancelled_reader_does_not_cancel_the_check_for_the_others() -> None:
    check = Check()
    fence = ReadFence(check)
    leaving, staying = asyncio.create_task(fence.wait()), asyncio.create_task(fence.wait())
    await check.started.wait()
    leaving.cancel()
    check.release.set()
    await staying
    with pytest.raises(asyncio.CancelledError):
        await leaving
