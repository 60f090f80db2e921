"""Table tests of compute_pod_actions (kubelet computePodActions semantics)."""

from __future__ import annotations

import dataclasses

import pytest
from agent_builders import T0, cs, make_pod, sandbox

from podling.agent.backoff import Backoff
from podling.agent.pod.actions import (CRASH_LOOP_BACK_OFF, KILL_NOT_IN_SPEC, KILL_SPEC_CHANGED,
                                       KILL_UNKNOWN, REASON_NEW, REASON_RESTART,
                                       REASON_SPEC_CHANGED)
from podling.agent.pod.plan import compute_pod_actions
from podling.agent.pod.starting import record_restart
from podling.api.views import PodView

NOW = T0 + 100


def plan(pod, sandboxes, containers, *, now=NOW, backoff=None):
    return compute_pod_actions(PodView.from_obj(pod), sandboxes, containers, now=now,
                               backoff=backoff or Backoff())


def started(actions):
    return [(s.name, s.reason) for s in actions.containers_to_start]


# -- restartPolicy × exit code ----------------------------------------------------------------

@pytest.mark.parametrize("policy, exit_code, restart", [
    ("Always", 0, True), ("Always", 1, True),
    ("OnFailure", 0, False), ("OnFailure", 1, True), ("OnFailure", 137, True),
    ("Never", 0, False), ("Never", 1, False),
])
def test_restart_policy_matrix(policy, exit_code, restart):
    pod = make_pod("a", policy=policy)
    a = plan(pod, [sandbox()], [cs(pod, "a", "exited", exit_code=exit_code, restarts=2)])
    assert started(a) == ([("a", REASON_RESTART)] if restart else [])
    if restart:
        assert a.containers_to_start[0].restart_count == 3
        assert not a.kill_pod
    else:
        # nothing runs and nothing will: the sandbox is stopped
        assert a.kill_pod and a.kill_sandboxes == ["sb1"] and not a.create_sandbox


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_a_container_stopped_before_it_started_is_started_again(policy):
    """The agent was killed between create and start; the leftover was stopped (exit 0,
    never started): it did not run, so it starts whatever the restartPolicy, at once."""
    pod = make_pod("a", policy=policy)
    leftover = dataclasses.replace(cs(pod, "a", "exited"), started_at=0.0, reason="",
                                   message="stopped before it was started")
    a = plan(pod, [sandbox()], [leftover])
    assert started(a) == [("a", REASON_RESTART)] and not a.kill_pod and not a.waiting


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_two_containers_one_finished_one_running(policy):
    pod = make_pod("a", "b", policy=policy)
    a = plan(pod, [sandbox()], [cs(pod, "a", "exited", exit_code=0), cs(pod, "b")])
    assert started(a) == ([("a", REASON_RESTART)] if policy == "Always" else [])
    assert not a.kill_pod and a.containers_to_kill == {}


def test_new_pod_creates_sandbox_then_starts_all():
    pod = make_pod("a", "b")
    a = plan(pod, [], [])
    assert a.create_sandbox and a.sandbox_attempt == 0 and not a.sandbox_changed
    assert started(a) == [("a", REASON_NEW), ("b", REASON_NEW)]
    b = plan(pod, [sandbox()], [])
    assert not b.create_sandbox and b.sandbox_id == "sb1"
    assert started(b) == [("a", REASON_NEW), ("b", REASON_NEW)]


def test_running_containers_are_kept():
    pod = make_pod("a", "b")
    a = plan(pod, [sandbox()], [cs(pod, "a"), cs(pod, "b")])
    assert (a.kill_pod, a.create_sandbox, a.containers_to_start, a.containers_to_kill) == \
        (False, False, [], {})


# -- sandbox re-creation --------------------------------------------------------------------

