"""Payloads of configMap, secret, downwardAPI and projected volumes: items, modes,
optional sources, and the kubelet's messages for missing objects and keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from podling.agent.kuberuntime.atomic_writer import FileProjection
from podling.agent.kuberuntime.env import PodContext
from podling.agent.kuberuntime.projections import (ProjectionError, aggregate, downward_payload,
                                                   object_payload, projected_payload)
from podling.agent.kuberuntime.resource_fields import NodeAllocatable
from podling.api.views import PodView
from podling.api.views.volume import DownwardAPIView, ObjectProjectionView, ProjectedView

CTX = PodContext(pod_ips=("10.0.0.5",), host_ips=("192.168.1.2",),
                 allocatable=NodeAllocatable(cpu_milli=2000, memory_bytes=1 << 30))
CM = {"data": {"a": "alpha", "b": "beta"}, "binaryData": {"bin": base64.b64encode(b"\0\1").decode()}}
SECRET = {"data": {"user": base64.b64encode(b"admin").decode(),
                   "pass": base64.b64encode(b"s3cr3t").decode()}}


def pod(**spec: Any) -> PodView:
    return PodView.from_obj({
        "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                     "labels": {"app": "web", "tier": "front"},
                     "annotations": {"note": 'say "hi"'}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"},
                                                            "requests": {"cpu": "250m"}}}],
                 **spec}})


def cm_source(**fields: Any) -> ObjectProjectionView:
    return ObjectProjectionView.from_obj({"name": "cfg", **fields})


def test_config_map_all_keys_with_the_default_mode() -> None:
    payload = object_payload("configmap", cm_source(), CM, default_mode=0o644)
    assert payload == {"a": FileProjection(b"alpha", 0o644), "b": FileProjection(b"beta", 0o644),
                       "bin": FileProjection(b"\0\1", 0o644)}


def test_items_pick_keys_paths_and_modes() -> None:
    source = cm_source(items=[{"key": "a", "path": "dir/first"},
                              {"key": "b", "path": "second", "mode": 0o400}])
    assert object_payload("configmap", source, CM, default_mode=0o640) == {
        "dir/first": FileProjection(b"alpha", 0o640), "second": FileProjection(b"beta", 0o400)}


def test_secret_values_are_decoded() -> None:
    source = ObjectProjectionView.from_obj({"secretName": "s", "items": [{"key": "pass",
                                                                          "path": "p"}]},
                                           name_field="secretName")
    assert object_payload("secret", source, SECRET, default_mode=0o600) == {
        "p": FileProjection(b"s3cr3t", 0o600)}


@pytest.mark.parametrize("kind,obj,items,message", [
    ("configmap", None, [], 'configmap "cfg" not found'),
    ("secret", None, [], 'secret "cfg" not found'),
    ("configmap", CM, [{"key": "nope", "path": "x"}],
     "configmap references non-existent config key: nope"),
    ("secret", SECRET, [{"key": "nope", "path": "x"}],
     "references non-existent secret key: nope"),
])
def test_missing_objects_and_keys(kind, obj, items, message) -> None:
    with pytest.raises(ProjectionError) as err:
        object_payload(kind, cm_source(items=items), obj, default_mode=0o644)
    assert err.value.message == message
    optional = cm_source(items=items, optional=True)
    assert object_payload(kind, optional, obj, default_mode=0o644) == \
        ({} if obj is None else {})


def test_optional_skips_only_the_missing_keys() -> None:
    source = cm_source(optional=True, items=[{"key": "a", "path": "a"},
                                             {"key": "nope", "path": "n"}])
    assert object_payload("configmap", source, CM, default_mode=0o644) == {
        "a": FileProjection(b"alpha", 0o644)}


def test_downward_api_files() -> None:
    source = DownwardAPIView.from_obj({"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c",
                                             "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "c",
                                             "resource": "requests.cpu", "divisor": "1m"}},
        {"path": "cpulimit", "resourceFieldRef": {"containerName": "c",
                                                  "resource": "limits.cpu"}},
    ]})
    payload = downward_payload(pod(), source, CTX, default_mode=0o644)
    assert {k: v.data.decode() for k, v in payload.items()} == {
        "labels": 'app="web"\ntier="front"', "annotations": 'note="say \\"hi\\""',
        "name": "web", "ns": "ns1", "uid": "u-1", "app": "web", "mem": "64", "cpu": "250",
        "cpulimit": "2"}  # no cpu limit: the node's allocatable, rounded up to a core
    assert payload["name"].mode == 0o600 and payload["ns"].mode == 0o644


def test_downward_api_errors_are_aggregated() -> None:
    source = DownwardAPIView.from_obj({"items": [
        {"path": "x", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}},
        {"path": "y", "fieldRef": {"fieldPath": "spec.bogus"}}]})
    with pytest.raises(ProjectionError) as err:
        downward_payload(pod(), source, CTX, default_mode=0o644)
    assert err.value.message == \
        "[container ghost not found, unsupported fieldPath: spec.bogus]"


def test_aggregate_form() -> None:
    assert aggregate(["a"]) == "a"
    assert aggregate(["a", "b", "a"]) == "[a, b]"


KUBE_API_ACCESS = {"defaultMode": 0o644, "sources": [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace",
                                "fieldRef": {"apiVersion": "v1",
                                             "fieldPath": "metadata.namespace"}}]}}]}


def test_kube_api_access_projection() -> None:
    source = ProjectedView.from_obj(KUBE_API_ACCESS)
    payload = projected_payload(
        pod(), source, objects={("configmap", "kube-root-ca.crt"): {"data": {"ca.crt": "PEM"}}},
        tokens={"token": "tok"}, ctx=CTX)
    assert payload == {"token": FileProjection(b"tok", 0o644),
                       "ca.crt": FileProjection(b"PEM", 0o644),
                       "namespace": FileProjection(b"ns1", 0o644)}
    with_group = projected_payload(
        pod(securityContext={"fsGroup": 2000}), source,
        objects={("configmap", "kube-root-ca.crt"): {"data": {"ca.crt": "PEM"}}},
        tokens={"token": "tok"}, ctx=CTX)
    assert with_group["token"].mode == 0o600  # the writer adds the group bits


def test_projected_reports_every_failing_source() -> None:
    source = ProjectedView.from_obj({"defaultMode": 0o400, "sources": [
        {"configMap": {"name": "gone"}}, {"secret": {"name": "s", "items": [
            {"key": "user", "path": "u"}, {"key": "nope", "path": "n"}]}},
        {"serviceAccountToken": {"path": "token"}}]})
    with pytest.raises(ProjectionError) as err:
        projected_payload(pod(), source, objects={("secret", "s"): SECRET},
                          tokens={"token": ProjectionError("failed to fetch token: boom")},
                          ctx=CTX)
    assert err.value.message == ('[configmap "gone" not found, references non-existent '
                                 'secret key: nope, failed to fetch token: boom]')
    optional = ProjectedView.from_obj({"defaultMode": 0o400, "sources": [
        {"configMap": {"name": "gone", "optional": True}},
        {"secret": {"name": "s", "items": [{"key": "user", "path": "u", "mode": 0o440}]}}]})
    assert projected_payload(pod(), optional, objects={("secret", "s"): SECRET}, tokens={},
                             ctx=CTX) == {"u": FileProjection(b"admin", 0o440)}
