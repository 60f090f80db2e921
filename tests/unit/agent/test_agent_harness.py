"""Black-box tests of the Agent (podling's kubelet) through the no-root harness: a real API
server and a real Agent on FakeRuntime / FakeImageService / FakeNetwork (harness.py).

Each test drives the agent through the API (create / delete pods) and the fakes (a container
exits, a pull fails), then waits — with a timeout, never a fixed sleep — for what a user would
see: the pod's status, its Events, and what the agent asked the runtime to do.
"""

from __future__ import annotations

from typing import Any

import pytest
from builders import PodBuilder, make_pod
from harness import (POD_UID_LABEL, AgentHarness, agent_harness,  # noqa: F401
                     container_status, waiting_reason)

from podling.api.resources import PODS
from podling.images.errors import RegistryUnauthorized
from podling.network.interface import NetworkError
from podling.runtime.interface import ContainerState, ExecResult

Obj = dict[str, Any]
SLEEP = ["sleep", "1000"]


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "")


def restarts(pod: Obj, name: str = "app") -> int:
    return int(container_status(pod, name).get("restartCount", 0))


def state_of(pod: Obj, name: str = "app") -> str:
    """The container's state in the pod's status: running, waiting, terminated or ""."""
    state = container_status(pod, name).get("state") or {}
    return next(iter(state), "")


async def run_pod(h: AgentHarness, builder: PodBuilder) -> Obj:
    """Create the pod on the harness node and return it once Running."""
    created = await h.create_pod(builder.node(h.node_name).build())
    name = created["metadata"]["name"]
    return await h.wait_pod(name, lambda p: phase(p) == "Running"
                            and all(cs.get("ready") for cs in p["status"]["containerStatuses"]),
                            "the pod to run")


# -- running a pod -----------------------------------------------------------------------------


async def test_pod_runs_with_sandbox_network_and_node(agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").container("app", command=SLEEP))
    [net] = h.networks
    [sandbox_config] = h.runtime.calls_of("run_pod_sandbox")
    assert sandbox_config[0].metadata.uid == pod["metadata"]["uid"]
    assert pod["status"]["podIP"] in net.attached.values()
    assert pod["status"]["hostIP"]
    cs = container_status(pod, "app")
    assert cs["containerID"].startswith("podling://") and cs["restartCount"] == 0
    await h.wait_event("p", "Started")
    assert [e["reason"] for e in await h.events("p") if e["reason"] in
            ("Pulling", "Pulled", "Created", "Started")] == \
        ["Pulling", "Pulled", "Created", "Started"]  # no tag: imagePullPolicy Always
    assert h.images.calls_of("pull_image") == [("busybox",)]
    assert [c[0] for c in h.rootfs.calls if c[0] == "prepare_rootfs"] == ["prepare_rootfs"]


async def test_present_image_is_not_pulled_again(agent_harness: AgentHarness) -> None:
    h = agent_harness
    h.images.add_local("busybox:1.36")  # a tag other than latest: IfNotPresent
    await run_pod(h, make_pod("p").container("app", "busybox:1.36", command=SLEEP))
    await h.wait_event("p", "Started")
    pulled = [e["message"] for e in await h.events("p") if e["reason"] == "Pulled"]
    assert pulled == ['Container image "busybox:1.36" already present on machine']
    assert h.images.calls_of("pull_image") == []


# -- restart policies --------------------------------------------------------------------------


@pytest.mark.parametrize("policy, code, restarted, final_phase", [
    ("Always", 0, True, "Running"),
    ("Always", 1, True, "Running"),
    ("OnFailure", 0, False, "Succeeded"),
    ("OnFailure", 1, True, "Running"),
    ("Never", 0, False, "Succeeded"),
    ("Never", 1, False, "Failed"),
])
async def test_restart_policy(agent_harness: AgentHarness, policy: str, code: int,
                              restarted: bool, final_phase: str) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").restart_policy(policy)
                        .container("app", command=SLEEP))
    first = await h.running_container(pod, "app")
    h.runtime.exit_container(first.id, code)
    if restarted:
        pod = await h.wait_pod("p", lambda p: restarts(p) == 1 and state_of(p) == "running",
                               "the container to be restarted")
        last = container_status(pod, "app")["lastState"]["terminated"]
        assert last["exitCode"] == code
        assert (await h.running_container(pod, "app")).id != first.id
    else:
        pod = await h.wait_pod("p", lambda p: phase(p) == final_phase, final_phase)
        await h.quiesce(pod)
        pod = await h.get_pod("p") or {}
        assert restarts(pod) == 0
        assert container_status(pod, "app")["state"]["terminated"]["exitCode"] == code
        assert len(await h.containers(pod, "app")) == 1
    assert phase(pod) == final_phase


