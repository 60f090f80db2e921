"""A container's environment (kuberuntime/env.py, env_objects.py, resource_fields.py): the
downward API, ConfigMaps and Secrets by key and by envFrom, precedence and expansion, and
the kubelet's messages for what is missing. ConfigMaps and Secrets come from a fake
ObjectSource with a call log and error injection."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from podling.agent.kuberuntime.env import PodContext, container_env
from podling.agent.kuberuntime.errors import ContainerConfigError, UnresolvedReferenceError
from podling.agent.kuberuntime.resource_fields import (NodeAllocatable, ResourceFieldError,
                                                       find_container, resource_value)
from podling.api.errors import ApiError
from podling.api.resources import Resource
from podling.api.types import Obj
from podling.api.views import ContainerView, PodView, ResourceFieldRefView

NODE = NodeAllocatable(cpu_milli=4000, memory_bytes=8 * 1024 ** 3,
                       ephemeral_storage_bytes=100 * 1000 ** 3)


@dataclass
class FakeObjects:
    """ConfigMaps and Secrets by (resource, namespace, name); ``calls`` logs every get;
    ``fail`` maps a name to the ApiError its get raises."""

    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    fail: dict[str, ApiError] = field(default_factory=dict)

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        self.calls.append((resource.name, namespace, name))
        if name in self.fail:
            raise self.fail[name]
        return self.objects.get((resource.name, namespace, name))

    def config_map(self, name: str, data: dict[str, str], namespace: str = "ns1") -> None:
        self.objects[("configmaps", namespace, name)] = {"metadata": {"name": name},
                                                        "data": data}

    def secret(self, name: str, data: dict[str, str], namespace: str = "ns1") -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.objects[("secrets", namespace, name)] = {"metadata": {"name": name},
                                                     "type": "Opaque", "data": encoded}


def make_pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    pod = {"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                        "labels": {"app": "web", "tier": "fe"},
                        "annotations": {"a/b": "x"}},
           "spec": {"nodeName": "n1", "serviceAccountName": "sa",
                    "containers": list(containers) or [{"name": "c", "image": "busybox"}]}}
    pod["spec"].update(spec)
    return pod


def env_of(container: dict[str, Any], objects: FakeObjects | None = None, *,
           pod: dict[str, Any] | None = None, pod_ips: tuple[str, ...] = ("10.0.0.5",),
           host_ips: tuple[str, ...] = ("192.168.1.2",)) -> dict[str, str]:
    """The environment of ``container`` (in ``pod``, else a pod of it alone)."""
    view = PodView.from_obj(pod or make_pod(container))
    ctx = PodContext(pod_ips, host_ips, NODE)
    spec = view.spec.container(container["name"]) or ContainerView.from_obj(container)
    return asyncio.run(container_env(view, spec, ctx, objects or FakeObjects()))


def one(value_from: dict[str, Any], objects: FakeObjects | None = None, **kw: Any) -> str | None:
    """The value of one env var ``V`` with ``valueFrom``; None when it is not set."""
    env = env_of({"name": "c", "env": [{"name": "V", "valueFrom": value_from}], **kw},
                 objects)
    return env.get("V")


# -- fieldRef -------------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    ("metadata.name", "web"),
    ("metadata.namespace", "ns1"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['missing']", ""),
    ("metadata.annotations['a/b']", "x"),
    ("metadata.annotations['none']", ""),
    ("spec.nodeName", "n1"),
    ("spec.serviceAccountName", "sa"),
    ("status.hostIP", "192.168.1.2"),
    ("status.hostIPs", "192.168.1.2,fd00::2"),
    ("status.podIP", "10.0.0.5"),
    ("status.podIPs", "10.0.0.5,fd00::5"),
])
def test_field_ref(path: str, expected: str) -> None:
    container = {"name": "c", "env": [{"name": "V", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": path}}}]}
    env = env_of(container, pod_ips=("10.0.0.5", "fd00::5"),
                 host_ips=("192.168.1.2", "fd00::2"))
    assert env["V"] == expected


def test_field_ref_to_an_unknown_path_is_a_config_error() -> None:
    with pytest.raises(ContainerConfigError, match="unsupported fieldPath: spec.nope") as e:
        one({"fieldRef": {"fieldPath": "spec.nope"}})
    assert e.value.reason == "CreateContainerConfigError" and not e.value.retry_soon


# -- resourceFieldRef -------------------------------------------------------------------------

GI = 1024 ** 3


@pytest.mark.parametrize("resources,ref,expected", [
    # cpu: MilliValue / divisor's MilliValue, rounded up
    ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu"}, "1"),
    ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
    ({"limits": {"cpu": "1500m"}}, {"resource": "limits.cpu", "divisor": "1"}, "2"),
    ({"limits": {"cpu": "2"}}, {"resource": "limits.cpu", "divisor": "1m"}, "2000"),
    ({"limits": {"cpu": "0.1"}}, {"resource": "limits.cpu", "divisor": "1m"}, "100"),
    ({"limits": {"cpu": "1u"}}, {"resource": "limits.cpu", "divisor": "1m"}, "1"),
    ({"limits": {"cpu": "250m"}}, {"resource": "limits.cpu", "divisor": "0"}, "1"),
    ({"requests": {"cpu": "250m"}}, {"resource": "requests.cpu", "divisor": "1m"}, "250"),
    # memory and ephemeral storage: Value / divisor's Value, rounded up
    ({"limits": {"memory": "64Mi"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "64"),
    ({"limits": {"memory": "100M"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "96"),
    ({"limits": {"memory": "1Gi"}}, {"resource": "limits.memory", "divisor": "1G"}, "2"),
    ({"limits": {"memory": "1Gi"}}, {"resource": "limits.memory", "divisor": "1k"}, "1073742"),
    ({"limits": {"memory": "1000"}}, {"resource": "limits.memory", "divisor": "1Ki"}, "1"),
    ({"requests": {"memory": "1Gi"}}, {"resource": "requests.memory"}, str(GI)),
    ({"limits": {"ephemeral-storage": "2Gi"}},
     {"resource": "limits.ephemeral-storage", "divisor": "1Mi"}, "2048"),
    ({"requests": {"ephemeral-storage": "1500"}},
     {"resource": "requests.ephemeral-storage", "divisor": "1k"}, "2"),
    ({"limits": {"hugepages-2Mi": "4Mi"}}, {"resource": "limits.hugepages-2Mi",
                                           "divisor": "1Mi"}, "4"),
    # no limit, or a zero one: the node's allocatable; requests are never defaulted
    ({}, {"resource": "limits.cpu"}, "4"),
    ({}, {"resource": "limits.cpu", "divisor": "1m"}, "4000"),
    ({"limits": {"cpu": "0"}}, {"resource": "limits.cpu", "divisor": "1m"}, "4000"),
    ({}, {"resource": "limits.memory"}, str(8 * GI)),
    ({}, {"resource": "limits.memory", "divisor": "1Mi"}, "8192"),
    ({}, {"resource": "limits.ephemeral-storage", "divisor": "1G"}, "100"),
    ({}, {"resource": "limits.hugepages-2Mi"}, "0"),
    ({}, {"resource": "requests.cpu"}, "0"),
    ({}, {"resource": "requests.memory"}, "0"),
])
def test_resource_field_ref(resources: dict, ref: dict, expected: str) -> None:
    assert one({"resourceFieldRef": ref}, resources=resources) == expected


def test_resource_field_ref_to_another_container() -> None:
    pod = make_pod(
        {"name": "c", "env": [
            {"name": "SIDE", "valueFrom": {"resourceFieldRef": {
                "containerName": "side", "resource": "limits.memory", "divisor": "1Ki"}}},
            {"name": "SIDE_CPU", "valueFrom": {"resourceFieldRef": {
                "containerName": "side", "resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "INIT_CPU", "valueFrom": {"resourceFieldRef": {
                "containerName": "init", "resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "INIT_MEM", "valueFrom": {"resourceFieldRef": {
                "containerName": "init", "resource": "limits.memory"}}}]},
        {"name": "side", "resources": {"limits": {"memory": "2Ki"}}},
        initContainers=[{"name": "init", "resources": {"limits": {"memory": "3Ki"}}}])
    env = env_of(pod["spec"]["containers"][0], pod=pod)
    # an app container's unset limit is the node's; an init container's is not defaulted
    assert env == {"SIDE": "2", "SIDE_CPU": "4000", "INIT_CPU": "0", "INIT_MEM": "3072"}


@pytest.mark.parametrize("ref,message", [
    ({"resource": "limits.gpu"}, "unsupported container resource : limits.gpu"),
    ({"resource": "cpu"}, "unsupported container resource : cpu"),
    ({"resource": "limits.cpu", "containerName": "nope"}, "container nope not found"),
])
def test_resource_field_ref_errors(ref: dict, message: str) -> None:
    with pytest.raises(ContainerConfigError) as e:
        one({"resourceFieldRef": ref})
    assert e.value.message == message and not e.value.retry_soon


def test_resource_value_for_a_volume_file_defaults_any_named_container() -> None:
    """The downward-API volume rule: the named container, init containers included, gets
    the node's allocatable for its unset limits."""
    pod = PodView.from_obj(make_pod(initContainers=[{"name": "init"}]))
    ref = ResourceFieldRefView(container_name="init", resource="limits.memory", divisor="1Mi")
    assert resource_value(ref, find_container(pod, "init"), NODE) == "8192"
    with pytest.raises(ResourceFieldError, match="container x not found"):
        find_container(pod, "x")


