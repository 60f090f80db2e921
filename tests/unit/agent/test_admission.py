"""Agent admission (the kubelet's predicate admit handler): pure checks as tables, the
Admitter's bookkeeping, and the admit step of sync_pod (a refused pod fails with the
kubelet's status and event and starts nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from podling.agent.backoff import Backoff
from podling.agent.config import AgentConfig
from podling.agent.node import admission
from podling.agent.node.admission import Rejection, admit
from podling.agent.node.admitter import Admitter
from podling.agent.node.host import HostResources
from podling.agent.pod.sync import PodSyncer
from podling.agent.pod.sync_result import SyncAction
from podling.api import fit
from podling.api.views import NodeView, PodView
from podling.runtime.fake import FakeRuntime

AFFINITY_MSG = ("Predicate NodeAffinity failed: node(s) didn't match Pod's node "
                "affinity/selector")


def node(name: str = "n1", labels: dict | None = None, cpu: str = "2", memory: str = "4Gi",
         pods: str = "110", **extra: str) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **extra}
    return {"metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"allocatable": alloc, "capacity": alloc}}


def pod(uid: str = "u1", cpu: str | None = None, memory: str | None = None, *,
        phase: str = "Pending", selector: dict | None = None, affinity: list | None = None,
        host_port: int | None = None, **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    c: dict[str, Any] = {"name": "c", "image": "busybox",
                         "resources": {"requests": requests} if requests else {}}
    if host_port:
        c["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    s: dict[str, Any] = {"nodeName": "n1", "containers": [c], **spec}
    if selector is not None:
        s["nodeSelector"] = selector
    if affinity is not None:
        s["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": affinity}}}
    return {"metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid},
            "spec": s, "status": {"phase": phase}}


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


# -- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("the_pod, the_node, others, want", [
    # fits
    (pod(), node(), [], None),
    (pod(cpu="1", memory="1Gi"), node(), [pod("o1", cpu="1", memory="3Gi")], None),
    # cpu
    (pod(cpu="4"), node(), [pod("o1", cpu="100m")],
     Rejection("OutOfcpu", "Node didn't have enough resource: cpu, requested: 4000, used: 100, "
                           "capacity: 2000")),
    (pod(cpu="1500m"), node(), [pod("o1", cpu="600m")],
     Rejection("OutOfcpu", "Node didn't have enough resource: cpu, requested: 1500, used: 600, "
                           "capacity: 2000")),
    # memory, in bytes
    (pod(memory="1Gi"), node(memory="1Gi"), [pod("o1", memory="1Mi")],
     Rejection("OutOfmemory", "Node didn't have enough resource: memory, requested: "
                              "1073741824, used: 1048576, capacity: 1073741824")),
    # cpu is checked before memory
    (pod(cpu="3", memory="8Gi"), node(), [],
     Rejection("OutOfcpu", "Node didn't have enough resource: cpu, requested: 3000, used: 0, "
                           "capacity: 2000")),
    # pods: counted first, even for a pod without requests
    (pod(cpu="9"), node(pods="2"), [pod("o1"), pod("o2")],
     Rejection("OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 2, "
                            "capacity: 2")),
    # terminal pods and the pod itself do not count
    (pod(cpu="2"), node(pods="1"), [pod("o1", cpu="2", phase="Succeeded"),
                                    pod("o2", cpu="1", phase="Failed"), pod("u1", cpu="2")],
     None),
    # a limit alone is the request
    (pod(resources=None, containers=[{"name": "c", "image": "x",
                                      "resources": {"limits": {"cpu": "3"}}}]), node(), [],
     Rejection("OutOfcpu", "Node didn't have enough resource: cpu, requested: 3000, used: 0, "
                           "capacity: 2000")),
    # an extended resource the node does not list is ignored; one it lists is checked
    (pod(containers=[{"name": "c", "image": "x",
                      "resources": {"requests": {"example.com/gpu": "1"}}}]), node(), [], None),
    (pod(containers=[{"name": "c", "image": "x",
                      "resources": {"requests": {"example.com/gpu": "2"}}}]),
     node(**{"example.com/gpu": "1"}), [],
     Rejection("OutOfexample.com/gpu", "Node didn't have enough resource: example.com/gpu, "
                                       "requested: 2, used: 0, capacity: 1")),
    # node selector / affinity
    (pod(selector={"disk": "ssd"}), node(labels={"disk": "ssd"}), [], None),
    (pod(selector={"disk": "ssd"}), node(), [], Rejection("NodeAffinity", AFFINITY_MSG)),
    (pod(selector={"kubernetes.io/hostname": "n2"}), node(), [],
     Rejection("NodeAffinity", AFFINITY_MSG)),
    (pod(affinity=[{"matchExpressions": [expr("zone", "In", "a", "b")]}]),
     node(labels={"zone": "b"}), [], None),
    (pod(affinity=[{"matchExpressions": [expr("zone", "In", "a")]},
                   {"matchFields": [expr("metadata.name", "In", "n1")]}]), node(), [], None),
    (pod(affinity=[{"matchExpressions": [expr("zone", "NotIn", "a")]}]),
     node(labels={"zone": "a"}), [], Rejection("NodeAffinity", AFFINITY_MSG)),
    (pod(affinity=[{"matchExpressions": [expr("gen", "Gt", "3")]}]),
     node(labels={"gen": "2"}), [], Rejection("NodeAffinity", AFFINITY_MSG)),
    (pod(affinity=[{}]), node(), [], Rejection("NodeAffinity", AFFINITY_MSG)),
    # resources are reported before affinity (the kubelet's order)
    (pod(cpu="3", selector={"disk": "ssd"}), node(), [],
     Rejection("OutOfcpu", "Node didn't have enough resource: cpu, requested: 3000, used: 0, "
                           "capacity: 2000")),
    # host ports
    (pod(host_port=8080), node(), [pod("o1", host_port=8080)],
     Rejection("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for "
                            "the requested pod ports")),
    (pod(host_port=8080), node(), [pod("o1", host_port=8081)], None),
    # a Node that has not reported allocatable is not judged on resources
    (pod(cpu="64"), {"metadata": {"name": "n1"}, "status": {}}, [], None),
])
def test_admit(the_pod, the_node, others, want):
    assert admit(PodView.from_obj(the_pod), NodeView.from_obj(the_node),
                 [PodView.from_obj(o) for o in others]) == want


def test_rejection_status_keeps_start_time_and_prefixes_the_message():
    r = Rejection("NodeAffinity", AFFINITY_MSG)
    assert r.status("2024-01-01T00:00:00Z", start_time="2025-01-01T00:00:00Z") \
        == {"phase": "Failed", "reason": "NodeAffinity",
            "message": "Pod was rejected: " + AFFINITY_MSG,
            "startTime": "2024-01-01T00:00:00Z"}
    assert r.status("", start_time="2025-01-01T00:00:00Z")["startTime"] == \
        "2025-01-01T00:00:00Z"


@pytest.mark.parametrize("status, has_sandbox, deleted, want", [
    ({}, False, False, True),
    ({"phase": "Pending"}, False, False, True),
    ({"phase": "Pending"}, True, False, False),
    ({"phase": "Running"}, False, False, False),
    ({"phase": "Failed"}, False, False, False),
    ({"phase": "Pending"}, False, True, False),
])
def test_needs_admission(status, has_sandbox, deleted, want):
    p = pod()
    p["status"] = status
    if deleted:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert admission.needs_admission(PodView.from_obj(p), has_sandbox) is want


@pytest.mark.parametrize("spec, want", [
    ({"containers": [{"resources": {"requests": {"cpu": "1"}}},
                     {"resources": {"requests": {"cpu": "500m", "memory": "1Ki"}}}]},
     {"cpu": 1500, "memory": 1024}),
    # an init container larger than the app containers sets the request
    ({"containers": [{"resources": {"requests": {"cpu": "1"}}}],
      "initContainers": [{"resources": {"requests": {"cpu": "3"}}}]}, {"cpu": 3000}),
    # sidecars add up with the app containers
    ({"containers": [{"resources": {"requests": {"cpu": "1"}}}],
      "initContainers": [{"restartPolicy": "Always",
                          "resources": {"requests": {"cpu": "1"}}}]}, {"cpu": 2000}),
    ({"containers": [{}], "overhead": {"cpu": "250m"}}, {"cpu": 250}),
    ({"containers": [{}]}, {}),
])
def test_pod_requests(spec, want):
    assert fit.pod_requests({"spec": spec}) == want


# -- the call site -----------------------------------------------------------------------------

NOW = 1_700_000_000.0


class FakeStatus:
    def __init__(self) -> None:
        self.written: list[tuple[str, dict]] = []

    async def set_status(self, the_pod, status):
        if self.written and self.written[-1] == (the_pod["metadata"]["uid"], status):
            return False
        self.written.append((the_pod["metadata"]["uid"], status))
        return True

    def forget(self, uid):
        pass


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj, type_, reason, message, field_path=None):
        self.events.append((type_, reason, message))


def node_reader(the_node: dict[str, Any] | None):
    async def get_node():
        return the_node
    return get_node


async def unreadable_node():
    raise AssertionError("an admitted pod is not judged again")


def syncer(the_node: dict[str, Any] | None) -> PodSyncer:
    config = AgentConfig(server_url="", token="", ca_file="", node_name="n1",
                         data_dir="/nonexistent")
    return PodSyncer(config, client=None, runtime=FakeRuntime(), images=None, rootfs=None,
                     network=None, recorder=FakeRecorder(), status=FakeStatus(),
                     backoff=Backoff(), node_ip="10.0.0.1",
                     host=HostResources(cpu_milli=2000, memory_bytes=1 << 30),
                     get_node=node_reader(the_node))


async def test_refused_pod_fails_with_event_and_starts_nothing():
    s = syncer(node())
    p = pod(selector={"disk": "ssd"})
    result = await s.sync(p, False)
    assert result.requeue_after is None and not result.done  # the periodic resync
    assert [(r.action, r.error) for r in result.errors()] == [
        (SyncAction.ADMIT, "NodeAffinity")]
    assert s.recorder.events == [("Warning", "NodeAffinity", AFFINITY_MSG)]
    uid, status = s.status.written[-1]
    assert uid == "u1" and status["phase"] == "Failed" and status["reason"] == "NodeAffinity"
    assert status["message"] == "Pod was rejected: " + AFFINITY_MSG and status["startTime"]
    # later syncs (even with the stale Pending copy) keep it refused, without new events
    await s.sync(p, False)
    assert len(s.recorder.events) == 1
    assert [name for name, _ in s.runtime.calls] == ["list_pod_sandbox", "list_containers"] * 2


async def test_admitted_pods_count_against_later_ones():
    admitter = Admitter(node_reader(node(cpu="2")))
    first, second = PodView.from_obj(pod("a", cpu="1500m")), PodView.from_obj(pod("b", cpu="1"))
    assert (await admitter.decide(first, has_sandbox=False, now=NOW)).admit
    refused = await admitter.decide(second, has_sandbox=False, now=NOW)
    assert (refused.admit, refused.new, refused.reason, refused.message) == (
        False, True, "OutOfcpu",
        "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000")
    again = await admitter.decide(second, has_sandbox=False, now=NOW + 1)
    assert not again.admit and not again.new and again.status == refused.status
    # an admitted pod is not judged again, even once the node changed
    admitter._get_node = unreadable_node
    assert (await admitter.decide(first, has_sandbox=False, now=NOW)).admit


async def test_running_pod_is_not_admitted_again_and_unknown_node_waits():
    s = syncer(None)
    admitted = await s.admitter.decide(PodView.from_obj(pod("r", cpu="64", phase="Running")),
                                       has_sandbox=True, now=NOW)
    assert admitted.admit
    result = await s.sync(pod("w"), False)  # the Node could not be read: retry soon
    assert result.requeue_after == 5.0 and not result.done
    assert s.status.written == [] and s.recorder.events == []


@pytest.mark.parametrize("req, labels, want", [
    (expr("a", "Exists"), {"a": ""}, True),
    (expr("a", "Exists"), {}, False),
    (expr("a", "DoesNotExist"), {}, True),
    (expr("a", "DoesNotExist"), {"a": "1"}, False),
    (expr("a", "NotIn", "x"), {}, True),
    (expr("a", "Lt", "3"), {"a": "2"}, True),
    (expr("a", "Lt", "3"), {"a": "3"}, False),
    (expr("a", "Gt", "3"), {}, False),
    (expr("a", "Gt", "3", "4"), {"a": "9"}, False),  # Gt takes exactly one value
    (expr("a", "Gt", "x"), {"a": "9"}, False),  # not an integer
    (expr("a", "Gt", "3"), {"a": "nine"}, False),
    (expr("a", "Near", "x"), {"a": "x"}, False),  # unknown operator
])
def test_requirement_matches(req, labels, want):
    assert fit.requirement_matches(req, labels) is want


def test_unparsable_quantity_counts_as_zero():
    assert fit.resource_list({"cpu": "lots", "memory": "1Mi"}) == {"cpu": 0, "memory": 1048576}
