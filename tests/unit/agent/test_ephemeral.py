"""Ephemeral containers in the agent: the plan starts each once (:mod:`podling.agent.pod.
ephemeral`), sync_pod runs it in the target's PID namespace against the fakes, and the
status reports it apart from the other containers."""

from __future__ import annotations

import copy

import pytest
from agent_builders import T0, cs
from agent_builders import make_pod as plain_pod
from agent_builders import sandbox
from sync_harness import Harness, ctr, deleted, make_harness, make_pod

from podling.agent.backoff import Backoff
from podling.agent.kuberuntime import labels as L
from podling.agent.pod.actions import REASON_NEW
from podling.agent.pod.plan import compute_pod_actions
from podling.api.views import PodView

NOW = T0 + 100


def with_debugger(pod: dict, name: str = "dbg", **fields) -> dict:
    out = copy.deepcopy(pod)
    out["spec"].setdefault("ephemeralContainers", []).append(
        {"name": name, "image": "busybox", **fields})
    return out


def plan(pod, sandboxes, containers):
    return compute_pod_actions(PodView.from_obj(pod), sandboxes, containers, now=NOW,
                               backoff=Backoff())


def ephemeral_starts(actions) -> list[tuple[str, str]]:
    return [(s.name, s.reason) for s in actions.ephemeral_to_start]


# -- the plan (pure) --------------------------------------------------------------------------


def test_a_new_ephemeral_container_is_started_once_and_never_again() -> None:
    pod = with_debugger(plain_pod("a"))
    app = cs(pod, "a")
    a = plan(pod, [sandbox()], [app])
    assert ephemeral_starts(a) == [("dbg", REASON_NEW)]
    assert a.containers_to_start == [] and a.containers_to_kill == {} and not a.kill_pod
    for state, code in (("running", 0), ("exited", 0), ("exited", 1)):
        debugger = cs(pod, "dbg", state, exit_code=code)
        a = plan(pod, [sandbox()], [app, debugger])
        assert ephemeral_starts(a) == [] and a.containers_to_kill == {}, state


def test_an_ephemeral_container_of_an_old_sandbox_is_not_started_again() -> None:
    pod = with_debugger(plain_pod("a"))
    old = cs(pod, "dbg", "exited", sandbox_id="sb0")
    a = plan(pod, [sandbox(), sandbox("sb0", ready=False, created=T0 - 50)],
             [cs(pod, "a"), old])
    assert ephemeral_starts(a) == []


@pytest.mark.parametrize("situation", ["no sandbox", "terminal", "deleted", "all done"])
def test_no_ephemeral_start_when_the_pod_is_not_running_on(situation) -> None:
    pod = with_debugger(plain_pod("a", policy="Never"))
    containers = [cs(pod, "a")]
    sandboxes = [sandbox()]
    if situation == "no sandbox":
        sandboxes, containers = [], []
    elif situation == "terminal":
        pod["status"]["phase"] = "Succeeded"
    elif situation == "deleted":
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    else:
        containers = [cs(pod, "a", "exited", exit_code=0)]
    a = plan(pod, sandboxes, containers)
    assert ephemeral_starts(a) == []


def test_a_killed_pod_stops_its_ephemeral_containers_too() -> None:
    pod = with_debugger(plain_pod("a", policy="Never"))
    debugger = cs(pod, "dbg")
    a = plan(pod, [sandbox()], [cs(pod, "a", "exited", exit_code=0), debugger])
    assert a.kill_pod and debugger.id in a.containers_to_kill
    assert a.containers_to_kill[debugger.id].container is not None  # its spec, not a stray


# -- sync_pod against the fakes ---------------------------------------------------------------


@pytest.fixture
async def h(tmp_path):
    harness = make_harness(tmp_path)
    yield harness
    await harness.close()


