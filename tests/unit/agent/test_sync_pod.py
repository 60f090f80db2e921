"""Table tests of PodSyncer.sync against the fakes (sync_harness): what the runtime, the
network and the API see for each situation a kubelet must handle."""

from __future__ import annotations

import os

import pytest
from sync_harness import NODE_IP, Harness, ctr, deleted, make_harness, make_pod

from podling.agent.kuberuntime import podfiles
from podling.agent.pod.sync_result import SyncAction
from podling.api.errors import ApiError
from podling.images.errors import RegistryError
from podling.network.interface import NetworkError
from podling.runtime.interface import ExecResult, RuntimeError_

SANDBOX_CHANGED = "Pod sandbox changed, it will be killed and re-created."
BACKOFF_EVENT = "Back-off restarting failed container c in pod p_default(u1)"


@pytest.fixture
async def h(tmp_path):
    harness = make_harness(tmp_path)
    yield harness
    await harness.close()


async def run(h: Harness, pod: dict) -> str:
    """Sync ``pod`` until its one container runs; its id."""
    await h.sync(pod)
    [cid] = h.started()
    return cid


def sandbox_ids(h: Harness) -> list[str]:
    return [args[0] for args in h.runtime.calls_of("stop_pod_sandbox")]


# -- restart policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy, code, restarted, phase", [
    ("Always", 0, True, "Running"),
    ("Always", 1, True, "Running"),
    ("OnFailure", 0, False, "Succeeded"),
    ("OnFailure", 1, True, "Running"),
    ("Never", 0, False, "Succeeded"),
    ("Never", 1, False, "Failed"),
])
async def test_restart_policy_decides_whether_an_exited_container_restarts(
        h, policy, code, restarted, phase) -> None:
    pod = make_pod(policy=policy)
    cid = await run(h, pod)
    h.exit(cid, code)
    h.forget_calls()
    result = await h.sync(h.api_pod(pod))
    status = h.container_status()
    assert h.status()["phase"] == phase
    assert status["restartCount"] == int(restarted)
    assert not result.errors() and result.requeue_after is None
    if restarted:
        assert h.calls().count("start_container") == 1
        assert "run_pod_sandbox" not in h.calls()  # the same sandbox
        assert status["state"].keys() == {"running"}
        assert status["lastState"]["terminated"]["exitCode"] == code
        assert sandbox_ids(h) == []
    else:
        assert "create_container" not in h.calls()
        assert status["state"]["terminated"]["exitCode"] == code
        assert len(sandbox_ids(h)) == 1  # nothing left to run: the sandbox is stopped
        h.forget_calls()
        await h.sync(h.api_pod(pod))  # level-triggered: the next pass changes nothing
        assert set(h.calls()) == {"list_pod_sandbox", "list_containers"}
        assert h.status()["phase"] == phase


# -- crash-loop back-off ------------------------------------------------------------------------


@pytest.mark.parametrize("ago, held", [
    (0.0, True),  # just crashed again: wait the first back-off (10 s)
    (6.0, True),  # 4 s of the back-off left
    (11.0, False),  # the back-off has passed since it exited: restart now
])
async def test_a_second_failure_within_the_back_off_is_held(h, ago, held) -> None:
    pod = make_pod()
    first = await run(h, pod)
    h.exit(first, 1, ago=500)
    await h.sync(h.api_pod(pod))  # the first restart is immediate and starts the back-off
    second = h.started()[1]
    h.exit(second, 1, ago=ago)
    await h.events()
    h.client.events.clear()
    h.forget_calls()
    result = await h.sync(h.api_pod(pod))
    status = h.container_status()
    if held:
        assert "create_container" not in h.calls()
        assert await h.events() == [("Warning", "BackOff", BACKOFF_EVENT)]
        assert status["state"]["waiting"] == {
            "reason": "CrashLoopBackOff",
            "message": "back-off 10s restarting failed container=c pod=p_default(u1)"}
        assert status["lastState"]["terminated"]["exitCode"] == 1
        assert status["restartCount"] == 1 and h.status()["phase"] == "Running"
        assert 10 - ago - 1 < result.requeue_after <= 10 - ago  # wake when it expires
        assert sandbox_ids(h) == []  # a held container does not kill the pod
        assert h.client.events[-1]["involvedObject"]["fieldPath"] == "spec.containers{c}"
        await h.sync(h.api_pod(pod))  # still held: the same event, counted again
        assert [(e["reason"], e["count"]) for e in h.client.events] == [
            ("BackOff", 1), ("BackOff", 2)]
        assert h.client.events[0]["metadata"]["name"] == h.client.events[1]["metadata"]["name"]
    else:
        assert h.calls().count("start_container") == 1
        assert "BackOff" not in await h.reasons()
        assert status["state"].keys() == {"running"} and status["restartCount"] == 2
        assert result.requeue_after is None


