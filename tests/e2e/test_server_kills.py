"""The API server killed with SIGKILL under concurrent writes, again and again, on one data
dir (SQLite): no acknowledged write is lost, resourceVersions never go backwards across
restarts, and a watch resumed after a restart from a version seen before the kill replays
every acknowledged change after it, in order, once (or answers 410, never a gap).

``PODLING_SERVER_KILLS`` sets the number of kills (``make test``: 4;
``tests/chaos/server_kills.sh``: 200)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

from podling_e2e import Server, start_server

from podling.client import ApiClient, ApiConnectionError, ApiError, ClientConfig, Expired

KILLS = int(os.environ.get("PODLING_SERVER_KILLS", "4"))
WRITERS = 4


def client(server: Server) -> ApiClient:
    return ApiClient(ClientConfig(server=server.url, token=server.token,
                                  ca_file=server.ca_file, request_timeout=10))


async def _write_until_killed(api: ApiClient, k: int, acked: dict[str, tuple[int, int]],
                              history: dict[int, str]) -> None:
    """Create and update configmaps of writer ``k`` until the server is gone; each
    acknowledged write is recorded: name -> (value, resourceVersion), and version -> name."""
    rng = random.Random()
    while True:
        name = f"w{k}-{rng.randrange(6)}"
        try:
            if name not in acked:
                obj = await api.create("configmaps", {"metadata": {"name": name},
                                                      "data": {"n": "1"}}, "default")
            else:
                value = acked[name][0] + 1
                obj = await api.patch("configmaps", name, {"data": {"n": str(value)}},
                                      "default")
        except (ApiConnectionError, ApiError):
            return  # killed (a 409 from an unacknowledged create is the same moment)
        acked[name] = (int(obj["data"]["n"]), int(obj["metadata"]["resourceVersion"]))
        history[acked[name][1]] = name


async def _round(server: Server, acked: dict[str, tuple[int, int]],
                 history: dict[int, str]) -> int:
    """Writers until a kill at a random moment; returns the highest acknowledged version."""
    apis = [client(server) for _ in range(WRITERS)]
    try:
        writers = [asyncio.create_task(_write_until_killed(api, k, acked, history))
                   for k, api in enumerate(apis)]
        await asyncio.sleep(random.uniform(0.05, 0.6))
        server.kill(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    finally:
        for api in apis:
            await api.close()
    return max((rv for _, rv in acked.values()), default=0)


async def _check(server: Server, acked: dict[str, tuple[int, int]], before: int,
                 since: int, history: dict[int, str]) -> None:
    """Every acknowledged write survived; versions did not go back; a watch from ``since``
    replays the acknowledged changes after it (or 410)."""
    async with client(server) as api:
        items, rv = await api.list("configmaps", "default")
        assert int(rv) >= before, f"resourceVersion went back: {rv} < {before}"
        stored = {o["metadata"]["name"]: (int(o["data"]["n"]), int(o["metadata"][
            "resourceVersion"])) for o in items if "n" in (o.get("data") or {})}
        for name, (value, version) in acked.items():
            assert name in stored, f"acknowledged {name} lost"
            assert stored[name][0] >= value, f"{name}: acknowledged {value}, has {stored[name]}"
        seen: list[int] = []
        try:
            async for _, obj in api.watch("configmaps", "default", resource_version=str(since),
                                          timeout_seconds=1, allow_bookmarks=False):
                seen.append(int(obj["metadata"]["resourceVersion"]))
        except Expired:
            return
        assert seen == sorted(set(seen)), "the resumed watch repeated or reordered"
        wanted = sorted(v for v, name in history.items() if v > since)
        assert set(wanted) <= set(seen), f"the resumed watch missed {set(wanted) - set(seen)}"


def test_kill_9_under_writes_loses_nothing(tmp_path):
    data, home = str(tmp_path / "data"), str(tmp_path / "home")
    acked: dict[str, tuple[int, int]] = {}
    history: dict[int, str] = {}  # every acknowledged version -> name
    highest, started = 0, time.monotonic()
    for kill in range(KILLS):
        server = start_server(data, home)
        try:
            asyncio.run(_check(server, acked, highest, max(0, highest - 20), history))
            highest = asyncio.run(_round(server, acked, history))
        finally:
            server.kill(signal.SIGKILL)
    server = start_server(data, home)
    try:
        asyncio.run(_check(server, acked, highest, max(0, highest - 20), history))
    finally:
        server.kill()
    print(f"{KILLS} kills, {len(history)} acknowledged writes checked, "
          f"{time.monotonic() - started:.0f} s")
