"""Discovery and the basic wire contract, against the real aiohttp app in-process.

The app is built exactly as the server builds it (memory storage, one admin token) and
exercised over HTTP with aiohttp's test client.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from podling.apiserver import discovery
from podling.apiserver.app import build_app, registry_stores
from podling.apiserver.auth import ADMIN, TokenAuthenticator
from podling.apiserver.namespaces import ensure_built_in
from podling.storage.memory import MemoryStore

TOKEN = "t"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json")
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    stores = registry_stores(MemoryStore())
    await ensure_built_in(stores["namespaces"])
    app = build_app(stores, TokenAuthenticator({TOKEN: ADMIN}))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def get_json(client: TestClient, path: str, status: int = 200,
                   headers: dict[str, str] | None = None) -> Any:
    response = await client.get(path, headers={**AUTH, **(headers or {})})
    assert response.status == status, await response.text()
    return await response.json(content_type=None)


def by_name(entries: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {entry[key]: entry for entry in entries}


# --- aggregated discovery --------------------------------------------------------------------

@pytest.mark.parametrize("accept", [discovery.AGGREGATED_V2, KUBECTL_DISCOVERY_ACCEPT])
async def test_aggregated_core_discovery(client: TestClient, accept: str) -> None:
    response = await client.get("/api", headers={**AUTH, "Accept": accept})
    assert response.status == 200
    assert response.headers["Content-Type"] == discovery.AGGREGATED_V2
    body = await response.json(content_type=None)
    assert (body["kind"], body["apiVersion"]) == ("APIGroupDiscoveryList",
                                                  "apidiscovery.k8s.io/v2")
    [core] = body["items"]
    assert "name" not in core["metadata"]
    [v1] = core["versions"]
    assert (v1["version"], v1["freshness"]) == ("v1", "Current")
    resources = by_name(v1["resources"], "resource")
    assert set(resources) == {"pods", "nodes", "namespaces", "configmaps", "secrets", "events",
                              "bindings", "serviceaccounts"}
    assert resources["configmaps"]["shortNames"] == ["cm"]
    accounts = resources["serviceaccounts"]
    assert (accounts["shortNames"], accounts["singularResource"]) == (["sa"], "serviceaccount")
    assert accounts["subresources"] == [{
        "subresource": "token", "verbs": ["create"],
        "responseKind": {"group": "authentication.k8s.io", "version": "v1",
                         "kind": "TokenRequest"}}]
    assert "categories" not in resources["configmaps"] and "shortNames" not in resources["secrets"]
    assert (resources["secrets"]["scope"], resources["secrets"]["singularResource"]) == \
        ("Namespaced", "secret")
    pods = resources["pods"]
    assert pods["shortNames"] == ["po"]
    assert pods["categories"] == ["all"]
    assert pods["scope"] == "Namespaced"
    assert pods["singularResource"] == "pod"
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert "watch" in pods["verbs"] and "deletecollection" in pods["verbs"]
    subresources = by_name(pods["subresources"], "subresource")
    assert set(subresources) == {"status", "binding", "eviction", "ephemeralcontainers", "log",
                                 "exec", "attach", "portforward"}
    assert subresources["ephemeralcontainers"]["verbs"] == ["get", "patch", "update"]
    assert subresources["binding"]["verbs"] == ["create"]
    assert subresources["binding"]["responseKind"]["kind"] == "Binding"
    assert subresources["status"]["verbs"] == ["get", "patch", "update"]
    assert resources["nodes"]["scope"] == "Cluster"
    assert "deletecollection" not in resources["namespaces"]["verbs"]


async def test_aggregated_v2beta1_is_answered_in_its_own_version(client: TestClient) -> None:
    response = await client.get("/apis", headers={**AUTH,
                                                  "Accept": discovery.AGGREGATED_V2BETA1})
    assert response.headers["Content-Type"] == discovery.AGGREGATED_V2BETA1
    assert (await response.json(content_type=None))["apiVersion"] == \
        "apidiscovery.k8s.io/v2beta1"


async def test_aggregated_group_discovery(client: TestClient) -> None:
    body = await get_json(client, "/apis", headers={"Accept": discovery.AGGREGATED_V2})
    groups = {item["metadata"]["name"]: item for item in body["items"]}
    assert set(groups) == {"coordination.k8s.io", "authorization.k8s.io", "metrics.k8s.io",
                           "authentication.k8s.io", "rbac.authorization.k8s.io"}
    whoami, tokens = groups["authentication.k8s.io"]["versions"][0]["resources"]
    assert (whoami["resource"], whoami["verbs"], whoami["scope"]) == \
        ("selfsubjectreviews", ["create"], "Cluster")
    assert (tokens["resource"], tokens["verbs"], tokens["scope"]) == \
        ("tokenreviews", ["create"], "Cluster")
    [leases] = groups["coordination.k8s.io"]["versions"][0]["resources"]
    assert (leases["resource"], leases["scope"]) == ("leases", "Namespaced")
    assert leases["responseKind"] == {"group": "coordination.k8s.io", "version": "v1",
                                      "kind": "Lease"}
    authorization = groups["authorization.k8s.io"]["versions"][0]["resources"]
    assert [(r["resource"], r["verbs"], r["scope"]) for r in authorization] == [
        ("selfsubjectaccessreviews", ["create"], "Cluster"),
        ("selfsubjectrulesreviews", ["create"], "Cluster"),
        ("subjectaccessreviews", ["create"], "Cluster"),
        ("localsubjectaccessreviews", ["create"], "Namespaced")]
    rbac = groups["rbac.authorization.k8s.io"]["versions"][0]["resources"]
    assert {(r["resource"], r["scope"]) for r in rbac} == {
        ("roles", "Namespaced"), ("rolebindings", "Namespaced"), ("clusterroles", "Cluster"),
        ("clusterrolebindings", "Cluster")}


# --- legacy discovery ------------------------------------------------------------------------

async def test_legacy_api_versions(client: TestClient) -> None:
    response = await client.get("/api", headers=AUTH)
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert (body["kind"], body["versions"]) == ("APIVersions", ["v1"])


async def test_legacy_core_resource_list(client: TestClient) -> None:
    body = await get_json(client, "/api/v1")
    assert (body["kind"], body["groupVersion"]) == ("APIResourceList", "v1")
    resources = by_name(body["resources"], "name")
    assert {"pods", "pods/status", "pods/binding", "pods/eviction", "pods/ephemeralcontainers",
            "pods/log", "pods/exec",
            "pods/attach", "pods/portforward", "nodes",
            "nodes/status", "namespaces",
            "namespaces/status", "namespaces/finalize", "configmaps", "secrets", "events",
            "bindings", "serviceaccounts", "serviceaccounts/token"} == set(resources)
    token = resources["serviceaccounts/token"]
    assert (token["kind"], token["group"], token["version"], token["verbs"]) == \
        ("TokenRequest", "authentication.k8s.io", "v1", ["create"])
    assert resources["secrets"]["verbs"] == ["create", "delete", "deletecollection", "get",
                                             "list", "patch", "update", "watch"]
    pods = resources["pods"]
    assert (pods["kind"], pods["namespaced"], pods["singularName"]) == ("Pod", True, "pod")
    assert (pods["shortNames"], pods["categories"]) == (["po"], ["all"])
    assert resources["pods/binding"]["kind"] == "Binding"
    assert resources["namespaces/finalize"]["verbs"] == ["update"]
    assert resources["nodes"]["namespaced"] is False


async def test_legacy_group_list(client: TestClient) -> None:
    body = await get_json(client, "/apis")
    assert body["kind"] == "APIGroupList"
    groups = by_name(body["groups"], "name")
    assert set(groups) == {"coordination.k8s.io", "authorization.k8s.io", "metrics.k8s.io",
                           "authentication.k8s.io", "rbac.authorization.k8s.io"}
    lease_group = groups["coordination.k8s.io"]
    assert lease_group["versions"] == [{"groupVersion": "coordination.k8s.io/v1",
                                        "version": "v1"}]
    assert lease_group["preferredVersion"] == lease_group["versions"][0]


async def test_group_and_group_version(client: TestClient) -> None:
    group = await get_json(client, "/apis/coordination.k8s.io")
    assert (group["kind"], group["name"]) == ("APIGroup", "coordination.k8s.io")
    resources = await get_json(client, "/apis/coordination.k8s.io/v1")
    assert [r["name"] for r in resources["resources"]] == ["leases"]


@pytest.mark.parametrize("path", ["/apis/apps", "/apis/apps/v1", "/api/v2",
                                  "/apis/coordination.k8s.io/v2"])
async def test_unknown_groups_are_404_status(client: TestClient, path: str) -> None:
    body = await get_json(client, path, status=404)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)


# --- authentication and public endpoints -----------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic dDp0"}],
                         ids=["none", "wrong-token", "basic"])
@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/pods", "/api", "/apis",
                                  "/openapi/v3"])
async def test_unauthenticated_requests_are_401(client: TestClient, path: str,
                                                headers: dict[str, str]) -> None:
    response = await client.get(path, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json()
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_version_needs_no_token(client: TestClient) -> None:
    response = await client.get("/version")
    assert response.status == 200
    body = await response.json()
    assert (body["major"], body["minor"]) == ("1", "32")
    assert body["gitVersion"].startswith("v1.32.")


async def test_version_with_a_trailing_slash_needs_no_token(client: TestClient) -> None:
    """kr8s asks `/version/` first: Kubernetes serves it (a go-restful GET("/") route) and
    system:public-info-viewer lets anyone read it."""
    response = await client.get("/version/")
    assert response.status == 200
    assert (await response.json())["minor"] == "32"


@pytest.mark.parametrize(("path", "kind"), [
    ("/api/", "APIVersions"), ("/apis/", "APIGroupList"), ("/api/v1/", "APIResourceList"),
    ("/apis/coordination.k8s.io/", "APIGroup"),
    ("/apis/coordination.k8s.io/v1/", "APIResourceList")])
async def test_discovery_with_a_trailing_slash(client: TestClient, path: str,
                                               kind: str) -> None:
    """kr8s builds its discovery URLs as `/api/`, `/apis/`: the same documents as without
    the slash (and the same 401 without a token)."""
    assert (await get_json(client, path))["kind"] == kind
    assert await get_json(client, path) == await get_json(client, path.rstrip("/"))
    assert (await client.get(path)).status == 401


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
async def test_health_needs_no_token(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert (response.status, await response.text()) == (200, "ok")


# --- errors as Status ------------------------------------------------------------------------

async def test_missing_object_is_a_not_found_status(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/namespaces/default/pods/nope", status=404)
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'pods "nope" not found', "reason": "NotFound",
                    "details": {"name": "nope", "kind": "pods"}, "code": 404}


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/widgets", "/nothing/here",
                                  "/api/v1/namespaces/default/pods/web/proxy"])
async def test_unknown_paths_are_a_not_found_status(client: TestClient, path: str) -> None:
    body = await get_json(client, path, status=404)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == \
        ("Status", "Failure", "NotFound", 404)
    assert body["message"] == "the server could not find the requested resource"


async def test_invalid_pod_is_a_422_status_with_causes(client: TestClient) -> None:
    bad = {**POD, "spec": {"containers": [{"name": "c"}]}}
    response = await client.post("/api/v1/namespaces/default/pods", json=bad, headers=AUTH)
    assert response.status == 422
    body = await response.json()
    assert (body["reason"], body["details"]["causes"]) == ("Invalid", [
        {"reason": "FieldValueRequired", "message": "Required value",
         "field": "spec.containers[0].image"}])


async def test_protobuf_only_accept_is_406(client: TestClient) -> None:
    response = await client.get("/api/v1/namespaces/default/pods", headers={
        **AUTH, "Accept": "application/vnd.kubernetes.protobuf"})
    assert response.status == 406
    assert (await response.json())["reason"] == "NotAcceptable"


async def test_protobuf_body_is_415(client: TestClient) -> None:
    response = await client.post("/api/v1/namespaces/default/pods", data=b"k8s\x00", headers={
        **AUTH, "Content-Type": "application/vnd.kubernetes.protobuf"})
    assert response.status == 415


# --- a round trip ----------------------------------------------------------------------------

async def test_create_then_get_and_list(client: TestClient) -> None:
    response = await client.post("/api/v1/namespaces/default/pods", json=POD, headers=AUTH)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["metadata"]["namespace"] == "default"
    assert created["status"]["phase"] == "Pending"

    got = await get_json(client, "/api/v1/namespaces/default/pods/web")
    assert got == created
    listed = await get_json(client, "/api/v1/namespaces/default/pods")
    assert (listed["kind"], listed["apiVersion"]) == ("PodList", "v1")
    assert listed["items"] == [created]
    assert int(listed["metadata"]["resourceVersion"]) >= int(
        created["metadata"]["resourceVersion"])
    everywhere = await get_json(client, "/api/v1/pods")
    assert [p["metadata"]["name"] for p in everywhere["items"]] == ["web"]
    assert (await get_json(client, "/api/v1/namespaces/kube-system/pods"))["items"] == []
    selected = await get_json(client, "/api/v1/pods?labelSelector=app%3Ddb")
    assert selected["items"] == []


async def test_unknown_fields_warn_by_default(client: TestClient) -> None:
    pod = {**POD, "spec": {**POD["spec"], "bogus": True}}
    response = await client.post("/api/v1/namespaces/default/pods", json=pod, headers=AUTH)
    assert response.status == 201
    assert response.headers.getall("Warning") == ['299 - "unknown field \\"spec.bogus\\""']
    assert "bogus" not in (await response.json())["spec"]


async def test_table_list(client: TestClient) -> None:
    await client.post("/api/v1/namespaces/default/pods", json=POD, headers=AUTH)
    response = await client.get("/api/v1/namespaces/default/pods",
                                headers={**AUTH, "Accept": TABLE + ",application/json"})
    assert response.status == 200
    assert response.headers["Content-Type"] == TABLE
    table = await response.json(content_type=None)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    [row] = table["rows"]
    assert row["cells"][:4] == ["web", "0/1", "Pending", "0"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "web"


async def test_self_subject_access_review(client: TestClient) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}}}
    response = await client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                 json=review, headers=AUTH)
    assert response.status == 201
    assert (await response.json())["status"]["allowed"] is True


async def test_self_subject_review_names_the_caller(client: TestClient) -> None:
    response = await client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                 json={"apiVersion": "authentication.k8s.io/v1",
                                       "kind": "SelfSubjectReview"}, headers=AUTH)
    assert response.status == 201
    assert (await response.json())["status"]["userInfo"] == {
        "username": "admin", "groups": ["system:masters", "system:authenticated"]}


# --- protocol subset: what Kubernetes refuses ------------------------------------------------

async def test_delete_at_the_all_namespaces_path_is_refused(client: TestClient) -> None:
    """Kubernetes serves only list and watch at /api/v1/pods; DELETE there is 405."""
    await client.post("/api/v1/namespaces/default/pods", json=POD, headers=AUTH)
    response = await client.delete("/api/v1/pods", headers=AUTH)
    assert response.status == 405
    assert [p["metadata"]["name"] for p in
            (await get_json(client, "/api/v1/pods"))["items"]] == ["web"]


async def test_get_on_namespace_finalize_is_405(client: TestClient) -> None:
    response = await client.get("/api/v1/namespaces/default/finalize", headers=AUTH)
    assert response.status == 405


async def test_finalize_clears_the_namespace_finalizers(client: TestClient) -> None:
    response = await client.post("/api/v1/namespaces", headers=AUTH, json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert response.status == 201
    ns = await response.json()
    ns["spec"]["finalizers"] = []
    response = await client.put("/api/v1/namespaces/team/finalize", json=ns, headers=AUTH)
    assert response.status == 200, await response.text()
    assert (await response.json())["spec"]["finalizers"] == []