async def running_pod(h: Harness, **spec) -> tuple[dict, str]:
    pod = make_pod(ctr("c"), ctr("other"), **spec)
    await h.sync(pod)
    app_id = h.started()[0]
    h.forget_calls()
    return h.api_pod(pod), app_id


def ephemeral_status(h: Harness, name: str = "dbg") -> dict:
    return next(s for s in h.status()["ephemeralContainerStatuses"] if s["name"] == name)


async def test_the_debugger_joins_the_target_pid_namespace_and_is_reported(h) -> None:
    pod, app_id = await running_pod(h)
    pod = with_debugger(pod, targetContainerName="c", stdin=True, tty=True, command=["sh"])
    result = await h.sync(pod)
    assert not result.errors()
    [(_, config)] = h.runtime.calls_of("create_container")
    assert config.pid_target == app_id and config.tty and config.stdin
    assert config.labels[L.CONTAINER_TYPE] == "ephemeral"
    status = ephemeral_status(h)
    assert "running" in status["state"] and status["ready"] is False
    assert "started" not in status and status["restartCount"] == 0
    assert h.status()["phase"] == "Running"
    assert [s["name"] for s in h.status()["containerStatuses"]] == ["c", "other"]
    await h.recorder.flush()
    paths = {(e["reason"], e["involvedObject"]["fieldPath"]) for e in h.client.events}
    assert {("Created", "spec.ephemeralContainers{dbg}"),
            ("Started", "spec.ephemeralContainers{dbg}")} <= paths


@pytest.mark.parametrize("spec", [{"shareProcessNamespace": True}, {"hostPID": True}])
async def test_a_pod_wide_pid_namespace_needs_no_target(h, spec) -> None:
    pod, _ = await running_pod(h, **spec)
    await h.sync(with_debugger(pod, targetContainerName="c"))
    [(_, config)] = h.runtime.calls_of("create_container")
    assert config.pid_target == ""


async def test_without_target_it_gets_its_own_pid_namespace(h) -> None:
    pod, _ = await running_pod(h)
    await h.sync(with_debugger(pod))
    [(_, config)] = h.runtime.calls_of("create_container")
    assert config.pid_target == ""


async def test_an_exited_debugger_is_never_restarted(h) -> None:
    pod, _ = await running_pod(h)
    pod = with_debugger(pod, targetContainerName="c")
    await h.sync(pod)
    [debugger_id] = h.started()
    h.exit(debugger_id, 3, ago=400)
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    assert h.started() == []
    term = ephemeral_status(h)["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert h.status()["phase"] == "Running"


async def test_a_target_that_does_not_run_holds_the_debugger(h) -> None:
    pod, app_id = await running_pod(h, restartPolicy="Never")
    h.exit(app_id, 1)
    pod = with_debugger(h.api_pod(pod), targetContainerName="c")
    result = await h.sync(pod)
    assert h.runtime.calls_of("create_container") == []
    message = "unable to find target container c"
    assert ephemeral_status(h)["state"] == {"waiting": {
        "reason": "CreateContainerConfigError", "message": message}}
    assert ("Warning", "Failed", f"Error: {message}") in await h.events()
    assert [(r.error, r.message) for r in result.errors()] == [
        ("CreateContainerConfigError", message)]


async def test_a_debugger_waits_as_container_creating_until_it_runs(h) -> None:
    pod = with_debugger(make_pod(ctr("c")), targetContainerName="c")
    await h.sync(pod)  # the first pass makes the sandbox and starts the app container
    assert ephemeral_status(h)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    await h.sync(h.api_pod(pod))
    assert "running" in ephemeral_status(h)["state"]


async def test_deleting_the_pod_stops_the_debugger(h) -> None:
    pod, _ = await running_pod(h)
    pod = with_debugger(pod)
    await h.sync(pod)
    [debugger_id] = h.started()
    await h.sync(deleted(h.api_pod(pod), grace=5), terminating=True)
    assert debugger_id in [args[0] for args in h.runtime.calls_of("stop_container")]
