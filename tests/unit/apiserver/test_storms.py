"""Invariants under load, against a real API server in this process (memory store):

* a conflict storm: many clients update one object at once, each from the version it read;
  exactly one update wins per version, every other gets 409 Conflict, and no win is lost;
* watch churn: writers create, update and delete pods while a watcher follows them; the
  watch delivers every acknowledged write exactly once, in resourceVersion order.

``PODLING_STORM_UPDATES`` and ``PODLING_CHURN_WRITES`` set the sizes (``make test``: 400
and 2,000; ``tests/chaos/storms.sh``: 10,000 and 1,000,000).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from inprocess import server  # noqa: F401 - fixture

from podling.api.resources import PODS
from podling.client import ApiClient, ApiError, ClientConfig

UPDATES = int(os.environ.get("PODLING_STORM_UPDATES", "400"))
CHURN_WRITES = int(os.environ.get("PODLING_CHURN_WRITES", "2000"))
CLIENTS = 8


def clients(server: Any, count: int) -> list[ApiClient]:
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path, request_timeout=120)
    return [ApiClient(config) for _ in range(count)]


async def test_a_conflict_storm_has_exactly_one_winner_per_version(server) -> None:
    apis = clients(server, CLIENTS)
    try:
        created = await apis[0].create("configmaps", {"metadata": {"name": "storm"},
                                                    "data": {"n": "0"}}, "default")
        wins: list[tuple[int, int]] = []  # (the version read, the value written)
        conflicts = 0
        attempts = iter(range(UPDATES))

        async def worker(api: ApiClient) -> None:
            nonlocal conflicts
            for _ in attempts:
                current = await api.get("configmaps", "storm", "default")
                read = int(current["metadata"]["resourceVersion"])
                current["data"]["n"] = str(int(current["data"]["n"]) + 1)
                try:  # a PUT carries the version it was computed from: a precondition
                    await api.update("configmaps", current)
                except ApiError as exc:
                    assert (exc.code, exc.reason) == (409, "Conflict"), exc
                    conflicts += 1
                    continue
                wins.append((read, int(current["data"]["n"])))
        await asyncio.gather(*(worker(api) for api in apis))
        final = await apis[0].get("configmaps", "storm", "default")
    finally:
        for api in apis:
            await api.close()
    print(f"conflict storm: {UPDATES} updates from {CLIENTS} clients, {len(wins)} won, "
          f"{conflicts} refused with 409")
    versions = [read for read, _ in wins]
    assert len(versions) == len(set(versions)), "two updates won on one version"
    assert sorted(value for _, value in wins) == list(range(1, len(wins) + 1))
    assert int(final["data"]["n"]) == len(wins) and len(wins) + conflicts == UPDATES
    assert int(created["metadata"]["resourceVersion"]) in versions  # the first read won
    assert conflicts > 0, "no contention: the storm did not storm"


async def test_watch_churn_delivers_every_write_once_in_order(server) -> None:
    apis = clients(server, CLIENTS + 1)
    watcher, writers = apis[0], apis[1:]
    acknowledged: dict[int, tuple[str, str]] = {}  # rv -> (type, name)
    seen: list[tuple[int, str, str]] = []
    try:
        _, start = await watcher.list(PODS, "default")

        async def watch() -> None:
            rv = start
            while True:  # a watch the server ends is resumed from the last version seen
                async for type_, obj in watcher.watch(PODS, "default", resource_version=rv,
                                                      timeout_seconds=30):
                    rv = obj["metadata"]["resourceVersion"]
                    if type_ != "BOOKMARK":
                        seen.append((int(rv), type_, obj["metadata"]["name"]))
        watching = asyncio.create_task(watch())
        budget = iter(range(CHURN_WRITES))
        await asyncio.gather(*(_churn(api, k, budget, acknowledged)
                               for k, api in enumerate(writers)))
        async with asyncio.timeout(120):
            while len(seen) < len(acknowledged) and not watching.done():
                await asyncio.sleep(0.01)
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    finally:
        for api in apis:
            await api.close()
    print(f"watch churn: {len(acknowledged)} writes acknowledged, {len(seen)} events seen")
    revisions = [rv for rv, _, _ in seen]
    assert revisions == sorted(set(revisions)), "an event repeated or out of order"
    assert {rv: (t, n) for rv, t, n in seen} == acknowledged  # no gap, nothing unasked


async def _churn(api: ApiClient, k: int, budget: Any,
                 acknowledged: dict[int, tuple[str, str]]) -> None:
    """Create, label and delete pods of this writer's own while the budget lasts."""
    rng = random.Random(k)
    live: list[str] = []
    for i in budget:
        if not live or (len(live) < 20 and rng.random() < 0.4):
            name = f"churn-{k}-{i}"
            obj = await api.create(PODS, {"metadata": {"name": name}, "spec": {
                "schedulerName": "nobody", "containers": [{"name": "c", "image": "x"}]}},
                "default")
            live.append(name)
            acknowledged[int(obj["metadata"]["resourceVersion"])] = ("ADDED", name)
        elif rng.random() < 0.7:
            name = rng.choice(live)
            obj = await api.patch(PODS, name, {"metadata": {"labels": {"i": str(i)}}},
                                  "default")
            acknowledged[int(obj["metadata"]["resourceVersion"])] = ("MODIFIED", name)
        else:
            name = live.pop(rng.randrange(len(live)))
            obj = await api.delete(PODS, name, "default", grace_period=0)
            acknowledged[int(obj["metadata"]["resourceVersion"])] = ("DELETED", name)