@pytest.mark.parametrize("sandboxes, attempt", [
    ([sandbox(ready=False, attempt=2)], 3),
    ([sandbox("old", attempt=0, created=T0), sandbox("sb1", attempt=1, created=T0 + 1)], 2),
    ([sandbox(host_network=True)], 1),
])
def test_sandbox_recreated(sandboxes, attempt):
    pod = make_pod("a")
    live = cs(pod, "a", sandbox_id=sandboxes[-1].id, cid="live")
    a = plan(pod, sandboxes, [live])
    assert a.create_sandbox and a.kill_pod and a.sandbox_changed
    assert a.sandbox_attempt == attempt and a.sandbox_id == ""
    assert "live" in a.containers_to_kill
    assert a.containers_to_kill["live"].container.raw == pod["spec"]["containers"][0]
    # every sandbox it replaces, a dead one too (its network is given back first)
    assert a.kill_sandboxes == [s.id for s in sorted(sandboxes, key=lambda s: -s.created_at)]
    assert started(a) == [("a", REASON_RESTART)]


def test_host_network_pod_keeps_host_network_sandbox():
    pod = make_pod("a", hostNetwork=True)
    assert not plan(pod, [sandbox(host_network=True)], [cs(pod, "a")]).create_sandbox


@pytest.mark.parametrize("policy, exit_code, create", [
    ("Never", 0, False), ("Never", 1, False),
    ("OnFailure", 0, False), ("OnFailure", 1, True),
    ("Always", 0, True),
])
def test_dead_sandbox_of_finished_pod_not_recreated(policy, exit_code, create):
    pod = make_pod("a", policy=policy)
    a = plan(pod, [sandbox(ready=False)], [cs(pod, "a", "exited", exit_code=exit_code)])
    assert a.kill_pod and a.create_sandbox is create
    assert started(a) == ([("a", REASON_RESTART)] if create else [])


def test_never_pod_retries_sandbox_when_no_container_ever_ran():
    pod = make_pod("a", policy="Never")
    a = plan(pod, [sandbox(ready=False)], [])
    assert a.create_sandbox and a.sandbox_attempt == 1 and started(a) == [("a", REASON_NEW)]


@pytest.mark.parametrize("state", ["created", "never ran"])
def test_never_pod_retries_sandbox_when_its_container_did_not_run(state):
    """The agent killed while the sandbox's pause started (it is dead to the runtime) and
    after its container was created: that container never ran, so the pod gets a new
    sandbox and the container runs there (found by the agent kill campaign at kills 458
    and 13: the pod stayed Pending for good)."""
    pod = make_pod("a", policy="Never")
    leftover = cs(pod, "a", "created") if state == "created" else dataclasses.replace(
        cs(pod, "a", "exited"), started_at=0.0, message="stopped before it was started")
    a = plan(pod, [sandbox(ready=False)], [leftover])
    assert a.create_sandbox and a.sandbox_attempt == 1
    assert started(a) == [("a", REASON_RESTART)]


def test_new_sandbox_reruns_init_from_the_first_and_purges_old_ones():
    pod = make_pod("a", init=("i1", "i2"))
    old = [cs(pod, "i1", "exited", cid="i1x"), cs(pod, "i2", "exited", cid="i2x"),
           cs(pod, "a", "exited", exit_code=1, cid="ax")]
    a = plan(pod, [sandbox(ready=False)], old)
    assert a.create_sandbox and a.next_init_container.name == "i1"
    assert sorted(a.purge_init_containers) == ["i1x", "i2x"]
    assert a.containers_to_start == []


# -- init containers --------------------------------------------------------------------------

@pytest.mark.parametrize("states, expect", [
    ({}, ("i1", REASON_NEW)),
    ({"i1": ("running", 0)}, None),
    ({"i1": ("exited", 0)}, ("i2", REASON_NEW)),
    ({"i1": ("exited", 0), "i2": ("running", 0)}, None),
    ({"i1": ("exited", 0), "i2": ("exited", 1)}, ("i2", REASON_RESTART)),
    ({"i1": ("created", 0)}, ("i1", REASON_RESTART)),
])
def test_init_containers_run_one_at_a_time_in_order(states, expect):
    pod = make_pod("a", init=("i1", "i2"))
    statuses = [cs(pod, n, st, exit_code=code, created=T0 + i)
                for i, (n, (st, code)) in enumerate(states.items())]
    a = plan(pod, [sandbox()], statuses)
    got = a.next_init_container
    assert (None if got is None else (got.name, got.reason)) == expect
    assert a.containers_to_start == [] and not a.kill_pod


