"""The typed views: full objects read every field, minimal and null objects read the
documented defaults, malformed values are tolerated."""

from __future__ import annotations

from typing import Any

import pytest

from podling.api.views.volume import ObjectProjectionView
from podling.api.views import (ConditionView, ContainerPortView, ContainerView, DNSConfigView,
                               EmptyDirView, EnvFromSourceView, EnvVarSourceView, EnvVarView,
                               HandlerView, HostAliasView, HostPathView, HTTPGetActionView,
                               KeySelectorView, LifecycleView,
                               NodeAddressView, NodeAffinityView, NodeSelectorRequirementView,
                               NodeSelectorTermView, NodeView, ObjectMetaView,
                               OwnerReferenceView, PodSecurityContextView, PodSpecView,
                               PodStatusView, PodView, PreferredSchedulingTermView, ProbeView,
                               ResourceFieldRefView, ResourcesView, SecurityContextView,
                               TaintView, TolerationView, VolumeMountView, VolumeView)

FULL_CONTAINER: dict[str, Any] = {
    "name": "app", "image": "busybox:1", "imagePullPolicy": "Always",
    "command": ["sh", "-c"], "args": ["echo $(X)", 7], "workingDir": "/w",
    "env": [{"name": "X", "value": "1"},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "C", "valueFrom": {"resourceFieldRef": {
                "containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k",
                                                            "optional": True}}}],
    "envFrom": [{"configMapRef": {"name": "cm"}},
                {"secretRef": {"name": "sec", "optional": True}, "prefix": "S_"}],
    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080, "protocol": "UDP",
               "hostIP": "10.0.0.1"}],
    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
    "lifecycle": {"postStart": {"exec": {"command": ["touch", "/x"]}},
                  "preStop": {"httpGet": {"path": "/q", "port": "http", "host": "h",
                                          "scheme": "HTTPS",
                                          "httpHeaders": [{"name": "A", "value": "b"}]}},
                  "stopSignal": "SIGUSR1"},
    "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": True, "subPath": "s",
                      "subPathExpr": "$(X)", "mountPropagation": "HostToContainer"}],
    "securityContext": {"runAsUser": 0, "runAsGroup": 5, "runAsNonRoot": False,
                        "privileged": True, "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                        "procMount": "Unmasked"},
    "restartPolicy": "Always", "readinessProbe": {"exec": {"command": ["true"]}},
    "tty": True, "stdin": True, "stdinOnce": True,
    "terminationMessagePath": "/t", "terminationMessagePolicy": "FallbackToLogsOnError",
}

FULL_CONTAINER_VIEW = ContainerView(
    name="app", image="busybox:1", image_pull_policy="Always", command=("sh", "-c"),
    args=("echo $(X)", "7"), working_dir="/w",
    env=(EnvVarView("X", "1"),
         EnvVarView("N", value_from=EnvVarSourceView(field_path="metadata.name",
                                                     kinds=("fieldRef",))),
         EnvVarView("C", value_from=EnvVarSourceView(
             resource_field_ref=ResourceFieldRefView("app", "limits.cpu", "1m"),
             kinds=("resourceFieldRef",))),
         EnvVarView("S", value_from=EnvVarSourceView(
             secret_key_ref=KeySelectorView("s", "k"), kinds=("secretKeyRef",))),
         EnvVarView("M", value_from=EnvVarSourceView(
             config_map_key_ref=KeySelectorView("m", "k", True), kinds=("configMapKeyRef",)))),
    env_from=(EnvFromSourceView(config_map_ref=KeySelectorView("cm")),
              EnvFromSourceView("S_", secret_ref=KeySelectorView("sec", optional=True))),
    ports=(ContainerPortView("http", 80, 8080, "UDP", "10.0.0.1"),),
    resources=ResourcesView({"cpu": "100m"}, {"memory": "1Gi"}),
    lifecycle=LifecycleView(
        post_start=HandlerView(exec_command=("touch", "/x"), kinds=("exec",)),
        pre_stop=HandlerView(http_get=HTTPGetActionView("/q", "http", "h", "HTTPS",
                                                        (("A", "b"),)), kinds=("httpGet",)),
        stop_signal="SIGUSR1"),
    volume_mounts=(VolumeMountView("v", "/v", True, "s", "$(X)", "HostToContainer"),),
    security_context=SecurityContextView(0, 5, False, True, True, False, ("NET_ADMIN",),
                                         ("ALL",), "Unmasked"),
    restart_policy="Always", readiness_probe=ProbeView(exec_command=("true",)),
    tty=True, stdin=True, stdin_once=True, termination_message_path="/t",
    termination_message_policy="FallbackToLogsOnError")