@pytest.mark.parametrize("policy, final_phase", [("Never", "Failed"), ("Always", "Running")])
async def test_start_error(agent_harness: AgentHarness, policy: str, final_phase: str) -> None:
    h = agent_harness
    why = 'exec: "/app": stat /app: no such file or directory'
    h.runtime.fail_start_of("app", why)  # only the first start fails
    await h.create_pod(make_pod("p").node(h.node_name).restart_policy(policy)
                       .container("app", command=["/app"]).build())
    event = await h.wait_event("p", "Failed", f"Error: {why}")
    assert event["type"] == "Warning"
    if policy == "Never":
        pod = await h.wait_pod("p", lambda p: phase(p) == "Failed", "Failed")
        term = container_status(pod, "app")["state"]["terminated"]
        assert (term["reason"], term["exitCode"], term["message"]) == ("StartError", 128, why)
        assert restarts(pod) == 0
    else:
        pod = await h.wait_pod("p", lambda p: restarts(p) == 1 and state_of(p) == "running",
                               "the restart after the StartError")
        assert container_status(pod, "app")["lastState"]["terminated"]["reason"] == "StartError"
    assert phase(pod) == final_phase


# -- crash loop --------------------------------------------------------------------------------


async def test_crash_loop_back_off(agent_harness: AgentHarness) -> None:
    h = agent_harness
    h.runtime.exit_on_start("app", 1)  # every start crashes
    created = await h.create_pod(make_pod("p").node(h.node_name)
                                 .container("app", command=["false"]).build())
    pod = await h.wait_pod("p", lambda p: waiting_reason(p, "app") == "CrashLoopBackOff",
                           "CrashLoopBackOff")
    cs = container_status(pod, "app")
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    uid = created["metadata"]["uid"]
    assert cs["state"]["waiting"]["message"].startswith(
        f"back-off 10s restarting failed container=app pod=p_default({uid})")
    assert phase(pod) == "Running"  # restartPolicy Always: the pod keeps running
    event = await h.wait_event("p", "BackOff")
    assert event["type"] == "Warning"
    assert event["message"] == \
        f"Back-off restarting failed container app in pod p_default({uid})"
    assert event["involvedObject"]["fieldPath"] == "spec.containers{app}"


# -- hooks -------------------------------------------------------------------------------------


