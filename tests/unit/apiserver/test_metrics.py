"""metrics.k8s.io through the in-process app (memory storage), with fake nodes: an aiohttp
test server answering /stats/summary, a node whose API does not answer, a NotReady node."""

from __future__ import annotations

import socket
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from builders import NodeBuilder, make_node, make_pod

from podling.apiserver import discovery
from podling.apiserver.app import build_app, registry_stores
from podling.apiserver.auth import ADMIN, TokenAuthenticator, User
from podling.apiserver.metrics import cpu_quantity, go_duration, memory_quantity
from podling.apiserver.namespaces import ensure_built_in
from podling.storage.memory import MemoryStore

TOKEN, NODE_TOKEN, KUBELET_TOKEN = "t", "node-t", "kubelet-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
METRICS = "/apis/metrics.k8s.io/v1beta1"
T = "2026-01-01T00:00:00Z"


def cpu(nanocores: int | None, window: float = 1.5) -> dict:
    out: dict[str, Any] = {"time": T, "usageCoreNanoSeconds": 10**12}
    if nanocores is not None:
        out.update(usageNanoCores=nanocores, windowSeconds=window)
    return out


def container(name: str, nanocores: int | None, working_set: int) -> dict:
    return {"name": name, "cpu": cpu(nanocores),
            "memory": {"time": T, "usageBytes": working_set * 2,
                       "workingSetBytes": working_set}}


SUMMARY = {
    "node": {"nodeName": "n1", "cpu": cpu(1_250_000_000, 2.0),
             "memory": {"time": T, "workingSetBytes": 2 << 30, "usageBytes": 3 << 30,
                        "availableBytes": 5 << 30}},
    "pods": [
        {"podRef": {"name": "web", "namespace": "default", "uid": "UID-web"},
         "containers": [container("busy", 987_654_321, 1_310_720),
                        container("idle", 12_000, 4096)]},
        {"podRef": {"name": "db", "namespace": "prod", "uid": "UID-db"},
         "containers": [container("db", 5_000_000, 8 << 20)]},
        {"podRef": {"name": "young", "namespace": "default", "uid": "UID-young"},
         "containers": [container("c", None, 4096)]},  # no rate yet
        {"podRef": {"name": "old", "namespace": "default", "uid": "UID-of-a-deleted-pod"},
         "containers": [container("c", 1, 4096)]},
    ]}


@pytest.fixture
async def node_api() -> AsyncIterator[tuple[str, list[str]]]:
    """A fake node API: its URL and the Authorization headers it received."""
    seen: list[str] = []

    async def summary(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response(SUMMARY)

    app = web.Application()
    app.router.add_get("/stats/summary", summary)
    server = TestServer(app)
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", seen
    await server.close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def node(name: str, url: str) -> NodeBuilder:
    """A Node with only a name and its node API address (the agent's annotation)."""
    return make_node(name).bare().annotations(**{"podling.io/node-api": url})


@pytest.fixture
async def client(node_api) -> AsyncIterator[TestClient]:
    url, _ = node_api
    stores = registry_stores(MemoryStore())
    await ensure_built_in(stores["namespaces"])
    await stores["namespaces"].create(None, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "prod"}})
    await stores["nodes"].create(None, node("n1", url).labels(zone="a").ready().build())
    await stores["nodes"].create(None, node("n2", dead_url()).labels(zone="b").ready().build())
    await stores["nodes"].create(None, node("n3", url).labels().ready("Unknown").build())
    for name, ns, uid, node_name, labels in [
            ("web", "default", "UID-web", "n1", {"app": "web", "tier": "front"}),
            ("db", "prod", "UID-db", "n1", {"app": "db"}),
            ("young", "default", "UID-young", "n1", {"app": "web"}),
            ("old", "default", "UID-new", "n1", {}),
            ("away", "default", "UID-away", "n2", {"app": "web"})]:
        # straight into storage: the registry would give the pod a uid of its own
        pod = make_pod(name, ns).bare().uid(uid).node(node_name).labels(**labels).build()
        await stores["pods"].storage.create(stores["pods"].key(ns, name), pod)
    node_user = User("system:node:n1", ("system:nodes", "system:authenticated"))
    app = build_app(stores, TokenAuthenticator({TOKEN: ADMIN, NODE_TOKEN: node_user}),
                    node_token=lambda name: f"{KUBELET_TOKEN}-{name}")
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def get(client: TestClient, path: str, status: int = 200, token: str = TOKEN) -> Any:
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status == status, await response.text()
    return await response.json(content_type=None)