FULL_POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "42",
                 "labels": {"app": "web"}, "annotations": {"a": "b"},
                 "ownerReferences": [{"uid": "o1"}, {"uid": "rs1", "controller": True}],
                 "deletionTimestamp": "2024-01-01T00:00:00Z",
                 "deletionGracePeriodSeconds": 0},
    "spec": {
        "nodeName": "n1", "schedulerName": "mine", "nodeSelector": {"disk": "ssd"},
        "containers": [FULL_CONTAINER], "initContainers": [{"name": "init"}],
        "volumes": [{"name": "h", "hostPath": {"path": "/srv", "type": "Directory"}},
                    {"name": "e", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    {"name": "d"}, {"name": "s", "secret": {"secretName": "x"}}],
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "hostNetwork": True, "hostPID": True, "hostIPC": True, "shareProcessNamespace": True,
        "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}],
        "hostname": "h", "subdomain": "sub", "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["9.9.9.9"], "searches": ["x"],
                      "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"},
                                  {"value": "orphan"}]},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 0, "runAsNonRoot": True,
                            "fsGroup": 2000, "supplementalGroups": [3, 4]},
        "serviceAccountName": "sa",
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "v", "value": "1"}],
        "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", 1]}],
                 "matchFields": [{"key": "metadata.name", "operator": "In",
                                  "values": ["n1"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [
                    {"key": "disk", "operator": "Exists"}]}}]}},
        "priority": 1000, "overhead": {"cpu": "10m"},
        "readinessGates": [{"conditionType": "example.com/ready"}],
    },
    "status": {"phase": "Running", "hostIP": "10.0.0.2", "podIP": "10.88.0.5",
               "podIPs": [{"ip": "10.88.0.5"}, {"ip": ""}], "startTime": "2024-01-01T00:00:01Z",
               "conditions": [{"type": "PodScheduled", "status": "True", "reason": "r",
                               "message": "m", "lastTransitionTime": "t"}],
               "containerStatuses": [{"name": "app", "restartCount": 1}],
               "initContainerStatuses": [{"name": "init"}]},
}

FULL_POD_VIEW = PodView(
    metadata=ObjectMetaView("p", "ns", "u1", "42", {"app": "web"}, {"a": "b"},
                            (OwnerReferenceView("o1"), OwnerReferenceView("rs1", True)),
                            "2024-01-01T00:00:00Z", 0),
    spec=PodSpecView(
        node_name="n1", scheduler_name="mine", node_selector={"disk": "ssd"},
        containers=(FULL_CONTAINER_VIEW,), init_containers=(ContainerView(name="init"),),
        volumes=(VolumeView("h", ("hostPath",), host_path=HostPathView("/srv", "Directory")),
                 VolumeView("e", ("emptyDir",), empty_dir=EmptyDirView("Memory", "1Mi")),
                 VolumeView("d"), VolumeView("s", ("secret",),
                                             secret=ObjectProjectionView(name="x"))),
        restart_policy="Never", termination_grace_period_seconds=0, host_network=True,
        host_pid=True, host_ipc=True, share_process_namespace=True,
        host_aliases=(HostAliasView("1.2.3.4", ("a", "b")),), hostname="h", subdomain="sub",
        dns_policy="None",
        dns_config=DNSConfigView(("9.9.9.9",), ("x",), (("ndots", "2"), ("edns0", ""))),
        security_context=PodSecurityContextView(1000, 0, True, 2000, (3, 4)),
        service_account_name="sa",
        tolerations=(TolerationView("k", "Exists", "", "NoSchedule"),
                     TolerationView("v", "Equal", "1", "")),
        node_affinity=NodeAffinityView(
            required=(NodeSelectorTermView(
                (NodeSelectorRequirementView("zone", "In", ("a", "1")),),
                (NodeSelectorRequirementView("metadata.name", "In", ("n1",)),)),),
            preferred=(PreferredSchedulingTermView(5, NodeSelectorTermView(
                (NodeSelectorRequirementView("disk", "Exists"),))),)),
        priority=1000, overhead={"cpu": "10m"}, readiness_gates=("example.com/ready",)),
    status=PodStatusView("Running", "10.0.0.2", "10.88.0.5", ("10.88.0.5",),
                         "2024-01-01T00:00:01Z", (ConditionView("PodScheduled", "True", "r",
                                                                "m", "t"),),
                         ({"name": "app", "restartCount": 1},), ({"name": "init"},)))