async def test_the_back_off_ends_when_the_injected_clock_passes_it(tmp_path) -> None:
    h = make_harness(tmp_path)
    try:
        pod = make_pod()
        h.exit(await run(h, pod), 1)
        await h.sync(h.api_pod(pod))
        h.exit(h.started()[1], 1)
        await h.sync(h.api_pod(pod))
        assert len(h.started()) == 2  # held
        h.clock.advance(11)
        await h.sync(h.api_pod(pod))
        assert len(h.started()) == 3
    finally:
        await h.close()


# -- lifecycle hooks ----------------------------------------------------------------------------


def hook_exits(failing: list[str], code: int = 1):
    return lambda cid, argv: ExecResult(code if argv == failing else 0, b"", b"no")


@pytest.mark.parametrize("hook_code, policy, phase, waiting", [
    (0, "Always", "Running", None),
    (1, "Always", "Running", "PostStartHookError"),
    (1, "Never", "Failed", None),
])
async def test_a_failed_post_start_hook_kills_the_container(
        h, hook_code, policy, phase, waiting) -> None:
    h.runtime.exec_handler = hook_exits(["post"], hook_code)
    pod = make_pod(ctr(post_start=["post"]), policy=policy)
    cid = await run(h, pod)
    calls = h.calls()
    assert calls[calls.index("start_container") + 1] == "exec_sync"  # the hook, right after
    assert h.runtime.calls_of("exec_sync")[0][:2] == (cid, ["post"])
    status = h.container_status()
    events = await h.events()
    if hook_code == 0:
        assert "stop_container" not in calls and status["state"].keys() == {"running"}
        assert "FailedPostStartHook" not in [reason for _, reason, _ in events]
        return
    after_hook = calls[calls.index("exec_sync") + 1:]
    assert after_hook[:2] == ["container_status", "stop_container"]  # killed at once
    assert h.runtime.calls_of("stop_container") == [(cid, 30.0, "SIGTERM")]  # the pod's grace
    failed = [e for e in events if e[1] == "FailedPostStartHook"]
    assert len(failed) == 1 and failed[0][0] == "Warning"
    assert failed[0][2].startswith(
        'Exec lifecycle hook ([post]) for Container "c" in Pod "p_default(u1)" failed')
    assert ("Normal", "Killing", "FailedPostStartHook") in events
    assert h.status()["phase"] == phase
    if waiting:
        assert status["state"]["waiting"]["reason"] == waiting
    else:
        assert status["state"]["terminated"]["exitCode"] == 143  # SIGTERM


async def test_a_post_start_exec_hook_has_no_time_limit(h) -> None:
    """The kubelet runs exec hooks with the CRI timeout 0: postStart is not cut off after
    the grace period (only preStop is bounded by it)."""
    h.runtime.exec_handler = hook_exits(["post"], 0)
    pod = make_pod(ctr(post_start=["post"]), terminationGracePeriodSeconds=1)
    cid = await run(h, pod)
    assert h.runtime.calls_of("exec_sync") == [(cid, ["post"], None)]


async def test_a_pre_stop_exec_hook_is_bounded_by_the_grace_period(h) -> None:
    h.runtime.exec_handler = hook_exits(["drain"], 0)
    pod = make_pod(ctr(pre_stop=["drain"]), terminationGracePeriodSeconds=7)
    cid = await run(h, pod)
    await h.sync(deleted(h.api_pod(pod), 7), True)
    assert h.runtime.calls_of("exec_sync") == [(cid, ["drain"], 7.0)]


