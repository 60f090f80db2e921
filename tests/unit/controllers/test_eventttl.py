"""The event TTL controller against a real in-process API server and a fake clock: an event
is deleted once the TTL has passed since its last write (kube-apiserver's --event-ttl)."""

from __future__ import annotations

import pytest

from podling.client import ApiClient
from podling.controllers.eventttl import EventTTLController, last_written
from podling.util.clock import FakeClock
from podling.util.timefmt import epoch_rfc3339

TTL = 3600.0


def event(name: str, *, last: float, first: float | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Pulled", "message": "pulled", "type": "Normal", "count": 1,
            "firstTimestamp": epoch_rfc3339(first if first is not None else last),
            "lastTimestamp": epoch_rfc3339(last)}


async def names(client: ApiClient) -> list[str]:
    items, _ = await client.list("events", "default")
    return sorted(e["metadata"]["name"] for e in items)


@pytest.fixture
async def env(client: ApiClient):
    clock = FakeClock(start=1_800_000_000.0)
    return client, clock, EventTTLController(client, ttl_seconds=TTL, clock=clock)


async def test_an_event_goes_once_the_ttl_passed_since_its_last_write(env) -> None:
    client, clock, ttl = env
    now = clock.now()
    await client.create("events", event("old", last=now - TTL - 1), "default")
    await client.create("events", event("fresh", last=now - 10), "default")
    # seen first long ago, written again a minute ago: its last write counts
    await client.create("events", event("repeated", first=now - 5 * TTL, last=now - 60),
                        "default")
    assert await ttl.sync() == 1
    assert await names(client) == ["fresh", "repeated"]
    clock.advance(TTL)
    assert await ttl.sync() == 2
    assert await names(client) == []


async def test_an_event_written_during_the_pass_is_kept(env, monkeypatch) -> None:
    client, clock, ttl = env
    created = await client.create("events", event("busy", last=clock.now() - TTL - 5),
                                  "default")
    original = client.delete

    async def written_first(resource, name, namespace=None, **kw):
        renewed = dict(created, lastTimestamp=epoch_rfc3339(clock.now()), count=2)
        await client.update("events", renewed)
        return await original(resource, name, namespace, **kw)
    monkeypatch.setattr(client, "delete", written_first)
    assert await ttl.sync() == 0  # 409: the precondition on the old resourceVersion
    assert await names(client) == ["busy"]


def test_last_written_takes_the_newest_time_and_ignores_bad_ones() -> None:
    assert last_written({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                         "lastTimestamp": "2026-01-01T00:10:00Z",
                         "eventTime": "2026-01-01T00:05:00.123456Z",
                         "series": {"lastObservedTime": "not a time"}}) == \
        1767226200.0
    assert last_written({"metadata": {}}) is None
