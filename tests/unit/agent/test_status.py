"""Table tests of pod_status (kubelet generateAPIPodStatus / getPhase / conditions)."""

from __future__ import annotations

import dataclasses

import pytest
from agent_builders import T0, cs, make_pod, sandbox

from podling.agent.pod.status import get_phase, pod_status
from podling.api.views import PodView
from podling.util.timefmt import epoch_rfc3339

NOW = T0 + 100


def status(pod, containers, *, sandboxes=None, waiting=None, prev=None, readiness=None,
           ips=("10.42.0.5",), now=NOW):
    return pod_status(PodView.from_obj(pod), [sandbox()] if sandboxes is None else sandboxes,
                      containers, now=now, waiting=waiting or {}, pod_ips=list(ips),
                      host_ip="192.168.1.2", previous_status=prev or {}, readiness=readiness)


def conds(st):
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
            for c in st["conditions"]}


# -- phase ------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, codes, phase", [
    ("Always", [0], "Running"), ("Always", [1], "Running"),
    ("OnFailure", [0], "Succeeded"), ("OnFailure", [1], "Running"),
    ("Never", [0], "Succeeded"), ("Never", [1], "Failed"),
    ("Never", [0, 1], "Failed"), ("OnFailure", [0, 0], "Succeeded"),
])
def test_phase_all_exited(policy, codes, phase):
    names = [f"c{i}" for i in range(len(codes))]
    pod = make_pod(*names, policy=policy)
    st = status(pod, [cs(pod, n, "exited", exit_code=c) for n, c in zip(names, codes)])
    assert st["phase"] == phase


def test_a_container_stopped_before_it_started_is_not_terminated():
    """Stopped between create and start (exit 0, never started): it did not run, so the
    pod of restartPolicy Never is not Succeeded; the container is waiting."""
    pod = make_pod("a", policy="Never")
    leftover = dataclasses.replace(cs(pod, "a", "exited"), started_at=0.0, reason="")
    st = status(pod, [leftover])
    assert st["phase"] == "Pending"
    assert "waiting" in st["containerStatuses"][0]["state"]


@pytest.mark.parametrize("states, phase", [
    ({}, "Pending"),
    ({"a": "running"}, "Pending"),            # b never started
    ({"a": "running", "b": "running"}, "Running"),
    ({"a": "running", "b": "exited"}, "Running"),
    ({"a": "created", "b": "running"}, "Pending"),
])
def test_phase_mixed(states, phase):
    pod = make_pod("a", "b", policy="Never")
    assert status(pod, [cs(pod, n, s) for n, s in states.items()])["phase"] == phase


def test_phase_crash_loop_is_running_and_waiting_shows_reason():
    pod = make_pod("a")
    c = cs(pod, "a", "exited", exit_code=1, restarts=3)
    st = status(pod, [c], waiting={"a": ("CrashLoopBackOff", "back-off 40s ...")})
    s = st["containerStatuses"][0]
    assert st["phase"] == "Running"
    assert s["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 40s ..."}}
    assert s["lastState"]["terminated"]["exitCode"] == 1
    assert s["lastState"]["terminated"]["reason"] == "Error"
    assert s["restartCount"] == 3 and s["ready"] is False


def test_waiting_reason_not_applied_when_container_will_not_restart():
    pod = make_pod("a", policy="Never")
    st = status(pod, [cs(pod, "a", "exited", exit_code=1)],
                waiting={"a": ("CrashLoopBackOff", "x")})
    assert "terminated" in st["containerStatuses"][0]["state"]


def test_image_pull_waiting_reason_on_never_started_container():
    pod = make_pod("a")
    st = status(pod, [], waiting={"a": ("ErrImagePull", "pull failed")})
    assert st["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ErrImagePull", "message": "pull failed"}}
    assert st["phase"] == "Pending"


def test_failed_init_never_fails_pod():
    pod = make_pod("a", init=("i1",), policy="Never")
    st = status(pod, [cs(pod, "i1", "exited", exit_code=1)])
    assert st["phase"] == "Failed"
    assert conds(st)["Initialized"] == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [i1]")


def test_terminal_phase_is_sticky():
    pod = make_pod("a")
    st = status(pod, [cs(pod, "a")], prev={"phase": "Succeeded"})
    assert st["phase"] == "Succeeded"


@pytest.mark.parametrize("code, phase", [(0, "Succeeded"), (143, "Failed")])
def test_deleted_pod_becomes_terminal(code, phase):
    pod = make_pod("a")
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert status(pod, [cs(pod, "a", "exited", exit_code=code)])["phase"] == phase


def test_get_phase_without_statuses_is_pending():
    assert get_phase(PodView.from_obj(make_pod("a")), [], []) == "Pending"


# -- container statuses -------------------------------------------------------------------------

