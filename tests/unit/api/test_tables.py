"""Server-side Tables: columns, cells and the STATUS rules of kubectl's printers."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from podling.api.tables import columns, table
from podling.api.tables_pod import pod_row, pod_status
from podling.util.timefmt import format_rfc3339

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ago(seconds: float) -> str:
    return format_rfc3339(NOW - timedelta(seconds=seconds))


# --- builders ------------------------------------------------------------------------------

def running(*, ready: bool = True, restarts: int = 0, finished_ago: float | None = None,
            name: str = "main", started: bool | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts,
                              "state": {"running": {"startedAt": ago(100)}}}
    if finished_ago is not None:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(finished_ago)}}
    if started is not None:
        status["started"] = started
    return status


def waiting(reason: str, *, name: str = "main", restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": reason}}}


def terminated(exit_code: int = 0, reason: str = "", *, signal: int = 0,
               name: str = "main") -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


def make_pod(*statuses: dict[str, Any], phase: str = "Running", init: tuple = (),
             init_specs: list[dict[str, Any]] | None = None, reason: str = "",
             conditions: tuple = (), deleted: bool = False,
             containers: int | None = None) -> dict[str, Any]:
    count = containers if containers is not None else max(len(statuses), 1)
    pod: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                     "creationTimestamp": ago(600)},
        "spec": {"containers": [{"name": f"c{i}", "image": "busybox"} for i in range(count)]},
        "status": {"phase": phase, "containerStatuses": list(statuses),
                   "conditions": [{"type": t, "status": s, **({"reason": r} if r else {})}
                                  for t, s, r in conditions]},
    }
    if init or init_specs:
        pod["spec"]["initContainers"] = init_specs or [{"name": f"i{i}"} for i in range(len(init))]
        pod["status"]["initContainerStatuses"] = list(init)
    if reason:
        pod["status"]["reason"] = reason
    if deleted:
        pod["metadata"]["deletionTimestamp"] = ago(5)
    return pod


READY = ("Ready", "True", "")
NOT_READY = ("Ready", "False", "")
INITIALIZED = ("Initialized", "True", "")

STATUS_CASES = [
    ("Pending", make_pod(phase="Pending"), "Pending"),
    ("ContainerCreating", make_pod(waiting("ContainerCreating"), phase="Pending"),
     "ContainerCreating"),
    ("ErrImagePull", make_pod(waiting("ErrImagePull"), phase="Pending"), "ErrImagePull"),
    ("Running", make_pod(running(), conditions=(READY,)), "Running"),
    ("Completed", make_pod(terminated(0, "Completed"), phase="Succeeded"), "Completed"),
    ("Error", make_pod(terminated(1, "Error"), phase="Failed"), "Error"),
    ("OOMKilled", make_pod(terminated(137, "OOMKilled"), phase="Failed"), "OOMKilled"),
    ("CrashLoopBackOff", make_pod(waiting("CrashLoopBackOff", restarts=4)), "CrashLoopBackOff"),
    ("Init:0/2", make_pod(waiting("PodInitializing"), phase="Pending",
                          init=(running(ready=False, name="i0"), waiting("PodInitializing",
                                                                        name="i1"))),
     "Init:0/2"),
    ("Init:1/2", make_pod(waiting("PodInitializing"), phase="Pending",
                          init=(terminated(0, "Completed", name="i0"),
                                running(ready=False, name="i1"))),
     "Init:1/2"),
    ("Init:0/1 waiting PodInitializing", make_pod(
        phase="Pending", init=(waiting("PodInitializing", name="i0"),)), "Init:0/1"),
    ("Init:Error", make_pod(phase="Pending", init=(terminated(1, "Error", name="i0"),)),
     "Init:Error"),
    ("Init:CrashLoopBackOff", make_pod(
        phase="Pending", init=(waiting("CrashLoopBackOff", name="i0"),)), "Init:CrashLoopBackOff"),
    ("Init:ExitCode:3", make_pod(phase="Pending", init=(terminated(3, name="i0"),)),
     "Init:ExitCode:3"),
    ("Init:Signal:9", make_pod(phase="Pending", init=(terminated(137, signal=9, name="i0"),)),
     "Init:Signal:9"),
    ("Signal:9", make_pod(terminated(137, signal=9), phase="Failed"), "Signal:9"),
    ("ExitCode:2", make_pod(terminated(2), phase="Failed"), "ExitCode:2"),
    ("last container's reason wins (walk is last to first)", make_pod(
        waiting("CrashLoopBackOff", name="a"), waiting("ImagePullBackOff", name="b")),
     "CrashLoopBackOff"),
    ("Completed with a running sidecar and Ready", make_pod(
        terminated(0, "Completed", name="a"), running(name="b"), conditions=(READY,)),
     "Running"),
    ("Completed with a running container, not Ready", make_pod(
        terminated(0, "Completed", name="a"), running(name="b"), conditions=(NOT_READY,)),
     "NotReady"),
    ("Terminating", make_pod(running(), deleted=True), "Terminating"),
    ("terminal pods are not Terminating", make_pod(
        terminated(0, "Completed"), phase="Succeeded", deleted=True), "Completed"),
    ("NodeLost while deleting", make_pod(running(), reason="NodeLost", deleted=True), "Unknown"),
    ("Evicted", make_pod(phase="Failed", reason="Evicted"), "Evicted"),
    ("NodeAffinity", make_pod(phase="Failed", reason="NodeAffinity"), "NodeAffinity"),
    ("SchedulingGated", make_pod(phase="Pending", conditions=(
        ("PodScheduled", "False", "SchedulingGated"),)), "SchedulingGated"),
    ("Initialized: app containers are walked after an unfinished init container", make_pod(
        waiting("CrashLoopBackOff"), init=(running(ready=False, name="i0"),),
        conditions=(INITIALIZED,)),
     "CrashLoopBackOff"),
    ("Initialized: a running app container keeps the init reason", make_pod(
        running(), init=(terminated(1, "Error", name="i0"),), conditions=(INITIALIZED, READY)),
     "Init:Error"),
]


@pytest.mark.parametrize("name,pod,expected", STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_pod_status_column(name: str, pod: dict, expected: str) -> None:
    assert pod_status(pod) == expected
    assert pod_row(pod, NOW)[0][2] == expected


READY_RESTART_CASES = [
    ("no restarts", make_pod(running(), conditions=(READY,)), "1/1", "0"),
    ("restarts with a last termination", make_pod(
        running(restarts=3, finished_ago=90), running(name="b", ready=False)), "1/2",
     "3 (90s ago)"),
    ("restarts without finishedAt", make_pod(waiting("CrashLoopBackOff", restarts=2)), "0/1",
     "2"),
    ("latest termination over all containers", make_pod(
        running(restarts=1, finished_ago=3600, name="a"),
        running(restarts=1, finished_ago=300, name="b")), "2/2", "2 (5m ago)"),
    ("init restarts count while initializing", make_pod(
        phase="Pending", containers=1,
        init=({**waiting("CrashLoopBackOff", name="i0", restarts=5),
               "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},)),
     "0/1", "5 (30s ago)"),
    ("sidecar counts in READY and RESTARTS", make_pod(
        running(name="main"), init_specs=[{"name": "side", "restartPolicy": "Always"}],
        init=(running(name="side", restarts=1, finished_ago=10, started=True),)),
     "2/2", "1 (10s ago)"),
]


@pytest.mark.parametrize("name,pod,ready,restarts", READY_RESTART_CASES,
                         ids=[c[0] for c in READY_RESTART_CASES])
def test_pod_ready_and_restarts(name: str, pod: dict, ready: str, restarts: str) -> None:
    cells, _ = pod_row(pod, NOW)
    assert (cells[1], cells[3]) == (ready, restarts)


def test_pod_wide_cells() -> None:
    pod = make_pod(running(), conditions=(READY, ("example.com/gate", "True", "")))
    cells, _ = pod_row(pod, NOW)
    assert cells == ["web", "1/1", "Running", "0", "10m", "<none>", "<none>", "<none>", "<none>"]
    pod["spec"].update(nodeName="node1", readinessGates=[
        {"conditionType": "example.com/gate"}, {"conditionType": "example.com/other"}])
    pod["status"].update(podIPs=[{"ip": "10.42.0.7"}, {"ip": "fd00::7"}], podIP="10.42.0.7",
                         nominatedNodeName="node2")
    assert pod_row(pod, NOW)[0][5:] == ["10.42.0.7", "node1", "node2", "1/2"]


def test_pod_row_conditions() -> None:
    done = make_pod(terminated(0, "Completed"), phase="Succeeded")
    failed = make_pod(terminated(1, "Error"), phase="Failed")
    assert pod_row(done, NOW)[1] == [{"type": "Completed", "status": "True",
                                      "reason": "Succeeded",
                                      "message": "The pod has completed successfully."}]
    assert pod_row(failed, NOW)[1][0]["reason"] == "Failed"
    assert pod_row(make_pod(running()), NOW)[1] is None


# --- the Table envelope --------------------------------------------------------------------

def test_table_shape_and_pod_columns() -> None:
    pod = make_pod(running(), conditions=(READY,))
    before = copy.deepcopy(pod)
    out = table("pods", [pod], now=NOW, resource_version="1015")
    assert pod == before  # the object is read, never changed
    assert out["kind"] == "Table" and out["apiVersion"] == "meta.k8s.io/v1"
    assert out["metadata"] == {"resourceVersion": "1015"}
    cols = [(c["name"], c["type"], c["format"], c["priority"]) for c in out["columnDefinitions"]]
    assert cols == [("Name", "string", "name", 0), ("Ready", "string", "", 0),
                    ("Status", "string", "", 0), ("Restarts", "string", "", 0),
                    ("Age", "string", "", 0), ("IP", "string", "", 1), ("Node", "string", "", 1),
                    ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1)]
    assert all(c["description"] for c in out["columnDefinitions"])
    row = out["rows"][0]
    assert row["cells"][:5] == ["web", "1/1", "Running", "0", "10m"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": pod["metadata"]}


@pytest.mark.parametrize("include,expected", [
    ("None", None),
    ("Object", "full"),
    ("Metadata", "partial"),
    ("", "partial"),
])
def test_include_object(include: str, expected: str | None) -> None:
    pod = make_pod(running())
    obj = table("pods", [pod], now=NOW, include_object=include)["rows"][0]["object"]
    if expected is None:
        assert obj is None
    elif expected == "full":
        assert obj == pod and obj is not pod
    else:
        assert obj["kind"] == "PartialObjectMetadata"


def test_include_object_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match='unrecognized includeObject value: "Everything"'):
        table("pods", [], now=NOW, include_object="Everything")


def test_without_columns_and_empty() -> None:
    out = table("nodes", [], now=NOW, with_columns=False)
    assert out["columnDefinitions"] is None and out["rows"] == [] and out["metadata"] == {}


# --- nodes ---------------------------------------------------------------------------------

def make_node(conditions: list[tuple[str, str]] | None = None, *, unschedulable: bool = False,
              labels: dict[str, str] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "metadata": {"name": "node1", "creationTimestamp": ago(3 * 86400 + 7200),
                     "labels": labels or {}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"conditions": [{"type": t, "status": s} for t, s in conditions or []],
                   "nodeInfo": {"kubeletVersion": "v1.32.0"}},
    }
    return node


NODE_STATUS_CASES = [
    ("ready", make_node([("MemoryPressure", "False"), ("Ready", "True")]), "Ready"),
    ("not ready", make_node([("Ready", "False")]), "NotReady"),
    ("ready unknown", make_node([("Ready", "Unknown")]), "NotReady"),
    ("no Ready condition", make_node([("DiskPressure", "False")]), "Unknown"),
    ("no conditions", make_node(), "Unknown"),
    ("cordoned", make_node([("Ready", "True")], unschedulable=True), "Ready,SchedulingDisabled"),
    ("cordoned, not ready", make_node([("Ready", "False")], unschedulable=True),
     "NotReady,SchedulingDisabled"),
]


@pytest.mark.parametrize("name,node,expected", NODE_STATUS_CASES,
                         ids=[c[0] for c in NODE_STATUS_CASES])
def test_node_status(name: str, node: dict, expected: str) -> None:
    assert table("nodes", [node], now=NOW)["rows"][0]["cells"][1] == expected


@pytest.mark.parametrize("labels,roles", [
    ({}, "<none>"),
    ({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": ""},
     "control-plane,master"),
    ({"kubernetes.io/role": "worker", "node-role.kubernetes.io/": ""}, "worker"),
    ({"kubernetes.io/role": ""}, "<none>"),
])
def test_node_roles(labels: dict, roles: str) -> None:
    assert table("nodes", [make_node(labels=labels)], now=NOW)["rows"][0]["cells"][2] == roles


def test_node_cells() -> None:
    node = make_node([("Ready", "True")])
    cells = table("nodes", [node], now=NOW)["rows"][0]["cells"]
    assert cells == ["node1", "Ready", "<none>", "3d2h", "v1.32.0", "<none>", "<none>",
                     "<unknown>", "<unknown>", "<unknown>"]
    node["status"]["addresses"] = [{"type": "Hostname", "address": "node1"},
                                   {"type": "InternalIP", "address": "192.168.1.5"},
                                   {"type": "ExternalIP", "address": "203.0.113.9"}]
    node["status"]["nodeInfo"].update(osImage="Debian GNU/Linux 12 (bookworm)",
                                      kernelVersion="6.1.0-18-amd64",
                                      containerRuntimeVersion="podling://0.1.0")
    cells = table("nodes", [node], now=NOW)["rows"][0]["cells"]
    assert cells[5:] == ["192.168.1.5", "203.0.113.9", "Debian GNU/Linux 12 (bookworm)",
                         "6.1.0-18-amd64", "podling://0.1.0"]
    assert [c["name"] for c in columns("nodes")] == [
        "Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image",
        "Kernel-Version", "Container-Runtime"]


# --- events --------------------------------------------------------------------------------

def make_event(**fields: Any) -> dict[str, Any]:
    event = {"metadata": {"name": "web.17a1b2c3d4e5f601", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                                "fieldPath": "spec.containers{main}"},
             "reason": "Pulled", "message": "Successfully pulled image \"busybox\"\n",
             "type": "Normal"}
    event.update(fields)
    return event


EVENT_CASES = [
    ("classic event", make_event(
        firstTimestamp=ago(300), lastTimestamp=ago(60), count=3,
        source={"component": "kubelet", "host": "node1"}),
     ["60s", "Normal", "Pulled", "pod/web", "spec.containers{main}", "kubelet, node1",
      'Successfully pulled image "busybox"', "5m", 3, "web.17a1b2c3d4e5f601"]),
    ("no lastTimestamp: Last Seen is First Seen", make_event(
        firstTimestamp=ago(30), count=1, source={"component": "default-scheduler"}),
     ["30s", "Normal", "Pulled", "pod/web", "spec.containers{main}", "default-scheduler",
      'Successfully pulled image "busybox"', "30s", 1, "web.17a1b2c3d4e5f601"]),
    ("new-style event: eventTime, reporting*, no count", make_event(
        eventTime="2024-05-01T11:59:49.500000Z", reportingComponent="podling-agent",
        reportingInstance="node1", source={}),
     ["10s", "Normal", "Pulled", "pod/web", "spec.containers{main}", "podling-agent, node1",
      'Successfully pulled image "busybox"', "10s", 1, "web.17a1b2c3d4e5f601"]),
    ("series", make_event(
        eventTime=ago(3600), series={"count": 7, "lastObservedTime": "2024-05-01T11:58:00.000000Z"},
        count=2),
     ["2m", "Normal", "Pulled", "pod/web", "spec.containers{main}", "",
      'Successfully pulled image "busybox"', "60m", 7, "web.17a1b2c3d4e5f601"]),
    ("no time at all", make_event(type="Warning", reason="FailedScheduling",
                                  involvedObject={"kind": "Node"}),
     ["<unknown>", "Warning", "FailedScheduling", "node", "", "",
      'Successfully pulled image "busybox"', "<unknown>", 1, "web.17a1b2c3d4e5f601"]),
]


@pytest.mark.parametrize("name,event,cells", EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_event_rows(name: str, event: dict, cells: list) -> None:
    assert table("events", [event], now=NOW)["rows"][0]["cells"] == cells


def test_event_columns() -> None:
    assert [(c["name"], c["priority"]) for c in columns("events")] == [
        ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
        ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]


# --- namespaces, leases, anything else -----------------------------------------------------

def test_namespace_lease_and_default_rows() -> None:
    ns = {"metadata": {"name": "default", "creationTimestamp": ago(86400 * 400)},
          "status": {"phase": "Active"}}
    assert table("namespaces", [ns], now=NOW)["rows"][0]["cells"] == ["default", "Active", "400d"]
    lease = {"metadata": {"name": "node1", "namespace": "kube-node-lease",
                          "creationTimestamp": ago(45)},
             "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 40}}
    assert table("leases", [lease], now=NOW)["rows"][0]["cells"] == ["node1", "node1", "45s"]
    assert table("leases", [{"metadata": {"name": "x"}}], now=NOW)["rows"][0]["cells"] == [
        "x", "", "<unknown>"]
    cm = {"metadata": {"name": "cfg", "creationTimestamp": "2024-04-30T10:00:00Z"}}
    out = table("widgets", [cm], now=NOW)
    assert [c["name"] for c in out["columnDefinitions"]] == ["Name", "Created At"]
    assert out["columnDefinitions"][1]["type"] == "date"
    assert out["rows"][0]["cells"] == ["cfg", "2024-04-30T10:00:00Z"]


@pytest.mark.parametrize("created,age", [
    (ago(0), "0s"), (ago(119), "119s"), (ago(150), "2m30s"), (ago(3 * 3600 + 60), "3h1m"),
    (ago(9 * 3600), "9h"), (ago(50 * 3600), "2d2h"), (ago(-1), "0s"), (ago(-30), "<invalid>"),
    (None, "<unknown>"),
])
def test_age(created: str | None, age: str) -> None:
    meta = {"name": "default"} | ({"creationTimestamp": created} if created else {})
    ns = {"metadata": meta, "status": {"phase": "Active"}}
    assert table("namespaces", [ns], now=NOW)["rows"][0]["cells"][2] == age