def test_init_done_starts_app_containers():
    pod = make_pod("a", "b", init=("i1",))
    a = plan(pod, [sandbox()], [cs(pod, "i1", "exited")])
    assert a.next_init_container is None
    assert started(a) == [("a", REASON_NEW), ("b", REASON_NEW)]


def test_init_considered_done_when_an_app_container_runs():
    pod = make_pod("a", init=("i1",))
    a = plan(pod, [sandbox()], [cs(pod, "a")])  # init container garbage-collected
    assert a.next_init_container is None and a.containers_to_start == []


@pytest.mark.parametrize("policy, kill", [("Never", True), ("OnFailure", False),
                                          ("Always", False)])
def test_failed_init_container(policy, kill):
    pod = make_pod("a", init=("i1",), policy=policy)
    a = plan(pod, [sandbox()], [cs(pod, "i1", "exited", exit_code=2)])
    assert a.init_failed and a.kill_pod is kill
    assert (a.next_init_container is None) is kill
    assert a.containers_to_start == []


def test_unknown_init_container_killed_before_restart():
    pod = make_pod("a", init=("i1",))
    a = plan(pod, [sandbox()], [cs(pod, "i1", "unknown", cid="u")])
    assert a.containers_to_kill["u"].reason == KILL_UNKNOWN
    assert a.containers_to_kill["u"].message == \
        'Container is in "unknown" state, try killing it before restart'
    assert a.next_init_container.reason == REASON_RESTART


def test_init_containers_of_an_old_sandbox_do_not_count():
    pod = make_pod("a", init=("i1",))
    a = plan(pod, [sandbox("old", ready=False, created=T0), sandbox("new", created=T0 + 1)],
             [cs(pod, "i1", "exited", sandbox_id="old")])
    assert a.next_init_container.name == "i1"


# -- spec changes, strays, deletion --------------------------------------------------------

def test_hash_change_kills_and_recreates():
    pod = make_pod("a", "b")
    a = plan(pod, [sandbox()], [cs(pod, "a", spec_hash="stale", restarts=1, cid="ca"),
                                cs(pod, "b")])
    kill = a.containers_to_kill["ca"]
    assert kill.reason == KILL_SPEC_CHANGED
    assert kill.message == "Container a definition changed, will be restarted"
    assert started(a) == [("a", REASON_SPEC_CHANGED)]
    assert a.containers_to_start[0].restart_count == 2 and not a.kill_pod


def test_container_not_in_spec_is_killed():
    pod = make_pod("a")
    a = plan(pod, [sandbox()], [cs(pod, "a"), cs(pod, "ghost", cid="g")])
    assert a.containers_to_kill["g"].reason == KILL_NOT_IN_SPEC
    assert a.containers_to_kill["g"].container is None


@pytest.mark.parametrize("status", [{"phase": "Succeeded"}, {"phase": "Failed"}, None])
def test_deleted_or_terminal_pod_is_killed(status):
    pod = make_pod("a")
    if status is None:
        pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    else:
        pod["status"] = status
    a = plan(pod, [sandbox()], [cs(pod, "a", cid="ca"), cs(pod, "x", "exited")])
    assert a.kill_pod and not a.create_sandbox and a.containers_to_start == []
    assert list(a.containers_to_kill) == ["ca"] and a.kill_sandboxes == ["sb1"]
    assert a.containers_to_kill["ca"].container.name == "a"  # preStop must run
    assert a.containers_to_kill["ca"].message == "Stopping container a"