FULL_NODE: dict[str, Any] = {
    "metadata": {"name": "n1", "uid": "nu", "labels": {"kubernetes.io/hostname": "n1"}},
    "spec": {"unschedulable": True, "podCIDR": "10.88.0.0/24",
             "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}, {"key": "bare"}]},
    "status": {"allocatable": {"cpu": "4", "pods": 110}, "capacity": {"cpu": "8"},
               "conditions": [{"type": "MemoryPressure", "status": "False"},
                              {"type": "Ready", "status": "True"}],
               "addresses": [{"type": "Hostname", "address": "n1"},
                             {"type": "InternalIP", "address": "10.0.0.2"}]},
}

FULL_NODE_VIEW = NodeView(
    metadata=ObjectMetaView(name="n1", uid="nu", labels={"kubernetes.io/hostname": "n1"}),
    unschedulable=True, pod_cidr="10.88.0.0/24",
    taints=(TaintView("k", "v", "NoSchedule"), TaintView("bare")),
    allocatable={"cpu": "4", "pods": 110}, capacity={"cpu": "8"},
    conditions=(ConditionView("MemoryPressure", "False"), ConditionView("Ready", "True")),
    addresses=(NodeAddressView("Hostname", "n1"), NodeAddressView("InternalIP", "10.0.0.2")))

NULL_POD: dict[str, Any] = {
    "metadata": {k: None for k in ("name", "namespace", "uid", "labels", "annotations",
                                   "ownerReferences", "deletionTimestamp",
                                   "deletionGracePeriodSeconds")},
    "spec": {k: None for k in ("nodeName", "schedulerName", "nodeSelector", "containers",
                               "initContainers", "volumes", "restartPolicy",
                               "terminationGracePeriodSeconds", "hostNetwork", "hostAliases",
                               "dnsPolicy", "dnsConfig", "securityContext", "tolerations",
                               "affinity", "priority", "overhead", "readinessGates")},
    "status": {k: None for k in ("phase", "podIPs", "conditions", "containerStatuses")},
}


@pytest.mark.parametrize("obj, want", [
    (FULL_POD, FULL_POD_VIEW),
    ({}, PodView()),
    (None, PodView()),
    ({"metadata": None, "spec": None, "status": None}, PodView()),
    (NULL_POD, PodView()),
    ({"spec": {"containers": [None, "junk", {}]}},  # non-objects are skipped
     PodView(spec=PodSpecView(containers=(ContainerView(),)))),
    ({"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {}}}}},  # set, no terms
     PodView(spec=PodSpecView(node_affinity=NodeAffinityView(required=())))),
    ({"spec": {"priority": "x", "terminationGracePeriodSeconds": "y"}}, PodView()),
], ids=["full", "empty", "none", "null-sections", "null-fields", "junk-entries",
        "required-without-terms", "unparsable-ints"])
def test_pod_view(obj, want):
    assert PodView.from_obj(obj) == want


@pytest.mark.parametrize("obj, want", [
    (FULL_CONTAINER, FULL_CONTAINER_VIEW),
    ({}, ContainerView()),
    ({k: None for k in FULL_CONTAINER}, ContainerView()),
    ({"lifecycle": {"postStart": {}, "preStop": None}}, ContainerView()),
    ({"lifecycle": {"preStop": {"sleep": {"seconds": 3}}}},
     ContainerView(lifecycle=LifecycleView(pre_stop=HandlerView(sleep_seconds=3.0,
                                                                kinds=("sleep",))))),
    ({"ports": [{"containerPort": 80}]}, ContainerView(ports=(ContainerPortView(
        container_port=80),))),
    ({"env": [{"name": "E", "valueFrom": {}}]}, ContainerView(env=(EnvVarView("E"),))),
], ids=["full", "empty", "nulls", "empty-hooks", "sleep-hook", "port-defaults",
        "empty-value-from"])
def test_container_view(obj, want):
    assert ContainerView.from_obj(obj) == want


@pytest.mark.parametrize("obj, want", [
    (FULL_NODE, FULL_NODE_VIEW),
    ({}, NodeView()),
    (None, NodeView()),
    ({"metadata": None, "spec": None, "status": None}, NodeView()),
    ({"spec": {"taints": None, "unschedulable": None},
      "status": {"allocatable": None, "conditions": None, "addresses": None}}, NodeView()),
], ids=["full", "empty", "none", "null-sections", "null-fields"])
def test_node_view(obj, want):
    assert NodeView.from_obj(obj) == want


def test_container_keeps_the_raw_object_for_hashing_but_compares_by_fields():
    view = ContainerView.from_obj(FULL_CONTAINER)
    assert view.raw is FULL_CONTAINER
    assert view == FULL_CONTAINER_VIEW and FULL_CONTAINER_VIEW.raw == {}


@pytest.mark.parametrize("obj, key, uid, controller, deleting", [
    (FULL_POD, ("ns", "p"), "u1", "rs1", True),
    ({}, ("", ""), "", "", False),
    ({"metadata": {"name": "a", "ownerReferences": [{"uid": "x"}],
                   "deletionTimestamp": ""}}, ("", "a"), "", "", False),
])
def test_pod_helpers(obj, key, uid, controller, deleting):
    pod = PodView.from_obj(obj)
    assert (pod.key, pod.metadata.uid, pod.metadata.controller_uid,
            pod.metadata.deleting) == (key, uid, controller, deleting)


@pytest.mark.parametrize("phase, terminal", [
    ("Succeeded", True), ("Failed", True), ("Running", False), (None, False)])
def test_terminal_phases(phase, terminal):
    assert PodStatusView.from_obj({"phase": phase}).terminal is terminal


def test_spec_container_lookup():
    spec = PodView.from_obj(FULL_POD).spec
    assert [c.name for c in spec.all_containers()] == ["init", "app"]
    assert spec.container("init") == ContainerView(name="init")
    assert spec.container("nope") is None
    assert spec.containers[0].is_sidecar and not spec.init_containers[0].is_sidecar


@pytest.mark.parametrize("obj, ready, resources, internal", [
    (FULL_NODE, "True", {"cpu": "4", "pods": 110}, "10.0.0.2"),
    ({"status": {"capacity": {"cpu": "2"}, "conditions": [{"type": "Ready"}]}}, "", {"cpu": "2"},
     None),
    ({}, None, {}, None),
])
def test_node_helpers(obj, ready, resources, internal):
    node = NodeView.from_obj(obj)
    assert node.ready_status == ready
    assert node.schedulable_resources == resources
    assert node.address("InternalIP") == internal


def test_views_are_frozen():
    pod = PodView.from_obj(FULL_POD)
    with pytest.raises(AttributeError):
        pod.spec.node_name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("cls", [PodView, PodSpecView, ContainerView, NodeView, ObjectMetaView,
                                 SecurityContextView, LifecycleView, NodeAffinityView])
def test_absent_parts_share_one_default(cls):
    assert cls.from_obj(None) is cls.from_obj({}) is cls.from_obj("junk")
    assert cls.from_obj(None) == cls()
