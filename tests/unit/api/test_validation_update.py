"""Update validation (pods, pod status, metadata) and the other kinds' validators."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from podling.api.defaults import default_namespace, default_pod
from podling.api.validation import (SPEC_FORBIDDEN_PREFIX, validate_binding, validate_event,
                                    validate_lease, validate_namespace, validate_node,
                                    validate_node_update, validate_pod_status_update,
                                    validate_pod_update)

Pod = dict[str, Any]

FORBIDDEN_SENTENCE = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)")


def stored_pod() -> Pod:
    pod: Pod = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "uid": "u-1",
                             "resourceVersion": "5", "creationTimestamp": "2024-05-01T10:00:00Z"},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}],
                         "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                         "tolerations": [{"key": "k", "operator": "Exists",
                                          "effect": "NoExecute", "tolerationSeconds": 60}]},
                "status": {"phase": "Pending", "qosClass": "BestEffort"}}
    default_pod(pod)
    return pod


def updated(fn: Callable[[Pod], None]) -> Pod:
    pod = stored_pod()
    fn(pod)
    return pod


def _set(path: str, value: Any) -> Callable[[Pod], None]:
    def apply(pod: Pod) -> None:
        target: Any = pod
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return apply


_DELETE = object()

ALLOWED: list[tuple[str, Callable[[Pod], None]]] = [
    ("no-change", lambda p: None),
    ("container-image", _set("spec.containers.0.image", "nginx:1.26")),
    ("init-image", _set("spec.initContainers.0.image", "busybox:1.37")),
    ("deadline-added", _set("spec.activeDeadlineSeconds", 100)),
    ("toleration-added", lambda p: p["spec"]["tolerations"].append(
        {"key": "x", "operator": "Exists"})),
    ("toleration-seconds-changed", _set("spec.tolerations.0.tolerationSeconds", 10)),
    ("labels-changed", _set("metadata.labels", {"app": "web"})),
    ("annotations-changed", _set("metadata.annotations", {"note": "x"})),
]


@pytest.mark.parametrize("fn", [a[1] for a in ALLOWED], ids=[a[0] for a in ALLOWED])
def test_allowed_pod_updates(fn: Callable[[Pod], None]) -> None:
    assert validate_pod_update(updated(fn), stored_pod()) == []


def test_deadline_may_decrease_but_not_increase_or_vanish() -> None:
    old = updated(_set("spec.activeDeadlineSeconds", 100))
    assert validate_pod_update(updated(_set("spec.activeDeadlineSeconds", 50)), old) == []
    up = validate_pod_update(updated(_set("spec.activeDeadlineSeconds", 200)), old)
    assert [str(c) for c in up] == [
        "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous "
        "value"]
    gone = validate_pod_update(stored_pod(), old)
    assert [str(c) for c in gone] == [
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive "
        "integer to nil value"]


def test_grace_period_may_go_from_negative_to_one() -> None:
    old = updated(_set("spec.terminationGracePeriodSeconds", -1))
    new = updated(_set("spec.terminationGracePeriodSeconds", 1))
    causes = validate_pod_update(new, old)
    assert all(c.field != "spec" for c in causes)


@pytest.mark.parametrize("fn", [
    _set("spec.restartPolicy", "Never"),
    _set("spec.nodeSelector", {"disk": "ssd"}),
    _set("spec.containers.0.ports", [{"containerPort": 80, "protocol": "TCP"}]),
    _set("spec.containers.0.resources", {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}),
    _set("spec.terminationGracePeriodSeconds", 10),
    _set("spec.hostNetwork", True),
], ids=["restart-policy", "node-selector", "ports", "resources", "grace", "host-network"])
def test_forbidden_spec_changes(fn: Callable[[Pod], None]) -> None:
    causes = validate_pod_update(updated(fn), stored_pod())
    spec = [c for c in causes if c.field == "spec"]
    assert len(spec) == 1, causes
    assert spec[0].reason == "FieldValueForbidden"
    assert spec[0].message.startswith(FORBIDDEN_SENTENCE + "\n")
    assert SPEC_FORBIDDEN_PREFIX in spec[0].message


def test_forbidden_diff_names_the_field() -> None:
    causes = validate_pod_update(updated(_set("spec.restartPolicy", "Never")), stored_pod())
    assert '- \trestartPolicy: "Always",\n+ \trestartPolicy: "Never",' in causes[0].message


def test_containers_may_not_be_added() -> None:
    new = updated(lambda p: p["spec"]["containers"].append(
        {"name": "d", "image": "x", "imagePullPolicy": "Always",
         "terminationMessagePolicy": "File", "terminationMessagePath": "/dev/termination-log"}))
    causes = validate_pod_update(new, stored_pod())
    assert [str(c) for c in causes] == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"]


def test_image_may_not_be_cleared() -> None:
    causes = validate_pod_update(updated(_set("spec.containers.0.image", "")), stored_pod())
    assert "spec.containers[0].image: Required value" in [str(c) for c in causes]


def test_tolerations_may_only_be_added() -> None:
    causes = validate_pod_update(updated(_set("spec.tolerations.0.key", "other")), stored_pod())
    assert [str(c) for c in causes] == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its "
        "tolerationSeconds"]


def test_scheduling_gates_may_only_be_removed() -> None:
    old = updated(_set("spec.schedulingGates", [{"name": "a"}, {"name": "b"}]))
    assert validate_pod_update(updated(_set("spec.schedulingGates", [{"name": "b"}])), old) == []
    causes = validate_pod_update(updated(_set("spec.schedulingGates",
                                              [{"name": "a"}, {"name": "c"}])), old)
    assert [str(c) for c in causes] == [
        "spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new "
        "scheduling gate 'c'"]
    added = validate_pod_update(updated(lambda p: (
        p["spec"].__setitem__("schedulingGates", [{"name": "a"}]),
        p["spec"].__setitem__("nodeSelector", {"disk": "ssd"}))), old)
    assert added == []


@pytest.mark.parametrize("field,value,expected", [
    ("uid", "u-2", 'metadata.uid: Invalid value: "u-2": field is immutable'),
    ("name", "q", 'metadata.name: Invalid value: "q": field is immutable'),
    ("namespace", "kube-system", 'metadata.namespace: Invalid value: "kube-system": field is '
                                 'immutable'),
    ("creationTimestamp", "2024-05-02T10:00:00Z",
     "metadata.creationTimestamp: Invalid value: 2024-05-02 10:00:00 +0000 UTC: field is "
     "immutable"),
    ("resourceVersion", "", 'metadata.resourceVersion: Invalid value: "": must be specified for '
                            'an update'),
])
def test_metadata_immutability(field: str, value: Any, expected: str) -> None:
    causes = validate_pod_update(updated(_set(f"metadata.{field}", value)), stored_pod())
    assert expected in [str(c) for c in causes]


def test_no_new_finalizers_while_deleting() -> None:
    old = updated(_set("metadata.deletionTimestamp", "2024-05-01T11:00:00Z"))
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/f"]
    assert [str(c) for c in validate_pod_update(new, old)] == [
        'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being '
        'deleted, found new finalizers []string{"example.com/f"}']


def test_updated_pod_must_still_be_valid() -> None:
    causes = validate_pod_update(updated(_set("spec.containers.0.image", " x")), stored_pod())
    assert 'spec.containers[0].image: Invalid value: " x": must not have leading or trailing ' \
           'whitespace' in [str(c) for c in causes]


# --- pod status ------------------------------------------------------------------------


def test_status_update_rules() -> None:
    old = stored_pod()
    ok = updated(_set("status", {"phase": "Running", "qosClass": "BestEffort",
                                 "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                                 "hostIP": "192.168.1.2", "hostIPs": [{"ip": "192.168.1.2"}]}))
    assert validate_pod_status_update(ok, old) == []
    bad = updated(_set("status", {"qosClass": "Guaranteed",
                                  "podIPs": [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}],
                                  "hostIP": "192.168.1.2", "hostIPs": [{"ip": "192.168.1.3"}],
                                  "conditions": [{"type": "bad type", "status": "True"}]}))
    bad["spec"]["nodeName"] = "n1"
    got = [str(c) for c in validate_pod_status_update(bad, old)]
    assert 'status.qosClass: Invalid value: "Guaranteed": field is immutable' in got
    assert "status.nodeName: Forbidden: may not be changed directly" in got
    assert ('status.podIPs: Invalid value: "": may specify no more than one IP for each IP '
            'family') in got
    assert 'status.hostIPs[0].ip: Invalid value: "192.168.1.3": must be equal to `hostIP`' in got
    assert any(c.startswith("metadata.conditions[0].Type: Invalid value") for c in got)


def test_terminated_containers_stay_terminated_unless_always() -> None:
    def with_state(restart: str, state: dict[str, Any]) -> Pod:
        pod = updated(_set("spec.restartPolicy", restart))
        pod["status"]["containerStatuses"] = [{"name": "c", "state": state}]
        return pod
    done = {"terminated": {"exitCode": 0}}
    running = {"running": {}}
    got = validate_pod_status_update(with_state("Never", running), with_state("Never", done))
    assert [str(c) for c in got] == [
        "status.containerStatuses[0].state: Forbidden: may not be transitioned to "
        "non-terminated state"]
    assert validate_pod_status_update(with_state("Always", running),
                                      with_state("Always", done)) == []
    failed = {"terminated": {"exitCode": 1}}
    assert validate_pod_status_update(with_state("OnFailure", running),
                                      with_state("OnFailure", failed)) == []


# --- node ------------------------------------------------------------------------------


def test_node_validation() -> None:
    assert validate_node({"metadata": {"name": "node-1"},
                          "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}],
                                   "podCIDRs": ["10.244.0.0/24"]},
                          "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}) == []
    got = [str(c) for c in validate_node({
        "metadata": {"name": "Node_1", "namespace": "default"},
        "spec": {"taints": [{"key": "k", "effect": "Sometimes"},
                            {"key": "k", "effect": "NoSchedule"},
                            {"key": "k", "effect": "NoSchedule"}],
                 "podCIDRs": ["10.244.0.0"]},
        "status": {"capacity": {"cpu": "-1"}}})]
    assert any(c.startswith('metadata.name: Invalid value: "Node_1": a lowercase RFC 1123 '
                            'subdomain') for c in got)
    assert "metadata.namespace: Forbidden: not allowed on this type" in got
    assert ('metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: '
            '"NoSchedule", "PreferNoSchedule", "NoExecute"') in got
    assert any(c.startswith("metadata.taints[2]: Duplicate value:") and
               c.endswith("taints must be unique by key and effect pair") for c in got)
    assert 'status.capacity.cpu: Invalid value: "-1": must be greater than or equal to 0' in got
    assert any(c.startswith("spec.podCIDRs[0]: Invalid value") for c in got)


def test_node_update() -> None:
    old = {"metadata": {"name": "n", "resourceVersion": "1"},
           "spec": {"podCIDRs": ["10.244.0.0/24"], "providerID": "p://1"}}
    same = copy.deepcopy(old)
    same["spec"]["unschedulable"] = True
    assert validate_node_update(same, old) == []
    changed = copy.deepcopy(old)
    changed["spec"] = {"podCIDRs": ["10.245.0.0/24"], "providerID": "p://2"}
    changed["status"] = {"addresses": [{"type": "InternalIP", "address": "1.1.1.1"}] * 2}
    got = [str(c) for c in validate_node_update(changed, old)]
    assert ('spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to '
            'valid') in got
    assert ('spec.providerID: Forbidden: node updates may not change providerID except from "" '
            'to valid') in got
    assert any(c.startswith("status.addresses[1]: Duplicate value:") for c in got)


# --- namespace, event, lease, binding --------------------------------------------------


def test_namespace_validation() -> None:
    ns = {"metadata": {"name": "team-a"}}
    default_namespace(ns)
    assert validate_namespace(ns) == []
    got = [str(c) for c in validate_namespace({"metadata": {"name": "team.a"},
                                               "spec": {"finalizers": ["custom"]}})]
    assert got == ['metadata.name: Invalid value: "team.a": must not contain dots',
                   'spec.finalizers: Invalid value: "custom": name is neither a standard '
                   'finalizer name nor is it fully qualified']


def test_event_validation() -> None:
    good = {"metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Started", "type": "Normal"}
    assert validate_event(good) == []
    cluster = {"metadata": {"name": "n.1", "namespace": "default"},
               "involvedObject": {"kind": "Node", "name": "n"}}
    assert validate_event(cluster) == []
    bad = copy.deepcopy(good)
    bad["metadata"]["namespace"] = "other"
    assert [str(c) for c in validate_event(bad)] == [
        'involvedObject.namespace: Invalid value: "default": does not match event.namespace']
    new_style = copy.deepcopy(good)
    new_style["eventTime"] = "2024-05-01T10:00:00.000000Z"
    got = [str(c) for c in validate_event(new_style)]
    assert got == ["reportingController: Required value",
                   'reportingController: Invalid value: "": name part must be non-empty',
                   'reportingController: Invalid value: "": name part must consist of '
                   "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                   "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                   "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                   "reportingInstance: Required value", "action: Required value"]


def test_lease_validation() -> None:
    lease = {"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert validate_lease(lease) == []
    got = [str(c) for c in validate_lease({"metadata": {"name": "l"},
                                           "spec": {"leaseDurationSeconds": 0,
                                                    "leaseTransitions": -1}})]
    assert got == ["metadata.namespace: Required value",
                   "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                   "spec.leaseTransitions: Invalid value: -1: must be greater than or equal "
                   "to 0"]


def test_binding_validation() -> None:
    assert validate_binding({"target": {"kind": "Node", "name": "n1"}}) == []
    assert validate_binding({"target": {"name": "n1"}}) == []
    assert [str(c) for c in validate_binding({"target": {"kind": "Pod"}})] == [
        'target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>"',
        "target.name: Required value"]