async def test_a_failed_post_start_hook_kills_with_the_pods_grace_and_pre_stop(h) -> None:
    h.runtime.exec_handler = hook_exits(["post"])
    pod = make_pod(ctr(post_start=["post"], pre_stop=["drain"]),
                   terminationGracePeriodSeconds=20)
    cid = await run(h, pod)
    assert [args[1] for args in h.runtime.calls_of("exec_sync")] == [["post"], ["drain"]]
    assert h.runtime.calls_of("stop_container") == [(cid, 20.0, "SIGTERM")]


@pytest.mark.parametrize("how, grace, hook_code, prestop_runs, stop_timeout", [
    ("delete", 7, 0, True, 7.0),
    ("delete", 7, 1, True, 7.0),  # a failing preStop: FailedPreStopHook, the stop goes on
    ("delete", 0, 0, False, 2.0),  # no preStop without a grace period; at least 2 s
    ("spec change", 9, 0, True, 9.0),  # the kill of sync_pod runs the same sequence
])
async def test_pre_stop_runs_before_the_stop(h, how, grace, hook_code, prestop_runs,
                                             stop_timeout) -> None:
    h.runtime.exec_handler = hook_exits(["drain"], hook_code)
    pod = make_pod(ctr(pre_stop=["drain"]), terminationGracePeriodSeconds=grace)
    cid = await run(h, pod)
    h.forget_calls()
    if how == "delete":
        await h.sync(deleted(h.api_pod(pod), grace), True)
    else:
        changed = h.api_pod(pod)
        changed["spec"]["containers"][0]["image"] = "busybox:2"
        h.images.add_local("busybox:2")
        await h.sync(changed)
    stops = [(name, args[0]) for name, args in h.runtime.calls
             if name in ("exec_sync", "stop_container")]
    want = [("exec_sync", cid)] if prestop_runs else []
    assert stops[:len(want) + 1] == want + [("stop_container", cid)]
    assert h.runtime.calls_of("stop_container")[0] == (cid, stop_timeout, "SIGTERM")
    if prestop_runs:
        assert h.runtime.calls_of("exec_sync")[0] == (cid, ["drain"], float(grace))
    reasons = await h.reasons()
    assert reasons.count("Killing") == 1
    assert ("FailedPreStopHook" in reasons) == (hook_code != 0)


# -- deletion -----------------------------------------------------------------------------------


@pytest.mark.parametrize("grace, stop_timeout", [(7, 7.0), (0, 2.0)])
async def test_a_deleted_pod_is_stopped_released_and_deleted(h, grace, stop_timeout) -> None:
    pod = make_pod(ctr("a"), ctr("b"))
    await h.sync(pod)
    running = h.started()
    [sandbox] = [(sid,) for sid in h.runtime.sandbox_ids]
    h.forget_calls()
    result = await h.sync(deleted(h.api_pod(pod), grace), True)
    assert result.done and not result.errors()
    assert sorted(h.runtime.calls_of("stop_container")) == sorted(
        (cid, stop_timeout, "SIGTERM") for cid in running)
    assert h.runtime.calls_of("stop_pod_sandbox") == [sandbox]
    assert h.runtime.calls_of("remove_pod_sandbox") == [sandbox]
    calls = h.calls()
    assert calls.index("stop_container") < calls.index("stop_pod_sandbox") \
        < calls.index("remove_pod_sandbox")
    assert h.network.methods() == ["teardown_pod"] and h.network.attached == {}
    assert h.client.deletes == [("p", 0, {"uid": "u1"})]
    assert h.rootfs.prepared == {}
    assert await h.reasons() == [*["Pulled", "Created", "Started"] * 2, "Killing", "Killing"]


async def test_a_second_termination_finds_nothing_to_stop(h) -> None:
    pod = make_pod()
    await h.sync(pod)
    await h.sync(deleted(h.api_pod(pod)), True)
    h.forget_calls()
    result = await h.sync(deleted(h.api_pod(pod)), True)  # e.g. the DELETED watch event
    assert result.done
    assert h.calls() == ["list_pod_sandbox", "list_containers"]


