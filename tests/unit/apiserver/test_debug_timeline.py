"""``GET /debug/pods/timeline`` on the real aiohttp app: a pod create is marked, the answer
filters by namespace / name, and only admins may read it."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from podling.apiserver.app import build_app, registry_stores
from podling.apiserver.auth import ADMIN, TokenAuthenticator, User
from podling.apiserver.namespaces import ensure_built_in
from podling.apiserver.nodeauth import node_user
from podling.storage.memory import MemoryStore
from podling.util import timeline

ADMIN_AUTH = {"Authorization": "Bearer admin-t"}
NODE_AUTH = {"Authorization": "Bearer node-t"}
SA_AUTH = {"Authorization": "Bearer sa-t"}
SA_USER = User("system:serviceaccount:default:default",
               ("system:serviceaccounts", "system:authenticated"))


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    stores = registry_stores(MemoryStore())
    await ensure_built_in(stores["namespaces"])
    app = build_app(stores, TokenAuthenticator({"admin-t": ADMIN, "node-t": node_user("n1"),
                                                "sa-t": SA_USER}))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


async def test_a_created_pod_has_its_api_create_marked(client: TestClient) -> None:
    created = []
    for name in ("tl-a", "tl-b"):
        response = await client.post("/api/v1/namespaces/default/pods", json=pod(name),
                                      headers=ADMIN_AUTH)
        assert response.status == 201, await response.text()
        created.append((await response.json())["metadata"]["uid"])
    timeline.mark(created[0], "agent.received")  # the process-wide recorder the agent marks
    response = await client.get("/debug/pods/timeline?namespace=default&name=tl-a",
                                headers=ADMIN_AUTH)
    assert response.status == 200
    body = await response.json()
    assert body["kind"] == "PodTimelineList"
    [item] = body["items"]
    assert (item["uid"], item["namespace"], item["name"], item["base"]) == (
        created[0], "default", "tl-a", "api.created")
    assert list(item["stages"]) == ["api.created", "agent.received"]
    assert item["stages"]["api.created"] == 0.0 and item["stages"]["agent.received"] >= 0.0
    everything = await (await client.get("/debug/pods/timeline", headers=ADMIN_AUTH)).json()
    assert set(created) <= {i["uid"] for i in everything["items"]}


@pytest.mark.parametrize("auth, user", [(NODE_AUTH, "system:node:n1"), (SA_AUTH, SA_USER.name)])
async def test_non_admins_are_refused(client: TestClient, auth: dict, user: str) -> None:
    response = await client.get("/debug/pods/timeline", headers=auth)
    assert response.status == 403
    body = await response.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert body["message"] == f'forbidden: User "{user}" cannot get path "/debug/pods/timeline"'
    assert (await client.get("/version", headers=auth)).status == 200  # other paths: allowed


async def test_anonymous_is_unauthorized(client: TestClient) -> None:
    assert (await client.get("/debug/pods/timeline")).status == 401
