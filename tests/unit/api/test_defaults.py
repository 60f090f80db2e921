"""v1 defaulting: what a GET after create shows."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders import make_pod

from podling.api.defaults import (admit_pod_defaults, compute_qos_class, default_event,
                                  default_lease, default_namespace, default_node, default_pod,
                                  image_pull_policy_for, init_pod_status, parse_image_tag)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("nginx:1.25-alpine", "IfNotPresent"),
    ("library/nginx", "Always"),
    ("docker.io/library/nginx:stable", "IfNotPresent"),
    ("registry:5000/nginx", "Always"),
    ("registry:5000/nginx:latest", "Always"),
    ("registry:5000/team/nginx:v2", "IfNotPresent"),
    ("localhost/app", "Always"),
    ("[::1]:5000/app:1", "IfNotPresent"),
    (f"nginx@{DIGEST}", "IfNotPresent"),
    (f"nginx:1.25@{DIGEST}", "IfNotPresent"),
    (f"nginx:latest@{DIGEST}", "Always"),
    ("NGINX", "IfNotPresent"),          # not a valid reference: Kubernetes ignores the error
    ("", "IfNotPresent"),
])
def test_image_pull_policy_by_tag(image: str, policy: str) -> None:
    assert image_pull_policy_for(image) == policy


def test_parse_image_tag() -> None:
    assert parse_image_tag("busybox") == ("latest", "")
    assert parse_image_tag("busybox:1.28") == ("1.28", "")
    assert parse_image_tag(f"busybox@{DIGEST}") == ("", DIGEST)
    assert parse_image_tag("bad image") is None


def _pod(**spec: Any) -> dict[str, Any]:
    """What a user writes: default/p, container c (nginx), ``spec`` on top."""
    return make_pod("p").container("c", "nginx").bare().set_spec(**spec).build()


def test_pod_defaults_match_a_kubernetes_get() -> None:
    pod = _pod()
    default_pod(pod)
    assert pod["spec"] == {
        "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always",
                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
        "dnsPolicy": "ClusterFirst", "enableServiceLinks": True, "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    }


def test_defaults_keep_explicit_values_and_are_idempotent() -> None:
    pod = _pod(restartPolicy="Never", dnsPolicy="Default", terminationGracePeriodSeconds=0,
               enableServiceLinks=False, schedulerName="mine", securityContext={"runAsUser": 1})
    pod["spec"]["containers"][0].update(imagePullPolicy="Never", terminationMessagePath="/t",
                                        terminationMessagePolicy="FallbackToLogsOnError")
    default_pod(pod)
    once = copy.deepcopy(pod)
    default_pod(pod)
    assert pod == once
    spec = pod["spec"]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["terminationGracePeriodSeconds"],
            spec["enableServiceLinks"], spec["schedulerName"]) == ("Never", "Default", 0,
                                                                   False, "mine")
    c = spec["containers"][0]
    assert (c["imagePullPolicy"], c["terminationMessagePath"],
            c["terminationMessagePolicy"]) == ("Never", "/t", "FallbackToLogsOnError")


def test_init_and_ephemeral_containers_are_defaulted() -> None:
    pod = _pod(initContainers=[{"name": "i", "image": "busybox:1.36"}],
               ephemeralContainers=[{"name": "e", "image": "busybox"}])
    default_pod(pod)
    assert pod["spec"]["initContainers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod["spec"]["ephemeralContainers"][0]["imagePullPolicy"] == "Always"
    assert pod["spec"]["initContainers"][0]["terminationMessagePolicy"] == "File"


def test_ports_probes_and_hooks() -> None:
    pod = _pod()
    pod["spec"]["containers"][0].update(
        ports=[{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        livenessProbe={"httpGet": {"port": 80}},
        readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 5},
        lifecycle={"preStop": {"httpGet": {"port": 80, "path": "/stop"}},
                   "postStart": {"exec": {"command": ["true"]}}})
    default_pod(pod)
    c = pod["spec"]["containers"][0]
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]
    assert "hostPort" not in c["ports"][0]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                  "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/stop",
                                                    "scheme": "HTTP"}
    assert c["lifecycle"]["postStart"] == {"exec": {"command": ["true"]}}


def test_host_network_defaults_host_ports() -> None:
    pod = _pod(hostNetwork=True)
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    default_pod(pod)
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 8080, "hostPort": 8080,
                                                      "protocol": "TCP"}]


def test_volumes() -> None:
    pod = _pod(volumes=[{"name": "a"}, {"name": "b", "hostPath": {"path": "/x"}},
                        {"name": "c", "emptyDir": {}}, {"name": "d", "secret": {"secretName": "s"}},
                        {"name": "e", "configMap": {"name": "cm", "defaultMode": 0o600}},
                        {"name": "f", "emptyDir": {"sizeLimit": "1024Mi"}}])
    default_pod(pod)
    vols = pod["spec"]["volumes"]
    assert vols[0] == {"name": "a", "emptyDir": {}}
    assert vols[1] == {"name": "b", "hostPath": {"path": "/x", "type": ""}}
    assert vols[2] == {"name": "c", "emptyDir": {}}
    assert vols[3]["secret"]["defaultMode"] == 420
    assert vols[4]["configMap"]["defaultMode"] == 0o600
    assert vols[5]["emptyDir"]["sizeLimit"] == "1Gi"


def test_requests_default_from_limits_and_quantities_are_canonical() -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "0.5", "memory": "1024Mi"},
                                                 "requests": {"memory": "512Mi"}}
    default_pod(pod)
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "512Mi"}}


def test_env_field_ref_api_version() -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["env"] = [
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    default_pod(pod)
    assert pod["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"


def _res(limits: dict[str, str] | None = None,
         requests: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if limits is not None:
        out["limits"] = limits
    if requests is not None:
        out["requests"] = requests
    return out


@pytest.mark.parametrize("containers,init,qos", [
    ([_res()], [], "BestEffort"),
    ([_res(requests={"cpu": "0"})], [], "BestEffort"),
    ([_res(limits={"example.com/gpu": "1"})], [], "BestEffort"),
    ([_res(requests={"cpu": "100m"})], [], "Burstable"),
    ([_res(limits={"cpu": "1"})], [], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"})], [], "Guaranteed"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "1", "memory": "1Gi"})], [],
     "Guaranteed"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "500m", "memory": "1Gi"})],
     [], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"}), _res()], [], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"})], [_res()], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"})],
     [_res(limits={"cpu": "2", "memory": "1Gi"})], "Guaranteed"),
    ([_res()], [_res(requests={"memory": "10Mi"})], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"},
           requests={"ephemeral-storage": "100Mi"})], [], "Guaranteed"),
])
def test_qos_class(containers: list[dict[str, Any]], init: list[dict[str, Any]],
                   qos: str) -> None:
    pod = _pod(containers=[{"name": f"c{i}", "image": "x", "resources": r}
                           for i, r in enumerate(containers)],
               initContainers=[{"name": f"i{i}", "image": "x", "resources": r}
                               for i, r in enumerate(init)])
    default_pod(pod)  # requests from limits, as on create
    assert compute_qos_class(pod) == qos


def test_init_pod_status() -> None:
    pod = _pod()
    pod["status"] = {"phase": "Running", "podIP": "1.2.3.4"}
    default_pod(pod)
    init_pod_status(pod)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_admission_defaults() -> None:
    pod = _pod(tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}])
    assert admit_pod_defaults(pod) is None
    spec = pod["spec"]
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"][1:] == [{"key": "node.kubernetes.io/not-ready",
                                        "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": 300}]
    critical = _pod(priorityClassName="system-node-critical")
    admit_pod_defaults(critical)
    assert critical["spec"]["priority"] == 2000001000
    unknown = _pod(priorityClassName="gold")
    assert admit_pod_defaults(unknown) == "no PriorityClass with name gold was found"


def test_namespace_defaults() -> None:
    ns = {"metadata": {"name": "team-a"}}
    default_namespace(ns)
    assert ns == {"metadata": {"name": "team-a",
                               "labels": {"kubernetes.io/metadata.name": "team-a"}},
                  "status": {"phase": "Active"}}
    other = {"metadata": {"name": "b", "labels": {"x": "y"}}, "spec": {"finalizers": []}}
    default_namespace(other)
    # the kubernetes finalizer is added on create only, so finalizing can remove it
    assert other["spec"]["finalizers"] == []
    assert other["metadata"]["labels"] == {"x": "y", "kubernetes.io/metadata.name": "b"}


def test_node_defaults() -> None:
    node = {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4", "memory": "8192Mi",
                                                                "pods": "110"}}}
    default_node(node)
    assert node["status"]["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    set_alloc = {"status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3500m"}}}
    default_node(set_alloc)
    assert set_alloc["status"]["allocatable"] == {"cpu": "3500m"}


def test_event_and_lease_defaults() -> None:
    ev: dict[str, Any] = {"metadata": {"name": "e"}, "reason": "Started"}
    default_event(ev)
    assert ev["reportingComponent"] == "" and ev["reportingInstance"] == ""
    assert ev["source"] == {} and ev["eventTime"] is None
    lease: dict[str, Any] = {"metadata": {"name": "l"}}
    default_lease(lease)
    assert lease["spec"] == {}