@pytest.mark.parametrize("code, done", [(500, False), (404, True), (409, True)])
async def test_the_final_delete_is_retried_unless_the_pod_is_gone(h, code, done) -> None:
    pod = make_pod()
    await h.sync(pod)
    h.client.fail_delete.append(ApiError(code, "x", "boom"))
    result = await h.sync(deleted(h.api_pod(pod)), True)
    assert result.done is done
    assert (result.requeue_after is not None) is not done
    if not done:
        assert [r.action for r in result.errors()] == [SyncAction.DELETE_POD]
        assert (await h.sync(deleted(h.api_pod(pod)), True)).done
        assert len(h.client.deletes) == 2


# -- adoption after an agent restart ------------------------------------------------------------


async def test_a_restarted_agent_adopts_the_running_pod(h) -> None:
    pod = make_pod(ctr("a"), ctr("b"))
    await h.sync(pod)
    before = h.status()
    api_pod = h.api_pod(pod)
    await h.events()
    h.client.events.clear()
    h.forget_calls()
    h.restart_agent()
    result = await h.sync(api_pod)
    assert h.calls() == ["list_pod_sandbox", "list_containers"]  # nothing recreated
    assert h.network.calls == [] and h.images.calls == []
    assert not result.errors() and await h.events() == []
    after = h.status()
    assert after["phase"] == "Running" and after["podIP"] == before["podIP"]
    assert [c["containerID"] for c in after["containerStatuses"]] == \
        [c["containerID"] for c in before["containerStatuses"]]


async def test_a_restarted_agent_restarts_an_exited_container_in_the_same_sandbox(h) -> None:
    pod = make_pod()
    cid = await run(h, pod)
    h.exit(cid, 1)
    api_pod = h.api_pod(pod)
    h.forget_calls()
    h.restart_agent()
    await h.sync(api_pod)
    assert "run_pod_sandbox" not in h.calls() and h.network.calls == []
    assert h.calls().count("start_container") == 1
    assert h.container_status()["restartCount"] == 1


async def test_a_restarted_agent_reports_the_ip_of_an_adopted_sandbox(h) -> None:
    pod = make_pod()
    await h.sync(pod)
    ip = h.status()["podIP"]
    h.restart_agent()
    await h.sync(pod)  # the API never got the first status (e.g. the agent crashed first)
    assert h.status().get("podIP") == ip


async def test_a_sandbox_whose_network_was_never_recorded_is_replaced(h) -> None:
    """The agent killed while it attached a new sandbox's network (its IP reserved, not
    recorded): the restarted agent does not keep that sandbox, as a CRI runtime would never
    have reported it ready. Its network is torn down, its IP given back, and the pod gets a
    new sandbox whose IP it reports."""
    pod = make_pod()
    await h.sync(pod)
    [old] = h.runtime.sandbox_ids
    os.unlink(os.path.join(h.syncer.config.pods_dir, "u1", podfiles.POD_IPS_FILE))
    h.restart_agent()
    await h.sync(h.api_pod(pod))
    [new] = list(h.network.attached)  # the old one's network torn down: its IP given back
    assert new != old and h.runtime.calls_of("stop_pod_sandbox") == [(old,)]
    assert "teardown_pod" in h.network.methods()
    assert (h.status()["podIP"], h.status()["phase"]) == (h.network.attached[new], "Running")


async def test_a_sandbox_killed_after_its_network_went_is_not_kept(h) -> None:
    """The network of a sandbox being stopped is torn down first: once it is, the sandbox no
    longer counts as attached, and an agent killed before stopping it replaces it."""
    pod = make_pod()
    await h.sync(pod)
    [old] = h.runtime.sandbox_ids
    await h.syncer.attachments.detach("u1", old)
    assert podfiles.load_pod_ips(os.path.join(h.syncer.config.pods_dir, "u1")) == (
        "", [h.status()["podIP"]])
    h.restart_agent()
    await h.sync(h.api_pod(pod))
    assert len(h.runtime.sandbox_ids) == 2 and h.runtime.calls_of("stop_pod_sandbox") == [(old,)]