# -- back-off --------------------------------------------------------------------------------

def test_crash_loop_back_off_sequence():
    pod = make_pod("a")
    bo = Backoff()
    now = NOW
    delays = []
    restarts = 0
    for _ in range(7):
        exited = cs(pod, "a", "exited", exit_code=1, restarts=restarts, created=now - 1,
                    finished=now)
        a = plan(pod, [sandbox()], [exited], now=now, backoff=bo)
        if restarts == 0:  # the first restart is immediate
            assert started(a) == [("a", REASON_RESTART)]
        else:
            assert started(a) == [] and not a.kill_pod
            reason, message = a.waiting["a"]
            assert reason == CRASH_LOOP_BACK_OFF
            delays.append(a.requeue_after)
            assert message.endswith(" restarting failed container=a pod=p_default(u1)")
            now += a.requeue_after
            a = plan(pod, [sandbox()], [exited], now=now, backoff=bo)
            assert started(a) == [("a", REASON_RESTART)] and a.waiting == {}
        record_restart(bo, PodView.from_obj(pod), a.containers_to_start[0], now=now)
        restarts += 1
    assert delays == [10, 20, 40, 80, 160, 300]


def test_back_off_message_formats_go_duration():
    pod = make_pod("a")
    bo = Backoff()
    for _ in range(5):
        bo.record_failure(("u1", "a"), NOW - 1)
    a = plan(pod, [sandbox()], [cs(pod, "a", "exited", exit_code=1, finished=NOW - 1)],
             backoff=bo)
    assert a.waiting["a"][1] == \
        "back-off 2m40s restarting failed container=a pod=p_default(u1)"


def test_back_off_held_container_keeps_sandbox():
    pod = make_pod("a")
    bo = Backoff()
    bo.record_failure(("u1", "a"), NOW - 2)
    a = plan(pod, [sandbox()], [cs(pod, "a", "exited", exit_code=1, finished=NOW - 1)],
             backoff=bo)
    assert started(a) == [] and not a.kill_pod and a.kill_sandboxes == []


def test_init_container_back_off():
    pod = make_pod("a", init=("i1",), policy="OnFailure")
    bo = Backoff()
    bo.record_failure(("u1", "i1"), NOW - 2)
    a = plan(pod, [sandbox()], [cs(pod, "i1", "exited", exit_code=1, finished=NOW - 1)],
             backoff=bo)
    assert a.next_init_container is None and a.init_failed
    assert a.waiting["i1"][0] == CRASH_LOOP_BACK_OFF


def test_spec_change_ignores_back_off():
    pod = make_pod("a")
    bo = Backoff()
    bo.record_failure(("u1", "a"), NOW - 1)
    a = plan(pod, [sandbox()], [cs(pod, "a", spec_hash="old")], backoff=bo)
    assert started(a) == [("a", REASON_SPEC_CHANGED)]


# -- activeDeadlineSeconds ----------------------------------------------------------------------

def _stamp(epoch: float) -> str:
    from podling.util.timefmt import epoch_rfc3339
    return epoch_rfc3339(epoch)


@pytest.mark.parametrize("deadline, start, exceeded, requeue", [
    (None, T0, False, None),  # no deadline: no requeue
    (150, T0, False, 50.0),  # 100 s of 150 gone: look again in 50 s
    (100, T0, True, None),  # exactly at the deadline: exceeded (duration >= allowed)
    (30, T0, True, None),
    (30, None, False, 30.0),  # no startTime yet: counted from now
])
def test_active_deadline(deadline, start, exceeded, requeue):
    extra = {} if deadline is None else {"activeDeadlineSeconds": deadline}
    pod = make_pod("a", **extra)
    if start is not None:
        pod["status"]["startTime"] = _stamp(start)
    a = plan(pod, [sandbox()], [cs(pod, "a")])
    assert a.deadline_exceeded == exceeded
    if exceeded:
        assert a.kill_pod and list(a.containers_to_kill) and a.kill_sandboxes == ["sb1"]
        assert not a.containers_to_start and not a.create_sandbox
    else:
        assert not a.kill_pod and a.requeue_after == requeue


