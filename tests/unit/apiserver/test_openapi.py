"""The OpenAPI v3 documents: structure kubectl apply/create/explain depend on."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

import pytest

from podling.api import resources
from podling.apiserver import openapi

GV_KEYS = ["api/v1", "apis/coordination.k8s.io/v1", "apis/authorization.k8s.io/v1",
           "apis/authentication.k8s.io/v1", "apis/rbac.authorization.k8s.io/v1"]
POD = "io.k8s.api.core.v1.Pod"


def document(key: str) -> dict[str, Any]:
    found = openapi.openapi_group_version(key)
    assert found is not None
    return json.loads(found[0])


def walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from walk(child)


def schemas(key: str) -> dict[str, Any]:
    return document(key)["components"]["schemas"]


def test_root_lists_every_group_version_with_its_hash() -> None:
    root = openapi.openapi_root()
    assert sorted(root["paths"]) == sorted(GV_KEYS)
    for key, entry in root["paths"].items():
        body, digest = openapi.openapi_group_version(key)
        assert entry["serverRelativeURL"] == f"/openapi/v3/{key}?hash={digest}"
        assert digest == hashlib.sha256(body).hexdigest().upper()


def test_unknown_group_version_is_none_and_prefixes_are_tolerated() -> None:
    assert openapi.openapi_group_version("apis/apps/v1") is None
    assert openapi.openapi_group_version("/openapi/v3/api/v1") == openapi.openapi_group_version(
        "api/v1")


def test_documents_are_built_once() -> None:
    assert openapi.openapi_group_version("api/v1")[0] is openapi.openapi_group_version(
        "api/v1")[0]


@pytest.mark.parametrize("key", GV_KEYS)
def test_every_ref_resolves(key: str) -> None:
    doc = document(key)
    names = doc["components"]["schemas"]
    refs = [node["$ref"] for node in walk(doc) if "$ref" in node]
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in names, ref


@pytest.mark.parametrize("key", GV_KEYS)
def test_header_and_paths(key: str) -> None:
    doc = document(key)
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["version"].startswith("v1.")
    prefix = "/" + key + "/"
    assert doc["paths"] and all(p.startswith(prefix) for p in doc["paths"])


@pytest.mark.parametrize("key", GV_KEYS)
def test_every_operation_carries_gvk_and_action(key: str) -> None:
    for path, item in document(key)["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            gvk = op["x-kubernetes-group-version-kind"]
            assert set(gvk) == {"group", "kind", "version"}, path
            assert op["x-kubernetes-action"], path
            assert op["operationId"] and op["responses"], path


def test_patch_operations_support_server_side_field_validation() -> None:
    patched = set()
    for key in GV_KEYS:
        for path, item in document(key)["paths"].items():
            op = item.get("patch")
            if op is None:
                continue
            names = [p["name"] for p in op["parameters"]]
            assert "fieldValidation" in names and "fieldManager" in names, path
            assert set(op["requestBody"]["content"]) == set(openapi.PATCH_TYPES)
            gvk = op["x-kubernetes-group-version-kind"]
            patched.add((gvk["group"], gvk["kind"]))
    expected = {(r.group, r.kind) for r in resources.RESOURCES if "patch" in r.verbs}
    assert expected <= patched


def test_pod_paths_and_operations() -> None:
    paths = document("api/v1")["paths"]
    collection = paths["/api/v1/namespaces/{namespace}/pods"]
    item = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert {"get", "post", "delete"} <= set(collection)
    assert {"get", "put", "patch", "delete"} <= set(item)
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert collection["delete"]["x-kubernetes-action"] == "deletecollection"
    assert item["patch"]["operationId"] == "patchCoreV1NamespacedPod"
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    assert all(p["required"] for p in item["parameters"] if p["in"] == "path")
    list_params = {p["name"] for p in collection["get"]["parameters"]}
    assert {"watch", "labelSelector", "fieldSelector", "resourceVersion"} <= list_params
    post_params = {p["name"] for p in collection["post"]["parameters"]}
    assert {"dryRun", "fieldManager", "fieldValidation"} <= post_params
    assert "/api/v1/pods" in paths
    status = paths["/api/v1/namespaces/{namespace}/pods/{name}/status"]
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Pod"
    ephemeral = paths["/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers"]
    assert {"get", "put", "patch"} == set(ephemeral) - {"parameters"}
    assert ephemeral["patch"]["operationId"] == "patchCoreV1NamespacedPodEphemeralcontainers"


def test_cluster_scoped_resources_have_no_namespace_in_paths() -> None:
    paths = document("api/v1")["paths"]
    assert "/api/v1/nodes/{name}" in paths
    params = [p["name"] for p in paths["/api/v1/nodes/{name}"]["parameters"]]
    assert "namespace" not in params


def test_root_kinds_carry_their_gvk() -> None:
    found = schemas("api/v1")
    assert found[POD]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}]
    assert found["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"][0][
        "kind"] == "PodList"
    lease = schemas("apis/coordination.k8s.io/v1")["io.k8s.api.coordination.v1.Lease"]
    assert lease["x-kubernetes-group-version-kind"] == [
        {"group": "coordination.k8s.io", "kind": "Lease", "version": "v1"}]


def test_pod_schema_has_strategic_merge_metadata() -> None:
    found = schemas("api/v1")
    containers = found["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    volumes = found["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]
    assert volumes["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    ports = found["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    finalizers = found["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
        "finalizers"]
    assert finalizers["x-kubernetes-list-type"] == "set"


def test_explain_structure_for_pod_spec() -> None:
    found = schemas("api/v1")
    pod = found[POD]
    assert pod["type"] == "object" and pod["description"]
    assert pod["properties"]["spec"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}],
        "description": pod["properties"]["spec"]["description"]}
    spec = found["io.k8s.api.core.v1.PodSpec"]
    assert "containers" in spec["required"]
    host_alias = found["io.k8s.api.core.v1.HostAlias"]
    assert host_alias["required"] == ["ip"]
    assert host_alias["properties"]["hostnames"] == {
        "type": "array", "items": {"type": "string"},
        "description": host_alias["properties"]["hostnames"]["description"]}
    container = found["io.k8s.api.core.v1.Container"]
    assert container["required"] == ["name"]
    assert container["properties"]["image"]["type"] == "string"


def test_scalar_types_and_formats() -> None:
    found = schemas("api/v1")
    port = found["io.k8s.api.core.v1.ContainerPort"]["properties"]["containerPort"]
    assert (port["type"], port["format"]) == ("integer", "int32")
    grace = found["io.k8s.api.core.v1.PodSpec"]["properties"]["terminationGracePeriodSeconds"]
    assert grace["format"] == "int64"
    created = found["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
        "creationTimestamp"]
    assert (created["type"], created["format"]) == ("string", "date-time")


def test_quantity_and_int_or_string() -> None:
    found = schemas("api/v1")
    quantity = "io.k8s.apimachinery.pkg.api.resource.Quantity"
    assert found[quantity]["type"] == "string"
    limits = found["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"$ref": f"#/components/schemas/{quantity}"}
    port = found["io.k8s.api.core.v1.HTTPGetAction"]["properties"]["port"]
    assert port["x-kubernetes-int-or-string"] is True
    assert port["allOf"][0]["$ref"].endswith("IntOrString")


def test_group_documents_hold_only_what_they_reach() -> None:
    lease_schemas = schemas("apis/coordination.k8s.io/v1")
    assert POD not in lease_schemas
    assert "io.k8s.api.coordination.v1.LeaseSpec" in lease_schemas
    ssar = document("apis/authorization.k8s.io/v1")["paths"][
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
    assert set(ssar) == {"parameters", "post"}