def test_node_allocatable_from_a_node_status() -> None:
    allocatable = NodeAllocatable.from_resource_list(
        {"cpu": "2", "memory": "16316696Ki", "ephemeral-storage": "90Gi", "pods": "110"})
    assert allocatable == NodeAllocatable(2000, 16316696 * 1024, 90 * GI)
    assert NodeAllocatable.from_resource_list({"cpu": "1500m"}) == NodeAllocatable(1500, 0, 0)


# -- ConfigMaps and Secrets by key --------------------------------------------------------------

def test_config_map_and_secret_keys() -> None:
    objects = FakeObjects()
    objects.config_map("cfg", {"mode": "fast", "level": "3"})
    objects.secret("creds", {"password": "s3cr3t\nline2", "user": "admin"})
    env = env_of({"name": "c", "env": [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]},
        objects)
    assert env == {"MODE": "fast", "LEVEL": "3", "PASS": "s3cr3t\nline2", "USER": "admin"}
    # each object is read once per environment, in the pod's namespace
    assert objects.calls == [("configmaps", "ns1", "cfg"), ("secrets", "ns1", "creds")]


def test_secret_values_that_are_not_utf8_are_replaced() -> None:
    objects = FakeObjects()
    objects.objects[("secrets", "ns1", "bin")] = {"data": {
        "k": base64.b64encode(b"a\xffb").decode()}}
    assert one({"secretKeyRef": {"name": "bin", "key": "k"}}, objects) == "a\ufffdb"