def test_running_container_status_fields():
    pod = make_pod("a")
    c = cs(pod, "a", created=T0, started=T0 + 2, restarts=1, cid="abc")
    s = status(pod, [c])["containerStatuses"][0]
    assert s == {"name": "a", "image": "busybox", "imageID": "", "containerID": "podling://abc",
                 "lastState": {}, "restartCount": 1, "ready": True, "started": True,
                 "state": {"running": {"startedAt": epoch_rfc3339(T0 + 2)}}}


def test_terminated_state_and_last_state_from_previous_instance():
    pod = make_pod("a")
    first = cs(pod, "a", "exited", exit_code=2, created=T0, finished=T0 + 3, cid="one",
               message="boom")
    second = cs(pod, "a", created=T0 + 10, restarts=1, cid="two")
    s = status(pod, [second, first])["containerStatuses"][0]
    assert s["containerID"] == "podling://two" and "running" in s["state"]
    assert s["lastState"] == {"terminated": {
        "exitCode": 2, "reason": "Error", "message": "boom", "startedAt": epoch_rfc3339(T0),
        "finishedAt": epoch_rfc3339(T0 + 3), "containerID": "podling://one"}}


@pytest.mark.parametrize("reason", ["Completed", "OOMKilled", "StartError"])
def test_terminated_reason_from_runtime(reason):
    pod = make_pod("a", policy="Never")
    code = {"Completed": 0, "OOMKilled": 137, "StartError": 128}[reason]
    s = status(pod, [cs(pod, "a", "exited", exit_code=code, reason=reason)])
    assert s["containerStatuses"][0]["state"]["terminated"]["reason"] == reason


@pytest.mark.parametrize("has_init, reason", [(False, "ContainerCreating"),
                                              (True, "PodInitializing")])
def test_default_waiting_reason(has_init, reason):
    pod = make_pod("a", init=("i1",) if has_init else ())
    s = status(pod, [])
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": reason}}


def test_image_annotations_used_when_present():
    pod = make_pod("a")
    c = cs(pod, "a")
    c.annotations["io.podling.container.image"] = "docker.io/library/busybox:latest"
    c.annotations["io.podling.container.imageID"] = "docker.io/library/busybox@sha256:ab"
    s = status(pod, [c])["containerStatuses"][0]
    assert (s["image"], s["imageID"]) == ("docker.io/library/busybox:latest",
                                          "docker.io/library/busybox@sha256:ab")


def test_vanished_running_container_reported_as_status_unknown():
    pod = make_pod("a")
    prev = {"containerStatuses": [{"name": "a", "restartCount": 2, "lastState": {},
                                   "state": {"running": {"startedAt": epoch_rfc3339(T0)}}}]}
    s = status(pod, [], prev=prev)["containerStatuses"][0]
    assert s["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert s["lastState"]["terminated"]["exitCode"] == 137
    assert s["restartCount"] == 3


def test_readiness_results():
    pod = make_pod("a", "b")
    pod["spec"]["containers"][1]["readinessProbe"] = {"exec": {"command": ["true"]}}
    st = status(pod, [cs(pod, "a"), cs(pod, "b")])
    assert [s["ready"] for s in st["containerStatuses"]] == [True, False]
    assert conds(st)["ContainersReady"] == (
        "False", "ContainersNotReady", "containers with unready status: [b]")
    assert conds(st)["Ready"] == conds(st)["ContainersReady"]
    st = status(pod, [cs(pod, "a"), cs(pod, "b")], readiness={"b": True})
    assert conds(st)["Ready"] == ("True", "", "")


def test_init_container_ready_when_completed():
    pod = make_pod("a", init=("i1", "i2"))
    st = status(pod, [cs(pod, "i1", "exited"), cs(pod, "i2")])
    assert [(s["ready"], s["started"]) for s in st["initContainerStatuses"]] == \
        [(True, False), (False, True)]
    assert conds(st)["Initialized"] == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [i2]")
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


# -- conditions -----------------------------------------------------------------------------------

def test_conditions_of_a_running_pod_in_kubelet_order():
    pod = make_pod("a")
    st = status(pod, [cs(pod, "a")])
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in st["conditions"])
    assert all(c["lastTransitionTime"] == epoch_rfc3339(NOW) for c in st["conditions"])


def test_succeeded_pod_conditions():
    pod = make_pod("a", init=("i1",), policy="Never")
    st = status(pod, [cs(pod, "i1", "exited"), cs(pod, "a", "exited")],
                sandboxes=[sandbox(ready=False)])
    assert st["phase"] == "Succeeded"
    c = conds(st)
    assert c["PodReadyToStartContainers"][0] == "False"
    assert c["Initialized"] == ("True", "PodCompleted", "")
    assert c["ContainersReady"] == ("False", "PodCompleted", "")
    assert c["Ready"] == ("False", "PodCompleted", "")


