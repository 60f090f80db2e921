"""sync_pod against the fakes at its boundaries (FakeRuntime, FakeNetwork, in-memory images):
the runtime calls in order, the events, the status written and the PodSyncResult."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from podling.agent.backoff import Backoff
from podling.agent.config import AgentConfig
from podling.agent.kuberuntime.sandbox import namespace_options
from podling.agent.node.host import HostResources
from podling.agent.pod.pod_workers import PodWorkers
from podling.agent.pod.sync import PodSyncer
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.api.views import PodSpecView
from podling.images.interface import Image, ImageConfig
from podling.network.fake import FakeNetwork
from podling.runtime.fake import FakeRuntime
from podling.runtime.interface import ContainerConfig

IMAGE = Image(id="sha256:img", names=("docker.io/library/busybox:latest",),
              manifest_digest="sha256:m", repo_digests=("busybox@sha256:m",), layers=(),
              size=10, config=ImageConfig(cmd=["sh"]))


class FakeImages:
    async def image_status(self, ref: str) -> Image | None:
        return IMAGE

    async def pull_image(self, ref, auth=None, progress=None) -> Image:
        return IMAGE


class FakeRootfs:
    def __init__(self, root: str) -> None:
        self.root = root
        self.keys: list[str] = []

    async def prepare_rootfs(self, image: Image, key: str) -> str:
        self.keys.append(key)
        return os.path.join(self.root, key)

    async def remove_rootfs(self, key: str) -> None:
        self.keys.remove(key)

    async def list_rootfs(self) -> list[str]:
        return list(self.keys)


class FakeStatus:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def set_status(self, pod, status) -> bool:
        self.written.append(status)
        return True

    def forget(self, uid) -> None:
        pass


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, obj, type_, reason, message, field_path=None) -> None:
        self.events.append((reason, message))


async def any_node() -> dict[str, Any] | None:
    return {"metadata": {"name": "n1"}, "status": {}}


def make_syncer(tmp_path) -> PodSyncer:
    config = AgentConfig(server_url="", token="", ca_file="", node_name="n1",
                         data_dir=str(tmp_path))
    return PodSyncer(config, client=None, runtime=FakeRuntime(), images=FakeImages(),
                     rootfs=FakeRootfs(str(tmp_path / "rootfs")), network=FakeNetwork(),
                     recorder=FakeRecorder(), status=FakeStatus(), backoff=Backoff(),
                     node_ip="192.168.1.2",
                     host=HostResources(cpu_milli=2000, memory_bytes=1 << 30),
                     get_node=any_node)


def make_pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always",
                     "containers": [{"name": "c", "image": "busybox",
                                     "env": [{"name": "IP", "valueFrom": {"fieldRef": {
                                         "fieldPath": "status.podIP"}}},
                                             {"name": "CPU", "valueFrom": {
                                                 "resourceFieldRef": {
                                                     "resource": "limits.cpu"}}}]}],
                     **spec},
            "status": {"phase": "Pending"}}


def runtime_calls(s: PodSyncer) -> list[str]:
    return [name for name, _ in s.runtime.calls]


async def test_a_new_pod_gets_a_sandbox_then_its_container(tmp_path) -> None:
    s = make_syncer(tmp_path)
    result = await s.sync(make_pod(), False)
    assert runtime_calls(s) == ["list_pod_sandbox", "list_containers", "run_pod_sandbox",
                                "pod_sandbox_status", "create_container", "start_container",
                                "list_pod_sandbox", "list_containers"]
    assert s.network.methods() == ["setup_pod"]
    assert [(r.action, r.error) for r in result.results] == [
        (SyncAction.ADMIT, ""), (SyncAction.CREATE_POD_SANDBOX, ""),
        (SyncAction.CONFIG_POD_SANDBOX, ""), (SyncAction.START_CONTAINER, ""),
        (SyncAction.REPORT_STATUS, "")]
    assert result.requeue_after is None and not result.done
    assert [reason for reason, _ in s.recorder.events] == ["Pulled", "Created", "Started"]
    config: ContainerConfig = s.runtime.calls_of("create_container")[0][1]
    env = dict(e.split("=", 1) for e in config.env)
    assert env["IP"] == "10.42.0.2" and env["CPU"] == "2"  # downward API: pod IP, host CPUs
    status = s.status.written[-1]
    assert status["podIP"] == "10.42.0.2" and status["hostIP"] == "192.168.1.2"
    assert status["containerStatuses"][0]["state"].keys() == {"running"}


async def test_a_sandbox_killed_with_the_pod_is_stopped_once(tmp_path) -> None:
    s = make_syncer(tmp_path)
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
    assert ("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.") \
        in s.recorder.events


async def test_a_crashing_container_waits_in_back_off(tmp_path) -> None:
    s = make_syncer(tmp_path)
    pod = make_pod()
    await s.sync(pod, False)  # start
    cid = s.runtime.calls_of("start_container")[0][0]
    s.runtime.exit_container(cid, 1)
    await s.sync(pod, False)  # the first restart is immediate (and steps the back-off)
    assert len(s.runtime.calls_of("start_container")) == 2
    cid = s.runtime.calls_of("start_container")[1][0]
    s.runtime.exit_container(cid, 1)
    s.recorder.events.clear()
    result = await s.sync(pod, False)
    assert len(s.runtime.calls_of("start_container")) == 2  # held back
    assert 0 < (result.requeue_after or 0) <= 10
    assert result.waiting()["c"][0] == "CrashLoopBackOff"
    assert s.recorder.events == [
        ("BackOff", "Back-off restarting failed container c in pod p_default(u1)")]
    waiting = s.status.written[-1]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"


async def test_terminate_releases_everything_and_is_done(tmp_path) -> None:
    class Client:
        deleted: list[str] = []

        async def delete(self, resource, name, namespace=None, **kw):
            self.deleted.append(name)

    s = make_syncer(tmp_path)
    s.teardown.client = Client()
    pod = make_pod()
    await s.sync(pod, False)
    result = await s.sync(pod, True)
    assert result.done and s.teardown.client.deleted == ["p"]
    assert s.runtime.calls_of("stop_pod_sandbox") and s.runtime.calls_of("remove_pod_sandbox")
    assert s.sandboxes.rootfs.keys == []
    assert not os.path.exists(tmp_path / "agent" / "pods" / "u1")


def test_namespace_options_of_host_namespaces() -> None:
    opts = namespace_options(PodSpecView.from_obj({"hostNetwork": True, "hostPID": True}))
    assert (opts.network.name, opts.pid.name, opts.ipc.name) == ("NODE", "NODE", "POD")


# -- the pod worker's requeue --------------------------------------------------------------


@pytest.mark.parametrize("requeue_after, want", [
    (None, 30.0 * 2),  # the resync period, through the (doubling) test jitter
    (4.0, 4.0),  # a back-off deadline sooner than the resync: exact
    (90.0, 30.0 * 2),  # later than the resync: the resync wins
])
async def test_worker_requeues_after_the_result(requeue_after, want) -> None:
    delays: list[float] = []

    async def sync(pod, terminating) -> PodSyncResult:
        return PodSyncResult(requeue_after=requeue_after, done=len(delays) > 0)

    workers = PodWorkers(sync, resync_seconds=30.0, jitter=lambda d: d * 2)
    result = PodSyncResult(requeue_after=requeue_after)
    delays.append(workers._next_delay(result))
    assert delays == [want]


async def test_worker_ends_when_the_pod_is_done() -> None:
    calls: list[bool] = []
    synced = asyncio.Event()

    async def sync(pod, terminating) -> PodSyncResult:
        calls.append(terminating)
        synced.set()
        return PodSyncResult(done=terminating)

    workers = PodWorkers(sync, resync_seconds=30.0, jitter=lambda d: d)
    workers.update({"metadata": {"uid": "u1", "name": "p"}})
    await asyncio.wait_for(synced.wait(), 5)
    workers.update({"metadata": {"uid": "u1", "name": "p", "deletionTimestamp": "x"}})
    for _ in range(500):
        if not workers.known():
            break
        await asyncio.sleep(0.01)
    assert calls == [False, True] and workers.known() == set()
    await workers.stop()