async def test_an_ip_record_of_an_older_podling_keeps_the_sandbox(h) -> None:
    pod = make_pod()
    await h.sync(pod)
    [sandbox] = h.runtime.sandbox_ids
    with open(os.path.join(h.syncer.config.pods_dir, "u1", podfiles.POD_IPS_FILE), "w") as f:
        f.write(h.network.attached[sandbox] + "\n")  # IPs only, no sandbox line
    h.restart_agent()
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    assert "run_pod_sandbox" not in h.calls() and h.runtime.sandbox_ids == [sandbox]


# -- sandbox change -----------------------------------------------------------------------------


async def test_a_dead_sandbox_is_replaced_with_everything_in_it(h) -> None:
    pod = make_pod(ctr("a"), ctr("b"))
    await h.sync(pod)
    old = h.runtime.calls_of("run_pod_sandbox")
    [old_sandbox] = h.runtime.sandbox_ids
    first = h.started()
    h.runtime.crash_sandbox(old_sandbox)
    await h.events()
    h.client.events.clear()
    h.forget_calls()
    result = await h.sync(h.api_pod(pod))
    assert not result.errors() and len(old) == 1
    assert sorted(args[0] for args in h.runtime.calls_of("stop_container")) == sorted(first)
    [config] = [args[0] for args in h.runtime.calls_of("run_pod_sandbox")]
    assert config.attempt == 1
    new_sandbox = h.runtime.sandbox_ids[-1]
    assert [args[0] for args in h.runtime.calls_of("create_container")] == [new_sandbox] * 2
    calls = h.calls()
    assert calls.index("stop_container") < calls.index("run_pod_sandbox")
    events = await h.events()
    assert events.count(("Normal", "SandboxChanged", SANDBOX_CHANGED)) == 1
    assert sorted(e for e in events if e[1] == "Killing") == [  # stopped in parallel
        ("Normal", "Killing", "Stopping container a"),
        ("Normal", "Killing", "Stopping container b")]
    assert [c["restartCount"] for c in h.status()["containerStatuses"]] == [1, 1]
    assert h.status()["podIP"] == h.network.attached[new_sandbox]


async def test_sandbox_changed_is_recorded_before_the_kills(h) -> None:
    pod = make_pod()
    await h.sync(pod)
    [old_sandbox] = h.runtime.sandbox_ids
    h.runtime.crash_sandbox(old_sandbox)
    await h.events()
    h.client.events.clear()
    await h.sync(h.api_pod(pod))
    assert (await h.reasons())[:2] == ["SandboxChanged", "Killing"]


async def test_a_dead_sandbox_gives_its_network_back_before_the_new_one(h) -> None:
    pod = make_pod()
    await h.sync(pod)
    [old_sandbox] = h.runtime.sandbox_ids
    h.runtime.crash_sandbox(old_sandbox)
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    assert h.network.methods() == ["teardown_pod", "setup_pod"]
    assert old_sandbox not in h.network.attached


# -- init containers ----------------------------------------------------------------------------


def names_created(h: Harness) -> list[str]:
    return [args[1].name for args in h.runtime.calls_of("create_container")]