@pytest.mark.parametrize("sandboxes, ips, ok", [
    ([], ["10.0.0.1"], False),
    ([sandbox(ready=False)], ["10.0.0.1"], False),
    ([sandbox()], [], False),
    ([sandbox()], ["10.0.0.1"], True),
])
def test_pod_ready_to_start_containers(sandboxes, ips, ok):
    pod = make_pod("a")
    st = status(pod, [], sandboxes=sandboxes, ips=ips)
    assert conds(st)["PodReadyToStartContainers"][0] == ("True" if ok else "False")


def test_transition_times_kept_when_unchanged_and_pod_scheduled_kept():
    pod = make_pod("a")
    first = status(pod, [], now=T0)
    prev = {**first, "conditions": [
        *first["conditions"][:-1],
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": epoch_rfc3339(T0)}]}
    second = status(pod, [cs(pod, "a")], prev=prev, now=T0 + 50)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["PodReadyToStartContainers"] == epoch_rfc3339(T0)  # unchanged (True both times)
    assert times["Initialized"] == epoch_rfc3339(T0)
    assert times["Ready"] == epoch_rfc3339(T0 + 50)  # False -> True
    assert times["PodScheduled"] == "2020-01-01T00:00:00Z"
    assert "DisruptionTarget" in times
    assert second["startTime"] == first["startTime"] == epoch_rfc3339(T0)


def test_readiness_gates():
    pod = make_pod("a", readinessGates=[{"conditionType": "example.com/gate"}])
    st = status(pod, [cs(pod, "a")])
    assert conds(st)["Ready"] == (
        "False", "ReadinessGatesNotReady",
        'corresponding condition of pod readiness gate "example.com/gate" does not exist.')
    prev = {"conditions": [{"type": "example.com/gate", "status": "True"}]}
    assert conds(status(pod, [cs(pod, "a")], prev=prev))["Ready"][0] == "True"


def test_ips_and_kept_fields():
    pod = make_pod("a")
    prev = {"qosClass": "BestEffort", "podIPs": [{"ip": "10.42.0.9"}],
            "startTime": "2020-01-01T00:00:00Z"}
    st = status(pod, [], prev=prev, ips=())
    assert st["podIP"] == "10.42.0.9" and st["podIPs"] == [{"ip": "10.42.0.9"}]
    assert st["hostIP"] == "192.168.1.2" and st["hostIPs"] == [{"ip": "192.168.1.2"}]
    assert st["qosClass"] == "BestEffort" and st["startTime"] == "2020-01-01T00:00:00Z"


# -- sidecars ------------------------------------------------------------------------------------

@pytest.mark.parametrize("side, app_code, phase", [
    ("running", None, "Running"),  # app running, sidecar running
    ("running", 0, "Running"),  # the app finished; the sidecar is still being stopped
    ("exited", 0, "Succeeded"),  # stopped sidecars do not count
    ("exited", 1, "Failed"),
])
def test_sidecar_phase_and_conditions(side, app_code, phase):
    pod = make_pod("a", init=("side",), policy="Never")
    pod["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    app = cs(pod, "a") if app_code is None else cs(pod, "a", "exited", exit_code=app_code)
    st = status(pod, [cs(pod, "side", side, exit_code=143), app])
    assert st["phase"] == phase
    assert conds(st)["Initialized"][0] == "True"
    [side_status] = st["initContainerStatuses"]
    assert side_status["ready"] == (side == "running")
    assert side_status["started"] == (side == "running")


def test_a_starting_sidecar_keeps_the_pod_initializing():
    pod = make_pod("a", init=("side", "i2"))
    pod["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    st = status(pod, [cs(pod, "side")])
    assert st["phase"] == "Pending"
    assert conds(st)["Initialized"] == ("False", "ContainersNotInitialized",
                                        "containers with incomplete status: [i2]")
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_a_sidecar_readiness_probe_counts_for_containers_ready():
    pod = make_pod("a", init=("side",))
    pod["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    pod["spec"]["initContainers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    running = [cs(pod, "side"), cs(pod, "a", created=T0 + 5)]
    st = status(pod, running)
    assert st["initContainerStatuses"][0]["ready"] is False
    assert conds(st)["ContainersReady"] == (
        "False", "ContainersNotReady", "containers with unready status: [side]")
    assert conds(st)["Ready"] == conds(st)["ContainersReady"]
    st = status(pod, running, readiness={"side": True})
    assert st["initContainerStatuses"][0]["ready"] is True
    assert conds(st)["Ready"] == ("True", "", "")
    # sidecars are named first, then the app containers
    st = status(pod, [cs(pod, "side")])
    assert conds(st)["ContainersReady"][2] == (
        "containers with unready status: [side a]")
