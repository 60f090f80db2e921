"""Leader election on a Lease against a real in-process API server, with a fake clock:
one leader at a time, takeover only after the lease expired by the candidate's own clock,
transitions counted, a lost lease cancels the leader's work, release hands over at once."""

from __future__ import annotations

import asyncio

from client_testlib import eventually
from podling.api.resources import LEASES
from podling.client import ApiClient
from podling.client.leaderelection import LeaderElectionConfig, LeaderElector, lead_while_elected
from podling.util.clock import FakeClock

NS = "kube-system"


def candidate(client: ApiClient, identity: str, clock: FakeClock) -> LeaderElector:
    return LeaderElector(client, LeaderElectionConfig("podling-scheduler", identity,
                                                      namespace=NS),
                         clock=clock)


async def lease_spec(client: ApiClient) -> dict:
    return (await client.get(LEASES, "podling-scheduler", NS))["spec"]


async def test_one_leader_and_a_takeover_only_after_the_lease_expired(client) -> None:
    clock = FakeClock()
    a, b = candidate(client, "a", clock), candidate(client, "b", clock)
    assert await a.try_acquire_or_renew()  # creates the Lease
    assert not await b.try_acquire_or_renew()
    spec = await lease_spec(client)
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) \
        == ("a", 15, 0)
    clock.advance(10)
    assert await a.try_acquire_or_renew()  # renewed: b saw the record change
    assert not await b.try_acquire_or_renew()
    clock.advance(14)  # 14 s after b saw the last change: not expired yet
    assert not await b.try_acquire_or_renew()
    clock.advance(1)  # a stopped renewing 15 s ago by b's clock
    assert await b.try_acquire_or_renew()
    taken = await lease_spec(client)
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("b", 1)
    assert taken["acquireTime"] != spec["acquireTime"]
    assert not await a.try_acquire_or_renew()  # a comes back: b holds it now


async def test_candidates_racing_for_a_missing_lease_give_one_winner(client) -> None:
    clock = FakeClock()
    results = await asyncio.gather(*(candidate(client, f"c{i}", clock).try_acquire_or_renew()
                                     for i in range(5)))
    assert results.count(True) == 1
    assert (await lease_spec(client))["holderIdentity"] == f"c{results.index(True)}"


async def test_a_leader_that_cannot_renew_stops_leading_and_its_work_is_cancelled(
        client) -> None:
    clock = FakeClock()
    a = candidate(client, "a", clock)
    working, cancelled = asyncio.Event(), asyncio.Event()

    async def lead() -> None:
        working.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
    running = asyncio.create_task(a.run(lead))
    await asyncio.wait_for(working.wait(), 5)
    assert a.is_leader
    # b takes the lease over behind a's back (as if a's renewals had been failing)
    lease = await client.get(LEASES, "podling-scheduler", NS)
    await client.update(LEASES, dict(lease, spec=dict(lease["spec"], holderIdentity="b")))
    start = clock.monotonic()
    while not running.done():  # retry periods of 2 s go by; each renewal of a fails
        await eventually(lambda: clock.sleepers > 0 or running.done())
        clock.advance(2)
        assert clock.monotonic() - start <= 12, "still leading after the renew deadline"
    await running
    assert clock.monotonic() - start >= 10  # not before the renew deadline
    assert cancelled.is_set() and not a.is_leader
    assert (await lease_spec(client))["holderIdentity"] == "b"


async def test_release_lets_another_candidate_take_over_at_once(client) -> None:
    clock = FakeClock()
    a, b = candidate(client, "a", clock), candidate(client, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert (await lease_spec(client))["holderIdentity"] == ""
    assert await b.try_acquire_or_renew()  # no wait for the 15 s lease
    assert (await lease_spec(client))["leaseTransitions"] == 1


async def test_a_campaign_retries_failed_work_after_a_retry_period_and_releases_when_cancelled(
        client) -> None:
    clock = FakeClock()
    elector = candidate(client, "a", clock)
    attempts: list[float] = []

    async def failing_lead() -> None:
        attempts.append(clock.monotonic())
        raise RuntimeError("the component could not start")
    campaign = asyncio.create_task(lead_while_elected(elector, failing_lead))
    await eventually(lambda: len(attempts) == 1 and clock.sleepers > 0)
    assert len(attempts) == 1  # waits for the clock instead of spinning
    clock.advance(2)
    await eventually(lambda: len(attempts) == 2)
    assert (await lease_spec(client))["holderIdentity"] == "a"
    campaign.cancel()
    await asyncio.gather(campaign, return_exceptions=True)
    assert (await lease_spec(client))["holderIdentity"] == ""  # released
