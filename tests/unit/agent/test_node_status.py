"""NodeStatusLoop against a real in-process API server (memory datastore)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator

import pytest
from inprocess import wait_until

from podling.agent.config import AgentConfig
from podling.agent.node.conditions import desired_conditions, merge_conditions, ready_message
from podling.agent.node.host import (KUBELET_VERSION, Pressure, allocatable, default_route,
                                     primary_ipv4)
from podling.agent.node.node_status import STATUS_REPORT_SECONDS, NodeStatusLoop
from podling.api.errors import ApiError
from podling.api.resources import EVENTS, LEASES, NODES
from podling.apiserver.server import ServerConfig, start
from podling.client import ApiClient, ClientConfig
from podling.client.events import EventRecorder
from podling.util.clock import FakeClock

T0 = 1_800_000_000.0


class Readiness:
    """A ready_check whose answer the test sets."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    async def __call__(self) -> list[str]:
        return list(self.problems)


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[ApiClient]:
    running = await start(ServerConfig(data_dir=str(tmp_path / "server"), port=0,
                                       datastore="memory", service_account_admission=False))
    try:
        async with ApiClient(ClientConfig.from_kubeconfig(running.config.kubeconfig_path)) as api:
            yield api
    finally:
        await running.stop()


def make_config(tmp_path, **overrides: Any) -> AgentConfig:
    fields: dict[str, Any] = dict(server_url="https://unused", token="", ca_file="",
                                  node_name="node1", node_labels={"zone": "a"},
                                  data_dir=str(tmp_path / "agent"), max_pods=42,
                                  heartbeat_seconds=0.05)
    fields.update(overrides)
    return AgentConfig(**fields)


def make_loop(client: ApiClient, tmp_path, clock: FakeClock, ready: Readiness | None = None,
              **kwargs: Any) -> NodeStatusLoop:
    config = kwargs.pop("config", None) or make_config(tmp_path)
    return NodeStatusLoop(client, config, ready_check=ready or Readiness(), clock=clock,
                          runtime_version="runc://1.1.12", kubelet_port=10250, **kwargs)


def conditions(node: dict) -> dict[str, dict]:
    return {c["type"]: c for c in node["status"]["conditions"]}