# -- quantities ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, text", [(123456, "123456n"), (987_654_321, "987654321n"),
                                         (0, "0"), (5_000_000, "5m"), (1_000_000_000, "1")])
def test_cpu_quantity(value: int, text: str) -> None:
    assert cpu_quantity(value) == text


@pytest.mark.parametrize("value, text", [(1_310_720, "1280Ki"), (4096, "4Ki"),
                                         (8 << 20, "8Mi"), (1000, "1k"), (1025, "1025")])
def test_memory_quantity(value: int, text: str) -> None:
    assert memory_quantity(value) == text


@pytest.mark.parametrize("seconds, text", [(1.5, "1.5s"), (20.064, "20.064s"), (15.0, "15s"),
                                           (0.5, "500ms"), (0.0, "0ms")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# -- discovery ----------------------------------------------------------------------------


async def test_listed_in_aggregated_and_legacy_discovery(client: TestClient) -> None:
    response = await client.get("/apis", headers={**AUTH, "Accept": discovery.AGGREGATED_V2})
    body = await response.json(content_type=None)
    [group] = [i for i in body["items"] if i["metadata"].get("name") == "metrics.k8s.io"]
    resources = {r["resource"]: r for r in group["versions"][0]["resources"]}
    assert resources["pods"]["responseKind"]["kind"] == "PodMetrics"
    assert (resources["pods"]["scope"], resources["pods"]["verbs"]) == ("Namespaced",
                                                                        ["get", "list"])
    assert (resources["nodes"]["scope"], resources["nodes"]["verbs"]) == ("Cluster",
                                                                          ["get", "list"])
    legacy = await get(client, "/apis")
    [entry] = [g for g in legacy["groups"] if g["name"] == "metrics.k8s.io"]
    assert entry["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    listed = await get(client, METRICS)
    assert {r["name"]: r["kind"] for r in listed["resources"]} == {
        "pods": "PodMetrics", "nodes": "NodeMetrics"}


async def test_core_pods_and_nodes_are_untouched(client: TestClient) -> None:
    assert (await get(client, "/api/v1/namespaces/default/pods/web"))["kind"] == "Pod"
    assert (await get(client, "/api/v1/nodes"))["kind"] == "NodeList"


# -- pods ---------------------------------------------------------------------------------


async def test_get_pod_metrics(client: TestClient, node_api) -> None:
    body = await get(client, f"{METRICS}/namespaces/default/pods/web")
    assert (body["kind"], body["apiVersion"]) == ("PodMetrics", "metrics.k8s.io/v1beta1")
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"], meta["labels"]) == (
        "web", "default", {"app": "web", "tier": "front"})
    assert meta["creationTimestamp"].endswith("Z")
    assert (body["timestamp"], body["window"]) == (T, "1.5s")
    assert body["containers"] == [
        {"name": "busy", "usage": {"cpu": "987654321n", "memory": "1280Ki"}},
        {"name": "idle", "usage": {"cpu": "12u", "memory": "4Ki"}}]
    _, seen = node_api
    assert seen == [f"Bearer {KUBELET_TOKEN}-n1"]


async def test_list_pod_metrics_in_a_namespace(client: TestClient) -> None:
    body = await get(client, f"{METRICS}/namespaces/default/pods")
    assert body["kind"] == "PodMetricsList"
    # young: no CPU rate yet; old: the node's pod has another uid; away: node not answering
    assert [i["metadata"]["name"] for i in body["items"]] == ["web"]


async def test_list_all_namespaces(client: TestClient) -> None:
    body = await get(client, f"{METRICS}/pods")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]] == [
        ("default", "web"), ("prod", "db")]