@pytest.mark.parametrize("policy, init_code, then_created, phase", [
    ("Always", 0, ["c"], "Running"),  # done: the app container starts
    ("Always", 1, ["i"], "Pending"),  # failed: the init container again
    ("OnFailure", 1, ["i"], "Pending"),
    ("Never", 1, [], "Failed"),  # failed under Never: the pod fails, nothing more runs
])
async def test_init_containers_run_first_and_one_at_a_time(h, policy, init_code,
                                                           then_created, phase) -> None:
    pod = make_pod(ctr("c"), policy=policy, initContainers=[ctr("i")])
    await h.sync(pod)
    assert names_created(h) == ["i"]  # the app container waits for it
    assert h.status()["phase"] == "Pending"
    [cid] = h.started()
    h.exit(cid, init_code, ago=500)
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    assert names_created(h) == then_created
    assert h.status()["phase"] == phase
    initialized = next(c for c in h.status()["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == ("True" if init_code == 0 else "False")
    assert bool(sandbox_ids(h)) is (phase == "Failed")


# -- sandbox failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("fail, error, undone", [
    ("run_pod_sandbox", RuntimeError_("pause image missing"), False),
    ("setup_pod", NetworkError("no IP addresses available in range set"), True),
])
async def test_a_failed_sandbox_is_undone_reported_and_retried(h, fail, error,
                                                               undone) -> None:
    if fail == "setup_pod":
        h.network.fail_next(fail, error)
    else:
        h.runtime.fail_next(fail, error)
    pod = make_pod()
    result = await h.sync(pod)
    assert [(r.action, r.error) for r in result.errors()] == [
        (SyncAction.CREATE_POD_SANDBOX, "FailedCreatePodSandBox")]
    assert "create_container" not in h.calls()
    created = [(sid,) for sid in h.runtime.sandbox_ids]
    assert h.runtime.calls_of("remove_pod_sandbox") == created  # the undo of the acquire
    assert bool(created) is undone and h.network.attached == {}
    assert await h.events() == [
        ("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {error}")]
    assert h.container_status()["state"]["waiting"]["reason"] == "ContainerCreating"
    assert h.status()["phase"] == "Pending"
    h.forget_calls()
    await h.sync(h.api_pod(pod))  # the next pass tries again
    assert h.calls().count("run_pod_sandbox") == 1
    assert h.container_status()["state"].keys() == {"running"}
    assert len(h.network.attached) == 1


# -- image pulls --------------------------------------------------------------------------------


