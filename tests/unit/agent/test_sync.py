"""sync_pod against the fakes at its boundaries (FakeRuntime, FakeNetwork, in-memory images):
the runtime calls in order, the events, the status written and the PodSyncResult."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sync_harness import Harness, ctr, make_harness
from sync_harness import make_pod as harness_pod

from podling.agent.kuberuntime.sandbox import namespace_options
from podling.agent.pod.sync_result import SyncAction
from podling.api.views import PodSpecView
from podling.runtime.interface import ContainerConfig


@pytest.fixture
async def s(tmp_path):
    harness = make_harness(tmp_path)
    yield harness
    await harness.close()


def make_pod(**spec: Any) -> dict[str, Any]:
    env = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
    return harness_pod(ctr(env=env), **spec)


def runtime_calls(s: Harness) -> list[str]:
    return s.calls()


async def test_a_new_pod_gets_a_sandbox_then_its_container(s) -> None:
    result = await s.sync(make_pod(), False)
    assert runtime_calls(s) == ["list_pod_sandbox", "list_containers", "run_pod_sandbox",
                                "create_container", "start_container",
                                "list_pod_sandbox", "list_containers"]
    assert s.network.methods() == ["setup_pod"]
    assert [(r.action, r.error) for r in result.results] == [
        (SyncAction.ADMIT, ""), (SyncAction.CREATE_POD_SANDBOX, ""),
        (SyncAction.CONFIG_POD_SANDBOX, ""), (SyncAction.START_CONTAINER, ""),
        (SyncAction.REPORT_STATUS, "")]
    assert result.requeue_after is None and not result.done
    assert await s.reasons() == ["Pulled", "Created", "Started"]
    config: ContainerConfig = s.runtime.calls_of("create_container")[0][1]
    env = dict(e.split("=", 1) for e in config.env)
    assert env["IP"] == "10.42.0.2" and env["CPU"] == "2"  # downward API: pod IP, host CPUs
    status = s.status()
    assert status["podIP"] == "10.42.0.2" and status["hostIP"] == "192.168.1.2"
    assert status["containerStatuses"][0]["state"].keys() == {"running"}


async def test_a_sandbox_killed_with_the_pod_is_stopped_once(s) -> None:
    pod = make_pod()
    await s.sync(pod, False)
    s.runtime.calls.clear()
    s.network.calls.clear()
    pod["spec"]["hostNetwork"] = True  # the network mode changed: kill the pod, new sandbox
    result = await s.sync(pod, False)
    stopped = s.runtime.calls_of("stop_pod_sandbox")
    assert len(stopped) == 1
    assert s.network.methods() == ["teardown_pod"]
    assert runtime_calls(s)[:5] == ["list_pod_sandbox", "list_containers", "stop_container",
                                    "stop_pod_sandbox", "run_pod_sandbox"]
    assert [r.action for r in result.results][:4] == [
        SyncAction.ADMIT, SyncAction.KILL_CONTAINER, SyncAction.KILL_POD_SANDBOX,
        SyncAction.CREATE_POD_SANDBOX]
    assert ("Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.") \
        in await s.events()


async def test_a_crashing_container_waits_in_back_off(s) -> None:
    pod = make_pod()
    await s.sync(pod, False)  # start
    cid = s.runtime.calls_of("start_container")[0][0]
    s.exit(cid, 1)
    await s.sync(pod, False)  # the first restart is immediate (and steps the back-off)
    assert len(s.runtime.calls_of("start_container")) == 2
    cid = s.runtime.calls_of("start_container")[1][0]
    s.exit(cid, 1)
    await s.events()
    s.client.events.clear()
    result = await s.sync(pod, False)
    assert len(s.runtime.calls_of("start_container")) == 2  # held back
    assert 0 < (result.requeue_after or 0) <= 10
    assert result.waiting()["c"][0] == "CrashLoopBackOff"
    assert await s.events() == [
        ("Warning", "BackOff", "Back-off restarting failed container c in pod p_default(u1)")]
    waiting = s.status()["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"


async def test_terminate_releases_everything_and_is_done(s, tmp_path) -> None:
    pod = make_pod()
    await s.sync(pod, False)
    result = await s.sync(pod, True)
    assert result.done and [name for name, _, _ in s.client.deletes] == ["p"]
    assert s.runtime.calls_of("stop_pod_sandbox") and s.runtime.calls_of("remove_pod_sandbox")
    assert s.rootfs.prepared == {}
    assert not os.path.exists(tmp_path / "agent" / "pods" / "u1")


def test_namespace_options_of_host_namespaces() -> None:
    opts = namespace_options(PodSpecView.from_obj({"hostNetwork": True, "hostPID": True}))
    assert (opts.network.name, opts.pid.name, opts.ipc.name) == ("NODE", "NODE", "POD")