async def test_post_start_hook_failure_kills_the_container(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    hook = ["sh", "-c", "exit 3"]
    h.runtime.exec_handler = lambda cid, argv: (ExecResult(3, b"", b"hook broke")
                                                if argv == hook else ExecResult(0, b"", b""))
    await h.create_pod(make_pod("p").node(h.node_name).restart_policy("Never")
                       .container("app", command=SLEEP,
                                  lifecycle={"postStart": {"exec": {"command": hook}}})
                       .build())
    event = await h.wait_event("p", "FailedPostStartHook")
    assert event["type"] == "Warning"
    assert "exited with 3: hook broke" in event["message"]
    [(cid, argv, _)] = h.runtime.calls_of("exec_sync")
    assert argv == hook
    stops = await h.runtime.wait_for_calls("stop_container", where=lambda a: a[0] == cid)
    assert stops
    [container] = [c for c in await h.runtime.list_containers() if c.id == cid]
    assert container.state is ContainerState.EXITED
    pod = await h.wait_pod("p", lambda p: phase(p) == "Failed", "the pod to fail")
    assert restarts(pod) == 0


async def test_pre_stop_runs_before_the_kill(agent_harness: AgentHarness) -> None:
    h = agent_harness
    hook = ["/bin/drain", "--now"]
    pod = await run_pod(h, make_pod("p").container(
        "app", command=SLEEP, lifecycle={"preStop": {"exec": {"command": hook}}}))
    cid = (await h.running_container(pod, "app")).id
    await h.client.delete(PODS, "p", "default")
    await h.wait_gone("p")
    log = h.runtime.calls
    pre_stop = next(i for i, (m, a) in enumerate(log) if m == "exec_sync" and a[0] == cid)
    kill = next(i for i, (m, a) in enumerate(log) if m == "stop_container" and a[0] == cid)
    assert log[pre_stop][1][1] == hook
    assert pre_stop < kill
    assert (await h.wait_event("p", "Killing"))["message"] == "Stopping container app"


# -- deletion ----------------------------------------------------------------------------------


async def test_graceful_deletion_stops_everything_then_deletes_the_pod(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").container("a", command=SLEEP)
                        .container("b", command=SLEEP))
    ids = {(await h.running_container(pod, n)).id for n in ("a", "b")}
    [sandbox] = await h.runtime.list_pod_sandbox({POD_UID_LABEL: pod["metadata"]["uid"]})
    deleted = await h.client.delete(PODS, "p", "default", grace_period=5)
    assert deleted["metadata"]["deletionTimestamp"]  # graceful: the object stays for now
    await h.wait_gone("p")
    stopped = {a[0]: a[1] for a in h.runtime.calls_of("stop_container") if a[0] in ids}
    assert set(stopped) == ids
    assert all(timeout <= 5 for timeout in stopped.values())
    assert (sandbox.id,) in h.runtime.calls_of("stop_pod_sandbox")
    assert (sandbox.id,) in h.runtime.calls_of("remove_pod_sandbox")
    assert await h.runtime.list_pod_sandbox({POD_UID_LABEL: pod["metadata"]["uid"]}) == []
    assert await h.containers(pod) == []
    [net] = h.networks
    assert sandbox.id in [c.pod.sandbox_id for c in net.calls
                          if c.method == "teardown_pod" and c.pod]
    assert net.attached == {}
    assert not [k for k in await h.rootfs.list_rootfs()
                if k.startswith(pod["metadata"]["uid"])]


# -- images ------------------------------------------------------------------------------------


async def test_image_pull_error_then_back_off(agent_harness: AgentHarness) -> None:
    h = agent_harness
    await h.create_pod(make_pod("p").node(h.node_name)
                       .container("app", image="nosuch/image:v1", command=SLEEP).build())
    pod = await h.wait_pod("p", lambda p: waiting_reason(p, "app") == "ImagePullBackOff",
                           "ImagePullBackOff")
    assert container_status(pod, "app")["state"]["waiting"]["message"] == \
        'Back-off pulling image "nosuch/image:v1"'
    await h.wait_event("p", "Failed", "Error: ErrImagePull")
    await h.wait_event("p", "Failed", "Error: ImagePullBackOff")
    failed = [e["message"] for e in await h.events("p") if e["reason"] == "Failed"]
    assert any(m.startswith('Failed to pull image "nosuch/image:v1": ') for m in failed)
    assert h.runtime.calls_of("create_container") == []
    assert phase(pod) == "Pending"


async def test_injected_pull_error_is_err_image_pull(agent_harness: AgentHarness) -> None:
    h = agent_harness
    h.images.fail_pull("busybox", RegistryUnauthorized("unauthorized: authentication required"))
    await h.create_pod(make_pod("p").node(h.node_name).container("app", command=SLEEP).build())
    event = await h.wait_event("p", "Failed", 'Failed to pull image "busybox": '
                               'unauthorized: authentication required')
    assert event["type"] == "Warning"
    await h.wait_event("p", "Failed", "Error: ErrImagePull")
    assert (await h.wait_event("p", "BackOff"))["message"] == 'Back-off pulling image "busybox"'
    assert h.images.calls_of("pull_image") == [("busybox",)]  # held back, not retried yet


@pytest.mark.parametrize("local, reason", [
    ((), "ErrImageNeverPull"),
    (("busybox",), None),
])
async def test_pull_policy_never(agent_harness: AgentHarness, local: tuple[str, ...],
                                 reason: str | None) -> None:
    h = agent_harness
    for ref in local:
        h.images.add_local(ref)
    await h.create_pod(make_pod("p").node(h.node_name)
                       .container("app", command=SLEEP, imagePullPolicy="Never").build())
    if reason is None:
        await h.wait_pod("p", lambda p: phase(p) == "Running", "Running")
    else:
        pod = await h.wait_pod("p", lambda p: waiting_reason(p, "app") == reason, reason)
        assert container_status(pod, "app")["state"]["waiting"]["message"] == \
            'Container image "busybox" is not present with pull policy of Never'
        event = await h.wait_event("p", reason)
        assert event["type"] == "Warning"
    assert h.images.calls_of("pull_image") == []


# -- agent restart -----------------------------------------------------------------------------


async def test_restarted_agent_adopts_running_containers(agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").container("app", command=SLEEP))
    running = await h.running_container(pod, "app")
    before = {m: len(h.runtime.calls_of(m)) for m in
              ("run_pod_sandbox", "create_container", "start_container", "stop_container",
               "stop_pod_sandbox", "remove_pod_sandbox")}
    await h.quiesce(pod)
    await h.stop_agent()
    await h.start_agent()
    await h.quiesce(pod)
    after = {m: len(h.runtime.calls_of(m)) for m in before}
    assert after == before  # nothing recreated, nothing stopped
    assert (await h.running_container(pod, "app")).id == running.id
    h.runtime.exit_container(running.id, 2)  # the new agent manages the adopted container
    pod = await h.wait_pod("p", lambda p: restarts(p) == 1 and state_of(p) == "running",
                           "the adopted container to be restarted")
    assert container_status(pod, "app")["lastState"]["terminated"]["exitCode"] == 2
    assert len(h.runtime.calls_of("run_pod_sandbox")) == before["run_pod_sandbox"]


async def test_exit_while_the_agent_was_down_is_found_on_restart(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").container("app", command=SLEEP))
    running = await h.running_container(pod, "app")
    await h.quiesce(pod)
    await h.stop_agent()
    h.runtime.exit_container(running.id, 9)  # nobody is listening for exit events
    await h.start_agent()
    pod = await h.wait_pod("p", lambda p: restarts(p) == 1 and state_of(p) == "running",
                           "the restart of the container that exited meanwhile")
    assert container_status(pod, "app")["lastState"]["terminated"]["exitCode"] == 9


async def test_pod_deleted_while_the_agent_was_down(agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").container("app", command=SLEEP))
    cid = (await h.running_container(pod, "app")).id
    await h.quiesce(pod)
    await h.stop_agent()
    await h.client.delete(PODS, "p", "default", grace_period=10)
    assert (await h.get_pod("p") or {})["metadata"]["deletionTimestamp"]  # waits for a kubelet
    await h.start_agent()
    await h.wait_gone("p")
    assert cid in [a[0] for a in h.runtime.calls_of("stop_container")]
    assert await h.runtime.list_pod_sandbox({POD_UID_LABEL: pod["metadata"]["uid"]}) == []


async def test_pod_force_deleted_while_the_agent_was_down_is_cleaned_up(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").container("app", command=SLEEP))
    await h.quiesce(pod)
    await h.stop_agent()
    await h.client.delete(PODS, "p", "default", grace_period=0)
    await h.wait_gone("p")
    await h.start_agent()
    uid = pod["metadata"]["uid"]
    await h.runtime.wait_for_calls("remove_pod_sandbox")
    assert await h.runtime.list_pod_sandbox({POD_UID_LABEL: uid}) == []
    assert await h.containers(pod) == []


# -- sandbox and init containers ---------------------------------------------------------------


async def test_network_setup_failure_is_retried(agent_harness: AgentHarness) -> None:
    h = agent_harness
    [net] = h.networks
    net.fail_next("setup_pod", NetworkError("failed to allocate for range 0"))
    pod = await run_pod(h, make_pod("p").container("app", command=SLEEP))
    event = await h.wait_event("p", "FailedCreatePodSandBox")
    assert event["message"] == "Failed to create pod sandbox: failed to allocate for range 0"
    removed = [a[0] for a in h.runtime.calls_of("remove_pod_sandbox")]
    [live] = await h.runtime.list_pod_sandbox({POD_UID_LABEL: pod["metadata"]["uid"]})
    assert len(removed) == 1 and removed[0] != live.id  # the failed one was undone
    assert pod["status"]["podIP"] == net.attached[live.id]


async def test_init_containers_run_in_order_before_the_app(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    h.runtime.exit_on_start("init-a", 0)
    h.runtime.exit_on_start("init-b", 0)
    pod = await run_pod(h, make_pod("p").init("init-a", command=["true"])
                        .init("init-b", command=["true"]).container("app", command=SLEEP))
    started = [h.runtime.container_config(a[0]).name
               for a in h.runtime.calls_of("start_container")]
    assert started == ["init-a", "init-b", "app"]
    inits = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert {n: s["state"]["terminated"]["reason"] for n, s in inits.items()} == {
        "init-a": "Completed", "init-b": "Completed"}


async def test_failed_init_container_with_never_fails_the_pod(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    h.runtime.exit_on_start("setup", 3)
    await h.create_pod(make_pod("p").node(h.node_name).restart_policy("Never")
                       .init("setup", command=["false"]).container("app", command=SLEEP)
                       .build())
    pod = await h.wait_pod("p", lambda p: phase(p) == "Failed", "Failed")
    [init] = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 3
    assert await h.containers(pod, "app") == []  # the app container never started


async def test_host_network_pod_gets_the_node_ip_and_no_pod_network(
        agent_harness: AgentHarness) -> None:
    h = agent_harness
    pod = await run_pod(h, make_pod("p").set_spec(hostNetwork=True)
                        .container("app", command=SLEEP))
    [net] = h.networks
    assert [c.method for c in net.calls if c.method == "setup_pod"] == []
    assert pod["status"]["podIP"] == pod["status"]["hostIP"]


async def test_deleting_a_pod_whose_image_pull_hangs(agent_harness: AgentHarness) -> None:
    h = agent_harness
    h.images.hold_pulls()  # the registry never answers
    await h.create_pod(make_pod("p").node(h.node_name).container("app", command=SLEEP).build())
    await h.wait_event("p", "Pulling")
    assert h.images.in_flight() == ["docker.io/library/busybox:latest"]
    await h.client.delete(PODS, "p", "default", grace_period=5)
    try:
        await h.wait_gone("p", timeout=3)
    finally:
        h.images.release_pulls()
    assert h.runtime.calls_of("create_container") == []