async def test_a_failed_pull_waits_in_err_image_pull_then_image_pull_back_off(h) -> None:
    await h.images.remove_image("busybox")
    h.images.fail_pull("busybox", RegistryError("manifest unknown"))
    pod = make_pod(ctr(image="busybox"))
    result = await h.sync(pod)
    assert "create_container" not in h.calls()
    assert result.waiting() == {"c": (
        "ErrImagePull", 'failed to pull image "busybox": manifest unknown')}
    assert h.container_status()["state"]["waiting"]["reason"] == "ErrImagePull"
    assert h.status()["phase"] == "Pending"
    assert await h.events() == [
        ("Normal", "Pulling", 'Pulling image "busybox"'),
        ("Warning", "Failed", 'Failed to pull image "busybox": manifest unknown'),
        ("Warning", "Failed", "Error: ErrImagePull")]
    h.client.events.clear()
    h.images.calls.clear()
    await h.sync(h.api_pod(pod))  # within the image back-off: no pull
    assert h.images.calls == [("image_status", ("busybox",))]
    assert "create_container" not in h.calls()
    assert h.container_status()["state"]["waiting"] == {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "busybox"'}
    assert await h.events() == [
        ("Normal", "BackOff", 'Back-off pulling image "busybox"'),
        ("Warning", "Failed", "Error: ImagePullBackOff")]


@pytest.mark.parametrize("present, policy, pulled, reason", [
    (False, "IfNotPresent", True, None),
    (True, "IfNotPresent", False, None),
    (True, "Always", True, None),
    (False, "Never", False, "ErrImageNeverPull"),
])
async def test_the_pull_policy_decides_whether_to_pull(h, present, policy, pulled,
                                                       reason) -> None:
    if not present:
        await h.images.remove_image("busybox")
    await h.sync(make_pod(ctr(imagePullPolicy=policy)))
    assert bool(h.images.calls_of("pull_image")) is pulled
    assert ("create_container" in h.calls()) is (reason is None)
    if reason:
        assert h.container_status()["state"]["waiting"]["reason"] == reason
    else:
        assert h.container_status()["state"].keys() == {"running"}
        assert NODE_IP == h.status()["hostIP"]


# -- activeDeadlineSeconds ----------------------------------------------------------------------


async def test_a_pod_past_its_active_deadline_is_killed_and_failed(h) -> None:
    pod = make_pod(ctr(), activeDeadlineSeconds=5, terminationGracePeriodSeconds=3)
    first = await h.sync(pod)
    [cid] = h.started()
    assert first.requeue_after == 5.0  # the worker looks again at the deadline
    h.clock.advance(2)
    left = (await h.sync(h.api_pod(pod))).requeue_after  # startTime has whole seconds
    assert left is not None and 2.0 < left <= 3.0
    h.clock.advance(left)
    h.forget_calls()
    result = await h.sync(h.api_pod(pod))
    assert h.runtime.calls_of("stop_container") == [(cid, 3.0, "SIGTERM")]
    assert "stop_pod_sandbox" in h.calls() and "start_container" not in h.calls()
    status = h.status()
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed", "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline")
    assert "terminated" in h.container_status()["state"]
    assert ("Normal", "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline") in await h.events()
    assert result.requeue_after is None
    h.forget_calls()
    await h.sync(h.api_pod(pod))  # Failed is terminal: nothing starts again
    assert "start_container" not in h.calls() and h.status()["reason"] == "DeadlineExceeded"


# -- sidecars -----------------------------------------------------------------------------------


async def test_a_sidecar_runs_beside_the_app_and_is_stopped_after_it(h) -> None:
    pod = make_pod(ctr("app", pre_stop=["drain"]), policy="Never",
                   initContainers=[ctr("side", restartPolicy="Always", pre_stop=["bye"])])
    h.runtime.exec_handler = hook_exits(["drain"], 0)
    first = await h.sync(pod)
    [side] = h.started()
    assert first.requeue_after == 1.0
    assert h.status()["phase"] == "Pending"
    await h.sync(h.api_pod(pod))  # the sidecar runs: the app starts beside it
    side_again, app = h.started()
    assert side_again == side
    status = h.status()
    assert status["phase"] == "Running"
    assert status["initContainerStatuses"][0]["state"].keys() == {"running"}
    h.exit(side, 1)  # a sidecar that exits is restarted, even under restartPolicy Never
    await h.sync(h.api_pod(pod))
    side2 = h.started()[-1]
    assert side2 not in (side, app)
    assert h.status()["initContainerStatuses"][0]["restartCount"] == 1
    h.exit(app, 0)  # the app is done: the sidecar is stopped, the pod Succeeded
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    assert [args[0] for args in h.runtime.calls_of("stop_container")] == [side2]
    assert "start_container" not in h.calls()
    assert h.status()["phase"] == "Succeeded"


async def test_deletion_stops_sidecars_after_the_app(h) -> None:
    pod = make_pod(ctr("app"), initContainers=[ctr("side", restartPolicy="Always")])
    await h.sync(pod)
    await h.sync(h.api_pod(pod))
    side, app = h.started()
    h.forget_calls()
    await h.sync(deleted(h.api_pod(pod), 5), True)
    assert [args[0] for args in h.runtime.calls_of("stop_container")] == [app, side]


async def test_deletion_stops_sidecars_in_reverse_order(h) -> None:
    sides = [ctr(n, restartPolicy="Always") for n in ("s1", "s2", "s3")]
    pod = make_pod(ctr("app"), initContainers=sides)
    for _ in range(4):
        await h.sync(h.api_pod(pod) if h.client.status_patches else pod)
    s1, s2, s3, app = h.started()
    h.forget_calls()
    await h.sync(deleted(h.api_pod(pod), 5), True)
    assert [args[0] for args in h.runtime.calls_of("stop_container")] == [app, s3, s2, s1]


async def test_the_first_app_start_reports_pod_initializing_first(h) -> None:
    pod = make_pod(ctr("c"), initContainers=[ctr("i")])
    await h.sync(pod)
    [cid] = h.started()
    h.exit(cid, 0, ago=1)
    before = len(h.client.status_patches)
    await h.sync(h.api_pod(pod))
    written = [s for _, s in h.client.status_patches[before:]]
    assert len(written) == 2  # the observed status, then the one after the start
    assert written[0]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "PodInitializing"}}
    assert written[0]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert "running" in written[1]["containerStatuses"][0]["state"]
    h.exit(h.started()[-1], 1)
    before = len(h.client.status_patches)
    await h.sync(h.api_pod(pod))  # a restart of the app is not a first start: one write
    assert len(h.client.status_patches) - before == 1