@pytest.mark.parametrize("value_from,message", [
    ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
    ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ({"configMapKeyRef": {"name": "cfg", "key": "absent"}},
     "couldn't find key absent in ConfigMap ns1/cfg"),
    ({"secretKeyRef": {"name": "creds", "key": "absent"}},
     "couldn't find key absent in Secret ns1/creds"),
    ({"configMapKeyRef": {"name": "cfg", "key": "absent", "optional": False}},
     "couldn't find key absent in ConfigMap ns1/cfg"),
])
def test_missing_references_fail_with_the_kubelets_message(value_from, message) -> None:
    objects = FakeObjects()
    objects.config_map("cfg", {"mode": "fast"})
    objects.secret("creds", {"user": "admin"})
    with pytest.raises(UnresolvedReferenceError) as e:
        one(value_from, objects)
    assert e.value.message == message
    assert e.value.reason == "CreateContainerConfigError" and e.value.retry_soon


@pytest.mark.parametrize("value_from", [
    {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
    {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
    {"configMapKeyRef": {"name": "cfg", "key": "absent", "optional": True}},
    {"secretKeyRef": {"name": "creds", "key": "absent", "optional": True}},
])
def test_optional_missing_references_leave_the_variable_unset(value_from) -> None:
    objects = FakeObjects()
    objects.config_map("cfg", {"mode": "fast"})
    objects.secret("creds", {"user": "admin"})
    assert one(value_from, objects) is None


def test_an_api_error_is_an_unresolved_reference_even_when_optional() -> None:
    objects = FakeObjects(fail={"cfg": ApiError(403, "Forbidden", "no relationship found")})
    with pytest.raises(UnresolvedReferenceError, match="no relationship found"):
        one({"configMapKeyRef": {"name": "cfg", "key": "k", "optional": True}}, objects)


# -- envFrom, precedence and expansion -----------------------------------------------------------

def test_env_from_with_prefix_and_precedence() -> None:
    objects = FakeObjects()
    objects.config_map("cfg", {"MODE": "cm", "SHARED": "cm", "app.mode": "dotted",
                               "1st-key": "digit"})
    objects.secret("creds", {"SHARED": "secret", "TOKEN": "t0k"})
    env = env_of({"name": "c", "envFrom": [
        {"configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "creds"}},                   # a later source wins
        {"configMapRef": {"name": "cfg"}, "prefix": "CM_"},
        {"configMapRef": {"name": "gone", "optional": True}},
        {"secretRef": {"name": "gone", "optional": True}},
    ], "env": [
        {"name": "MODE", "value": "env"},                   # env overrides envFrom
        {"name": "URL", "value": "$(CM_MODE)://$(TOKEN)/$(UNSET)"},
        {"name": "TOKEN", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent",
                                                             "optional": True}}},
    ]}, objects)
    assert env == {"MODE": "env", "SHARED": "secret", "app.mode": "dotted",
                   "1st-key": "digit", "TOKEN": "t0k", "CM_MODE": "cm", "CM_SHARED": "cm",
                   "CM_app.mode": "dotted", "CM_1st-key": "digit",
                   "URL": "cm://t0k/$(UNSET)"}
    assert objects.calls == [("configmaps", "ns1", "cfg"), ("secrets", "ns1", "creds"),
                             ("configmaps", "ns1", "gone"), ("secrets", "ns1", "gone")]


@pytest.mark.parametrize("source,message", [
    ({"configMapRef": {"name": "gone"}}, 'configmap "gone" not found'),
    ({"secretRef": {"name": "gone"}, "prefix": "S_"}, 'secret "gone" not found'),
    ({"secretRef": {"name": "gone", "optional": False}}, 'secret "gone" not found'),
])
def test_env_from_a_missing_source(source, message) -> None:
    with pytest.raises(UnresolvedReferenceError) as e:
        env_of({"name": "c", "envFrom": [source]})
    assert e.value.message == message


def test_expansion_sees_earlier_variables_only() -> None:
    objects = FakeObjects()
    objects.config_map("cfg", {"HOST": "db"})
    env = env_of({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [
        {"name": "A", "value": "$(HOST):$(PORT)"},
        {"name": "PORT", "value": "5432"},
        {"name": "B", "value": "$(HOST):$(PORT) $$(HOST)"},
        {"name": "EMPTY", "value": ""},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "value": "$(POD)"},
    ]}, objects)
    assert env == {"HOST": "db", "A": "db:$(PORT)", "PORT": "5432", "B": "db:5432 $(HOST)",
                   "EMPTY": "", "POD": "web", "C": "web"}