async def test_register_creates_the_node(client: ApiClient, tmp_path) -> None:
    loop = make_loop(client, tmp_path, FakeClock(T0))
    await loop.register()
    node = await client.get(NODES, "node1")
    arch = loop.config.architecture
    assert node["metadata"]["labels"] == {
        "kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch, "zone": "a"}
    status = node["status"]
    assert [a["type"] for a in status["addresses"]] == ["InternalIP", "Hostname"]
    assert status["addresses"][0]["address"] == primary_ipv4()
    assert status["addresses"][1]["address"] == "node1"
    assert status["capacity"]["cpu"] == str(os.cpu_count())
    assert status["capacity"]["pods"] == "42"
    assert status["capacity"]["memory"].endswith("Ki")
    assert "ephemeral-storage" in status["allocatable"]
    info = status["nodeInfo"]
    assert info["kubeletVersion"] == KUBELET_VERSION
    assert info["containerRuntimeVersion"] == "runc://1.1.12"
    assert info["operatingSystem"] == "linux" and info["architecture"] == arch
    assert info["kernelVersion"] == os.uname().release
    assert info["kubeProxyVersion"] == ""
    assert info["osImage"] and info["bootID"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    conds = conditions(node)
    assert [c["type"] for c in status["conditions"]] == [
        "MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "KubeletReady"
    assert conds["Ready"]["message"] == "kubelet is posting ready status"
    assert conds["MemoryPressure"]["reason"] in ("KubeletHasSufficientMemory",
                                                 "KubeletHasInsufficientMemory")
    assert conds["Ready"]["lastHeartbeatTime"] == "2027-01-15T08:00:00Z"


async def test_nodes_table_shows_ready(client: ApiClient, tmp_path) -> None:
    await make_loop(client, tmp_path, FakeClock(T0)).register()
    table = await _table(client)
    row = table["rows"][0]["cells"]
    assert row[0] == "node1" and row[1] == "Ready"


async def _table(client: ApiClient) -> dict:
    async with client._send("GET", "/api/v1/nodes", timeout=client._timeout(),
                            accept="application/json;as=Table;v=v1;g=meta.k8s.io") as resp:
        return await resp.json()


async def test_lease_created_and_renewed(client: ApiClient, tmp_path) -> None:
    clock = FakeClock(T0)
    loop = make_loop(client, tmp_path, clock)
    await loop.tick()
    node = await client.get(NODES, "node1")
    lease = await client.get(LEASES, "node1", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "node1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["spec"]["renewTime"] == "2027-01-15T08:00:00.000000Z"
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": node["metadata"]["uid"]}]
    clock.advance(10.5)
    await loop.tick()
    lease = await client.get(LEASES, "node1", "kube-node-lease")
    assert lease["spec"]["renewTime"] == "2027-01-15T08:00:10.500000Z"


async def test_lease_recreated_after_deletion(client: ApiClient, tmp_path) -> None:
    clock = FakeClock(T0)
    loop = make_loop(client, tmp_path, clock)
    await loop.tick()
    await client.delete(LEASES, "node1", "kube-node-lease")
    clock.advance(10)
    await loop.tick()  # the cached lease is gone: update fails, logged
    clock.advance(10)
    await loop.tick()  # re-read → 404 → create
    lease = await client.get(LEASES, "node1", "kube-node-lease")
    assert lease["spec"]["renewTime"] == "2027-01-15T08:00:20.000000Z"


async def test_run_heartbeats_until_cancelled(client: ApiClient, tmp_path) -> None:
    clock = FakeClock(T0)
    loop = make_loop(client, tmp_path, clock)
    task = asyncio.create_task(loop.run())

    async def renew_time() -> str | None:
        try:
            return (await client.get(LEASES, "node1", "kube-node-lease"))["spec"]["renewTime"]
        except ApiError as e:  # the Lease is created a moment after the Node
            assert e.code == 404, e
            return None

    try:
        first = await wait_until(renew_time, "the node's Lease")
        clock.advance(5)

        async def renewed() -> str | None:
            now = await renew_time()
            return now if now and now > first else None
        await wait_until(renewed, "a renewed Lease")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_not_ready_flip_and_transition_times(client: ApiClient, tmp_path) -> None:
    clock, ready = FakeClock(T0), Readiness()
    loop = make_loop(client, tmp_path, clock, ready)
    await loop.tick()
    clock.advance(10)
    assert await loop.sync_status() is False  # nothing changed: heartbeat is the lease
    ready.problems = ["container runtime network not ready: NetworkReady=false "
                      "reason:NetworkPluginNotReady message:cni plugin not initialized"]
    clock.advance(10)
    await loop.tick()
    conds = conditions(await client.get(NODES, "node1"))
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "KubeletNotReady"
    assert conds["Ready"]["message"] == ready.problems[0]
    assert conds["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:20Z"
    assert conds["MemoryPressure"]["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert conds["MemoryPressure"]["lastHeartbeatTime"] == "2027-01-15T08:00:20Z"
    ready.problems = ["a", "b"]
    clock.advance(10)
    await loop.tick()
    conds = conditions(await client.get(NODES, "node1"))
    assert conds["Ready"]["message"] == "[a, b]"
    assert conds["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:20Z"
    ready.problems = []
    clock.advance(10)
    await loop.tick()
    conds = conditions(await client.get(NODES, "node1"))
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:40Z"


async def test_status_reported_every_five_minutes_when_unchanged(client: ApiClient,
                                                                  tmp_path) -> None:
    clock = FakeClock(T0)
    loop = make_loop(client, tmp_path, clock)
    await loop.register()
    clock.advance(STATUS_REPORT_SECONDS - 1)
    assert await loop.sync_status() is False
    clock.advance(1)
    assert await loop.sync_status() is True
    conds = conditions(await client.get(NODES, "node1"))
    assert conds["Ready"]["lastHeartbeatTime"] == "2027-01-15T08:05:00Z"
    assert conds["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:00Z"


async def test_ready_check_exception_is_a_problem(client: ApiClient, tmp_path) -> None:
    async def broken() -> list[str]:
        raise RuntimeError("boom")

    loop = NodeStatusLoop(client, make_config(tmp_path), ready_check=broken, clock=FakeClock(T0))
    await loop.tick()
    conds = conditions(await client.get(NODES, "node1"))
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["message"] == "ready check failed: boom"


async def test_reregistration_adopts_existing_node(client: ApiClient, tmp_path) -> None:
    clock = FakeClock(T0)
    await make_loop(client, tmp_path, clock).register()
    await client.patch(NODES, "node1", {"metadata": {"labels": {"custom": "kept",
                                                                "zone": "old"}}})
    node = await client.get(NODES, "node1")
    uid = node["metadata"]["uid"]
    clock.advance(60)
    config = make_config(tmp_path, node_labels={"zone": "b"})
    loop = make_loop(client, tmp_path, clock, config=config)
    await loop.tick()
    node = await client.get(NODES, "node1")
    assert node["metadata"]["uid"] == uid
    labels = node["metadata"]["labels"]
    assert labels["custom"] == "kept" and labels["zone"] == "b"
    assert labels["kubernetes.io/hostname"] == "node1"
    conds = conditions(node)
    assert conds["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert conds["Ready"]["lastHeartbeatTime"] == "2027-01-15T08:01:00Z"


async def test_pod_cidr(client: ApiClient, tmp_path) -> None:
    loop = make_loop(client, tmp_path, FakeClock(T0))
    await loop.register()
    node = await client.get(NODES, "node1")
    expected = (node.get("spec") or {}).get("podCIDR")  # the server may assign one
    assert await loop.pod_cidr() == expected
    if expected is None:
        await client.patch(NODES, "node1", {"spec": {"podCIDR": "10.88.1.0/24",
                                                     "podCIDRs": ["10.88.1.0/24"]}})
        assert await loop.pod_cidr() == "10.88.1.0/24"


async def test_node_events_recorded(client: ApiClient, tmp_path) -> None:
    clock, ready = FakeClock(T0), Readiness()
    recorder = EventRecorder(client, "kubelet", "node1", clock=clock)
    loop = make_loop(client, tmp_path, clock, ready, recorder=recorder,
                     pressure=lambda: Pressure())
    await loop.tick()
    ready.problems = ["network not ready"]
    clock.advance(10)
    await loop.tick()
    await recorder.flush()
    events, _ = await client.list(EVENTS, "default")
    reasons = sorted(e["reason"] for e in events)
    assert reasons == ["NodeHasNoDiskPressure", "NodeHasSufficientMemory",
                       "NodeHasSufficientPID", "NodeNotReady", "NodeReady"]
    ready_event = next(e for e in events if e["reason"] == "NodeReady")
    assert ready_event["message"] == "Node node1 status is now: NodeReady"
    assert ready_event["involvedObject"]["kind"] == "Node"
    await recorder.close()


async def test_unreachable_server_never_raises(tmp_path) -> None:
    api = ApiClient(ClientConfig(server="https://127.0.0.1:1", insecure_skip_tls_verify=True,
                                 request_timeout=1, connect_timeout=1))
    try:
        loop = make_loop(api, tmp_path, FakeClock(T0))
        await loop.tick()
        assert not loop.registered
    finally:
        await api.close()


@pytest.mark.parametrize("problems,expected", [(["x"], "x"), (["x", "y"], "[x, y]")])
def test_ready_message(problems: list[str], expected: str) -> None:
    assert ready_message(problems) == expected


def test_pressure_conditions_and_transitions() -> None:
    desired = desired_conditions([], Pressure(memory=True, disk=True, pid=True))
    assert desired["MemoryPressure"] == ("True", "KubeletHasInsufficientMemory",
                                         "kubelet has insufficient memory available")
    assert desired["DiskPressure"] == ("True", "KubeletHasDiskPressure",
                                       "kubelet has disk pressure")
    assert desired["PIDPressure"] == ("True", "KubeletHasInsufficientPID",
                                      "kubelet has insufficient PID available")
    first = merge_conditions([], desired, "t0")
    fine = desired_conditions([], Pressure())
    second = merge_conditions(first, fine, "t1")
    assert {c["lastTransitionTime"] for c in second if c["type"] != "Ready"} == {"t1"}
    assert next(c for c in second if c["type"] == "Ready")["lastTransitionTime"] == "t0"


def test_allocatable_subtracts_eviction_thresholds() -> None:
    cap = {"cpu": "4", "memory": "2048000Ki", "pods": "110", "ephemeral-storage": "1000Ki"}
    assert allocatable(cap) == {"cpu": "4", "memory": "1945600Ki", "pods": "110",
                                "ephemeral-storage": "900Ki"}


def test_default_route_parses_proc() -> None:
    route = default_route()
    if route is not None:
        assert route[0] and route[1].count(".") == 3


async def test_a_node_set_unknown_by_the_server_is_reported_again_at_once(
        client: ApiClient, tmp_path) -> None:
    """After the node lifecycle controller marks the node Unknown, the next status sync
    reports Ready=True again without waiting for the periodic report."""
    loop = make_loop(client, tmp_path, FakeClock(T0))
    await loop.register()
    node = await client.get(NODES, "node1")
    unknown = [dict(c, status="Unknown") for c in node["status"]["conditions"]]
    await client.patch(NODES, "node1", {"status": {"conditions": unknown}},
                       patch_type="merge", subresource="status")
    assert await loop.sync_status() is True
    assert conditions(await client.get(NODES, "node1"))["Ready"]["status"] == "True"
    assert await loop.sync_status() is False  # nothing drifted any more