@pytest.mark.parametrize("query, names", [
    ("labelSelector=app%3Dweb", ["web"]),
    ("labelSelector=app%3Ddb", ["db"]),
    ("labelSelector=app+in+(web,db),tier!%3Dfront", ["db"]),
    ("fieldSelector=metadata.name%3Ddb", ["db"]),
    ("fieldSelector=metadata.namespace%3Ddefault", ["web"]),
])
async def test_list_selectors(client: TestClient, query: str, names: list[str]) -> None:
    body = await get(client, f"{METRICS}/pods?{query}")
    assert [i["metadata"]["name"] for i in body["items"]] == names


async def test_bad_selectors_are_400(client: TestClient) -> None:
    await get(client, f"{METRICS}/pods?labelSelector=a%20in", 400)
    body = await get(client, f"{METRICS}/pods?fieldSelector=spec.nodeName%3Dn1", 400)
    assert "not a known field selector" in body["message"]


@pytest.mark.parametrize("path, message", [
    ("namespaces/default/pods/missing", 'podmetrics.metrics.k8s.io "missing" not found'),
    ("namespaces/default/pods/young", 'podmetrics.metrics.k8s.io "young" not found'),
    ("namespaces/default/pods/away", 'podmetrics.metrics.k8s.io "away" not found'),
    ("nodes/missing", 'nodemetrics.metrics.k8s.io "missing" not found'),
    ("nodes/n2", 'nodemetrics.metrics.k8s.io "n2" not found'),
    ("nodes/n3", 'nodemetrics.metrics.k8s.io "n3" not found'),
])
async def test_not_found(client: TestClient, path: str, message: str) -> None:
    body = await get(client, f"{METRICS}/{path}", 404)
    assert (body["kind"], body["reason"], body["message"], body["code"]) == (
        "Status", "NotFound", message, 404)
    assert body["details"]["group"] == "metrics.k8s.io"


# -- nodes --------------------------------------------------------------------------------


async def test_node_metrics(client: TestClient) -> None:
    body = await get(client, f"{METRICS}/nodes/n1")
    assert (body["kind"], body["metadata"]["name"], body["metadata"]["labels"]) == (
        "NodeMetrics", "n1", {"zone": "a"})
    assert "namespace" not in body["metadata"]
    assert (body["window"], body["usage"]) == ("2s", {"cpu": "1250m", "memory": "2Gi"})


async def test_list_node_metrics_skips_silent_and_not_ready_nodes(client: TestClient) -> None:
    body = await get(client, f"{METRICS}/nodes")
    assert body["kind"] == "NodeMetricsList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["n1"]
    assert (await get(client, f"{METRICS}/nodes?labelSelector=zone%3Db"))["items"] == []


# -- verbs and who may --------------------------------------------------------------------


async def test_only_get_and_list(client: TestClient) -> None:
    response = await client.delete(f"{METRICS}/namespaces/default/pods/web", headers=AUTH)
    assert response.status == 405
    response = await client.get(f"{METRICS}/pods?watch=true", headers=AUTH)
    assert response.status == 405


async def test_a_node_may_not_read_metrics(client: TestClient) -> None:
    body = await get(client, f"{METRICS}/namespaces/default/pods", 403, token=NODE_TOKEN)
    assert body["message"] == (
        'pods.metrics.k8s.io is forbidden: User "system:node:n1" cannot list resource "pods" '
        'in API group "metrics.k8s.io" in the namespace "default"')
    await get(client, f"{METRICS}/nodes/n1", 403, token=NODE_TOKEN)