def test_active_deadline_requeues_at_the_sooner_of_deadline_and_back_off():
    pod = make_pod("a", activeDeadlineSeconds=105)
    pod["status"]["startTime"] = _stamp(T0)
    backoff = Backoff()
    a = plan(pod, [sandbox()], [cs(pod, "a", "exited", exit_code=1, finished=NOW - 1)],
             backoff=backoff)
    assert a.requeue_after == 5.0  # deadline in 5 s; a restart would start now


# -- sidecars (init containers with restartPolicy: Always) ------------------------------------

def sidecar_pod(policy="Always"):
    pod = make_pod("a", init=("side", "i2"), policy=policy)
    pod["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    return pod


@pytest.mark.parametrize("states, next_init, starts, kill", [
    ({}, "side", [], False),  # the sidecar first
    ({"side": ("running", 0)}, "i2", [], False),  # started: the next init container
    ({"side": ("running", 0), "i2": ("exited", 0)}, None, [("a", REASON_NEW)], False),
    ({"side": ("running", 0), "i2": ("exited", 0), "a": ("running", 0)}, None, [], False),
    # a sidecar that exits is restarted beside the running app, whatever its exit code
    ({"side": ("exited", 0), "i2": ("exited", 0), "a": ("running", 0)}, None,
     [("side", REASON_RESTART)], False),
    # before initialization an exited sidecar is started again before anything else
    ({"side": ("exited", 1)}, "side", [], False),
])
def test_sidecars_start_in_order_and_keep_running(states, next_init, starts, kill):
    pod = sidecar_pod()
    statuses = [cs(pod, n, st, exit_code=code, created=T0 + i)
                for i, (n, (st, code)) in enumerate(states.items())]
    a = plan(pod, [sandbox()], statuses)
    got = a.next_init_container
    assert (None if got is None else got.name) == next_init
    assert started(a) == starts and a.kill_pod == kill
    assert all(s.init == (s.name == "side") for s in a.containers_to_start)
    if next_init == "side":
        assert a.requeue_after == 1.0  # look again once it runs


@pytest.mark.parametrize("side_state", ["running", "exited"])
def test_sidecars_do_not_keep_a_finished_pod_alive(side_state):
    pod = sidecar_pod("Never")
    statuses = [cs(pod, "side", side_state, exit_code=143), cs(pod, "i2", "exited"),
                cs(pod, "a", "exited", exit_code=0, cid="app")]
    a = plan(pod, [sandbox()], statuses)
    assert a.kill_pod and a.containers_to_start == [] and a.next_init_container is None
    killed = {k.name for k in a.containers_to_kill.values()}
    assert killed == ({"side"} if side_state == "running" else set())


# -- liveness / startup probe failures ----------------------------------------------------------


@pytest.mark.parametrize("policy, kind, grace, message, restarts", [
    ("Always", "liveness", 5, "Container a failed liveness probe, will be restarted", True),
    ("OnFailure", "startup", None, "Container a failed startup probe, will be restarted",
     True),
    ("Never", "liveness", None, "Container a failed liveness probe", False),
])
def test_a_failed_probe_kills_and_restarts_as_a_crash(policy, kind, grace, message, restarts):
    pod = make_pod("a", "b", policy=policy)
    probe = {"exec": {"command": ["x"]}}
    if grace is not None:
        probe["terminationGracePeriodSeconds"] = grace
    pod["spec"]["containers"][0][f"{kind}Probe"] = probe
    running = cs(pod, "a", restarts=2, cid="ca")
    a = compute_pod_actions(PodView.from_obj(pod), [sandbox()], [running, cs(pod, "b")],
                            now=NOW, backoff=Backoff(), probe_failures={"ca": kind})
    kill = a.containers_to_kill["ca"]
    assert (kill.message, kill.grace) == (message, None if grace is None else float(grace))
    assert started(a) == ([("a", REASON_RESTART)] if restarts else [])
    if restarts:
        assert a.containers_to_start[0].restart_count == 3
    assert not a.kill_pod


def test_a_probe_restart_waits_while_an_earlier_restart_backs_off():
    pod = make_pod("a")
    pod["spec"]["containers"][0]["livenessProbe"] = {"exec": {"command": ["x"]}}
    backoff = Backoff()
    backoff.record_failure(("u1", "a"), NOW - 4)
    a = compute_pod_actions(PodView.from_obj(pod), [sandbox()], [cs(pod, "a", cid="ca")],
                            now=NOW, backoff=backoff, probe_failures={"ca": "liveness"})
    assert "ca" in a.containers_to_kill and started(a) == []
    assert a.waiting["a"][0] == CRASH_LOOP_BACK_OFF and a.requeue_after == 10.0
    assert not a.kill_pod


# -- sidecars and their probes ------------------------------------------------------------------


def test_a_sidecar_startup_probe_gates_the_next_init_container():
    pod = sidecar_pod()
    pod["spec"]["initContainers"][0]["startupProbe"] = {"exec": {"command": ["x"]}}
    side = cs(pod, "side", cid="cs")
    view = PodView.from_obj(pod)
    waiting = compute_pod_actions(view, [sandbox()], [side], now=NOW, backoff=Backoff(),
                                  unstarted={"cs"})
    assert waiting.next_init_container is None and waiting.requeue_after == 1.0
    assert not waiting.containers_to_kill and started(waiting) == []
    passed = compute_pod_actions(view, [sandbox()], [side], now=NOW, backoff=Backoff())
    assert passed.next_init_container is not None
    assert passed.next_init_container.name == "i2"
    # once the pod is initialized, a sidecar's startup probe gates nothing
    later = compute_pod_actions(view, [sandbox()], [side, cs(pod, "i2", "exited"),
                                                     cs(pod, "a", created=T0 + 5)],
                                now=NOW, backoff=Backoff(), unstarted={"cs"})
    assert later.next_init_container is None and not later.kill_pod


@pytest.mark.parametrize("policy, initialized", [("Always", True), ("Never", True),
                                                 ("Never", False)])
def test_a_sidecar_failing_its_probe_is_restarted_whatever_the_policy(policy, initialized):
    pod = sidecar_pod(policy)
    pod["spec"]["initContainers"][0]["livenessProbe"] = {"exec": {"command": ["x"]}}
    statuses = [cs(pod, "side", cid="cs", restarts=1)]
    if initialized:
        statuses += [cs(pod, "i2", "exited"), cs(pod, "a", created=T0 + 5)]
    a = compute_pod_actions(PodView.from_obj(pod), [sandbox()], statuses, now=NOW,
                            backoff=Backoff(), probe_failures={"cs": "liveness"})
    assert a.containers_to_kill["cs"].message == "Init container side failed liveness probe"
    start = a.containers_to_start[0] if initialized else a.next_init_container
    assert start is not None and (start.name, start.reason, start.restart_count) == (
        "side", REASON_RESTART, 2)
    assert start.init == initialized and not a.kill_pod


def test_stop_groups_put_sidecars_last_in_reverse_order():
    from podling.agent.pod.sidecars import grace_left, stop_groups
    pod = make_pod("a", "b", init=("s1", "i", "s2"))
    for i in (0, 2):
        pod["spec"]["initContainers"][i]["restartPolicy"] = "Always"
    view = PodView.from_obj(pod)
    assert stop_groups(view, ["s1", "a", "s2", "b"]) == [["a", "b"], ["s2"], ["s1"]]
    assert stop_groups(view, ["s1"]) == [["s1"]]
    assert (grace_left(30, 5), grace_left(30, 40), grace_left(0, 1)) == (25, 2, 0)
