"""pods/eviction through the in-process app (memory storage, aiohttp test client)."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from builders import make_pod
from registry_builders import eviction_of

from podling.apiserver.app import build_app, registry_stores
from podling.apiserver.auth import ADMIN, TokenAuthenticator
from podling.apiserver.namespaces import ensure_built_in
from podling.storage.memory import MemoryStore

TOKEN = "t"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PODS = "/api/v1/namespaces/default/pods"
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "code": 201}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    stores = registry_stores(MemoryStore())
    await ensure_built_in(stores["namespaces"])
    app = build_app(stores, TokenAuthenticator({TOKEN: ADMIN}))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def create_pod(client: TestClient, name: str, node: str | None = "n1") -> dict:
    """POST a bare pod ``name``, bound to ``node`` unless it is None."""
    pod = make_pod(name, namespace=None).bare()
    if node:
        pod.node(node)
    response = await client.post(PODS, json=pod.build(), headers=AUTH)
    assert response.status == 201, await response.text()
    return await response.json()


async def evict(client: TestClient, name: str, body: dict, status: int = 201,
                query: str = "") -> dict:
    response = await client.post(f"{PODS}/{name}/eviction{query}", json=body, headers=AUTH)
    assert response.status == status, await response.text()
    return await response.json()


async def get_pod(client: TestClient, name: str) -> tuple[int, dict]:
    response = await client.get(f"{PODS}/{name}", headers=AUTH)
    return response.status, await response.json()


async def test_evicting_a_bound_pod_deletes_it_gracefully(client: TestClient) -> None:
    await create_pod(client, "web")
    assert await evict(client, "web", eviction_of("web")) == SUCCESS
    status, pod = await get_pod(client, "web")
    assert status == 200
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    [target] = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (target["status"], target["reason"], target["message"]) == \
        ("True", "EvictionByEvictionAPI", "Eviction API: evicting")


async def test_grace_period_zero_removes_the_pod_at_once(client: TestClient) -> None:
    await create_pod(client, "web")
    assert await evict(client, "web", eviction_of("web", gracePeriodSeconds=0)) == SUCCESS
    assert (await get_pod(client, "web"))[0] == 404


async def test_an_unbound_pod_goes_at_once(client: TestClient) -> None:
    await create_pod(client, "pending", node=None)
    await evict(client, "pending", eviction_of("pending"))
    assert (await get_pod(client, "pending"))[0] == 404


async def test_a_terminating_pod_answers_201_too(client: TestClient) -> None:
    await create_pod(client, "web")
    await evict(client, "web", eviction_of("web", gracePeriodSeconds=20))
    assert await evict(client, "web", eviction_of("web")) == SUCCESS
    _, pod = await get_pod(client, "web")
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 20  # a longer grace never wins


async def test_a_missing_pod_is_404(client: TestClient) -> None:
    body = await evict(client, "nope", eviction_of("nope"), status=404)
    assert (body["kind"], body["reason"]) == ("Status", "NotFound")
    assert body["message"] == 'pods "nope" not found'


async def test_preconditions_are_honoured(client: TestClient) -> None:
    pod = await create_pod(client, "web")
    body = await evict(client, "web", eviction_of("web", preconditions={"uid": "other"}),
                       status=409)
    assert body["reason"] == "Conflict"
    assert (await get_pod(client, "web"))[1]["metadata"].get("deletionTimestamp") is None
    rv = pod["metadata"]["resourceVersion"]
    await evict(client, "web", eviction_of("web", gracePeriodSeconds=0, preconditions={
        "uid": pod["metadata"]["uid"], "resourceVersion": rv}))
    assert (await get_pod(client, "web"))[0] == 404


async def test_a_stale_resource_version_is_409(client: TestClient) -> None:
    await create_pod(client, "web")
    await evict(client, "web", eviction_of("web", preconditions={"resourceVersion": "1"}),
                status=409)


async def test_dry_run_changes_nothing(client: TestClient) -> None:
    before = await create_pod(client, "web")
    await evict(client, "web", eviction_of("web", gracePeriodSeconds=0), query="?dryRun=All")
    await evict(client, "web", eviction_of("web", gracePeriodSeconds=0, dryRun=["All"]))
    status, after = await get_pod(client, "web")
    assert status == 200
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_the_name_must_match_the_url(client: TestClient) -> None:
    await create_pod(client, "web")
    body = await evict(client, "web", eviction_of("other"), status=400)
    assert body["message"] == "name in URL does not match name in Eviction object"


@pytest.mark.parametrize("body,fragment", [
    ({"apiVersion": "v1", "kind": "Eviction", "metadata": {"name": "web"}},
     "the API version in the data (v1) does not match the expected API version (policy/v1)"),
    ({"apiVersion": "policy/v1", "kind": "Pod", "metadata": {"name": "web"}},
     "the kind in the data (Pod) does not match the expected kind (Eviction)"),
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web"},
      "deleteOptions": {"gracePeriodSeconds": "soon"}}, "gracePeriodSeconds"),
])
async def test_bad_bodies_are_400(client: TestClient, body: dict, fragment: str) -> None:
    await create_pod(client, "web")
    answer = await evict(client, "web", body, status=400)
    assert fragment in answer["message"]


async def test_strict_decoding_rejects_unknown_fields(client: TestClient) -> None:
    await create_pod(client, "web")
    body = {**eviction_of("web"), "bogus": 1}
    answer = await evict(client, "web", body, status=400, query="?fieldValidation=Strict")
    assert 'unknown field "bogus"' in answer["message"]
    response = await client.post(f"{PODS}/web/eviction", json=body, headers=AUTH)
    assert response.status == 201
    assert 'unknown field \\"bogus\\"' in response.headers.get("Warning", "")


async def test_only_post_is_served(client: TestClient) -> None:
    await create_pod(client, "web")
    response = await client.get(f"{PODS}/web/eviction", headers=AUTH)
    assert response.status == 405


async def test_discovery_advertises_policy_v1_eviction(client: TestClient) -> None:
    response = await client.get("/api/v1", headers=AUTH)
    resources = {r["name"]: r for r in (await response.json())["resources"]}
    assert resources["pods/eviction"] == {
        "name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
        "version": "v1", "kind": "Eviction", "verbs": ["create"]}
