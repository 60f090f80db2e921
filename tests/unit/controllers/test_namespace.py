"""The namespace controller against a real in-process API server: a deleted namespace is
emptied (pods gracefully), then finalized and gone; other namespaces are left alone."""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Awaitable, Callable

import pytest
from builders import make_pod

from podling.api.errors import ApiError
from podling.client import ApiClient
from podling.controllers.namespace import NamespaceController, namespaced_contents

WAIT = 5.0  # seconds before a condition that should hold soon counts as a failure


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT}s waiting for {what}")
        await asyncio.sleep(0.02)


def gone(client: ApiClient, resource: str, name: str, ns: str | None = None
         ) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            await client.get(resource, name, ns)
        except ApiError as exc:
            assert exc.code == 404
            return True
        return False
    return check


@pytest.fixture
async def controller(client: ApiClient) -> AsyncIterator[NamespaceController]:
    running = NamespaceController(client, retry_seconds=0.02)
    running.start()
    yield running
    await running.stop()
    await running.stop()  # idempotent


def test_it_empties_every_namespaced_listable_resource() -> None:
    assert sorted(r.name for r in namespaced_contents()) == [
        "configmaps", "events", "leases", "pods", "rolebindings", "roles", "secrets",
        "serviceaccounts"]


async def test_a_deleted_namespace_is_emptied_finalized_and_gone(
        client: ApiClient, controller: NamespaceController) -> None:
    for name in ("team", "keep"):
        await client.create("namespaces", namespace(name))
        await client.create("pods", make_pod("a", None).bare().build(), name)
    await client.create("leases", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "metadata": {"name": "l"}, "spec": {}}, "team")
    await client.create("events", {"apiVersion": "v1", "kind": "Event",
                                   "metadata": {"name": "e"},
                                   "involvedObject": {"kind": "Pod", "name": "a",
                                                      "namespace": "team"}}, "team")
    marked = await client.delete("namespaces", "team")
    assert marked["status"]["phase"] == "Terminating"

    await eventually(gone(client, "namespaces", "team"), "namespace team to go")
    for resource in ("pods", "leases", "events"):
        assert (await client.list(resource, "team"))[0] == []
    assert (await client.get("pods", "a", "keep"))["metadata"]["name"] == "a"
    assert (await client.get("namespaces", "keep"))["status"]["phase"] == "Active"


async def test_it_waits_for_terminating_pods(client: ApiClient,
                                            controller: NamespaceController) -> None:
    await client.create("namespaces", namespace("team"))
    await client.create("pods", make_pod("bound", None).bare().node("n1").build(), "team")
    await client.delete("namespaces", "team")

    async def pod_terminating() -> bool:
        found = await client.get("pods", "bound", "team")
        return bool(found["metadata"].get("deletionTimestamp"))

    await eventually(pod_terminating, "the bound pod to be deleted gracefully")
    await asyncio.sleep(0.2)  # several drain passes
    ns = await client.get("namespaces", "team")
    assert ns["status"]["phase"] == "Terminating"
    assert ns["spec"]["finalizers"] == ["kubernetes"]

    await client.delete("pods", "bound", "team", grace_period=0)  # what the agent does
    await eventually(gone(client, "namespaces", "team"), "namespace team to go")


async def test_it_picks_up_namespaces_terminating_before_it_started(client: ApiClient) -> None:
    await client.create("namespaces", namespace("team"))
    await client.create("pods", make_pod("web", None).bare().build(), "team")
    await client.delete("namespaces", "team")
    late = NamespaceController(client, retry_seconds=0.02)
    late.start()
    try:
        await eventually(gone(client, "namespaces", "team"), "namespace team to go")
    finally:
        await late.stop()


async def test_new_content_is_refused_while_terminating(client: ApiClient) -> None:
    await client.create("namespaces", namespace("team"))
    await client.create("pods", make_pod("bound", None).bare().node("n1").build(), "team")
    await client.delete("namespaces", "team")
    with pytest.raises(ApiError) as caught:
        await client.create("pods", make_pod("late", None).bare().build(), "team")
    assert caught.value.code == 403
    assert caught.value.message == ("unable to create new content in namespace team because "
                                    "it is being terminated")
