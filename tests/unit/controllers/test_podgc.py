"""The pod GC controller against a real in-process API server and a fake clock: pods bound
to a node that does not exist are deleted after the quarantine (Kubernetes' PodGC)."""

from __future__ import annotations

import asyncio

import pytest
from builders import make_node, make_pod

from podling.api.errors import ApiError
from podling.client import ApiClient
from podling.controllers.podgc import PodGCController
from podling.util.clock import FakeClock

QUARANTINE = 40.0


@pytest.fixture
async def env(client: ApiClient):
    clock = FakeClock()
    return client, clock, PodGCController(client, clock=clock)


async def create_pod(client: ApiClient, name: str, node: str, phase: str = "") -> dict:
    pod = await client.create("pods", make_pod(name).node(node).bare().build(), "default")
    if phase:
        pod["status"]["phase"] = phase
        pod = await client.update_status("pods", pod)
    return pod


async def names(client: ApiClient) -> list[str]:
    pods, _ = await client.list("pods", "default")
    return sorted(p["metadata"]["name"] for p in pods)


async def test_pods_of_a_missing_node_are_deleted_after_the_quarantine(env) -> None:
    client, clock, gc = env
    await client.create("nodes", make_node("here").bare().build())
    await create_pod(client, "kept", "here")
    await create_pod(client, "orphan", "gone")
    await create_pod(client, "done", "gone", phase="Succeeded")
    await gc.sync()  # first seen missing: quarantined
    clock.advance(QUARANTINE - 1)
    await gc.sync()
    assert await names(client) == ["done", "kept", "orphan"]
    clock.advance(1)
    await gc.sync()
    assert await names(client) == ["kept"]


async def test_the_orphan_is_failed_with_disruption_target_before_the_delete(env) -> None:
    client, clock, gc = env
    pod = await create_pod(client, "orphan", "gone")
    seen: list[dict] = []
    original = client.delete

    async def spy(resource, name, namespace=None, **kw):
        seen.append(await client.get("pods", name, namespace))
        return await original(resource, name, namespace, **kw)

    client.delete = spy  # type: ignore[method-assign]
    await gc.sync()
    clock.advance(QUARANTINE)
    await gc.sync()
    [before] = seen
    assert before["metadata"]["uid"] == pod["metadata"]["uid"]
    assert before["status"]["phase"] == "Failed"
    [cond] = [c for c in before["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True", "DeletionByPodGC", "PodGC: node no longer exists")
    with pytest.raises(ApiError) as err:
        await client.get("pods", "orphan", "default")
    assert err.value.code == 404


async def test_a_node_that_appears_during_the_quarantine_keeps_its_pods(env) -> None:
    client, clock, gc = env
    await create_pod(client, "p", "late")
    await gc.sync()
    await client.create("nodes", make_node("late").bare().build())
    clock.advance(QUARANTINE)
    await gc.sync()
    await client.delete("nodes", "late")
    await gc.sync()  # missing again: a new quarantine starts now
    clock.advance(QUARANTINE - 1)
    await gc.sync()
    assert await names(client) == ["p"]
    clock.advance(1)
    await gc.sync()
    assert await names(client) == []


async def test_unbound_pods_are_left_alone_and_the_loop_stops(env) -> None:
    client, clock, gc = env
    await client.create("pods", make_pod("pending").bare().build(), "default")
    gc.start()
    await asyncio.sleep(0.1)
    clock.advance(3 * QUARANTINE)
    await asyncio.sleep(0.1)
    await gc.stop()
    await gc.stop()
    assert await names(client) == ["pending"]
