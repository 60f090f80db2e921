"""The node lifecycle controller against a real in-process API server and a fake clock.

Each test drives the controller by calling ``sync()`` (one level-triggered pass) and moving
the fake clock; the periodic loop is exercised once with start/stop.
"""

from __future__ import annotations

import asyncio

import pytest
from builders import make_node

from podling.api.errors import ApiError
from podling.client import ApiClient
from podling.controllers import nodelifecycle
from podling.controllers.nodelifecycle import UNREACHABLE_TAINT, NodeLifecycleController
from podling.util.clock import FakeClock
from podling.util.timefmt import epoch_rfc3339

GRACE = 40.0
TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
EARLIER = "2023-11-14T22:00:00Z"


def node_body(name: str, ready: str = "True") -> dict:
    """A bare Node with the four conditions, all last heard of at EARLIER."""
    node = make_node(name).bare()
    for t in TYPES:
        node.condition(t, ready if t == "Ready" else "False", reason="R", message="m",
                       lastHeartbeatTime=EARLIER, lastTransitionTime=EARLIER)
    return node.build()


def lease_body(name: str, renew: str) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}}


@pytest.fixture
async def env(client: ApiClient):
    clock = FakeClock()
    controller = NodeLifecycleController(client, grace_seconds=GRACE, clock=clock)
    return client, clock, controller


async def renew(client: ApiClient, name: str, clock: FakeClock) -> None:
    stamp = epoch_rfc3339(clock.now()).replace("Z", ".000000Z")
    try:
        lease = await client.get("leases", name, "kube-node-lease")
    except ApiError:
        await client.create("leases", lease_body(name, stamp))
        return
    lease["spec"]["renewTime"] = stamp
    await client.update("leases", lease)


async def update_node_status(client: ApiClient, name: str, change) -> None:
    node = await client.get("nodes", name)
    change(node)
    await client.update_status("nodes", node)


def conditions(node: dict) -> dict[str, dict]:
    return {c["type"]: c for c in node["status"]["conditions"]}


def unreachable(node: dict) -> list[tuple[str, str]]:
    return sorted((t["key"], t["effect"]) for t in node.get("spec", {}).get("taints") or []
                  if t["key"] == UNREACHABLE_TAINT)


async def test_a_silent_node_turns_unknown_and_unreachable_after_the_grace(env) -> None:
    client, clock, controller = env
    await client.create("nodes", node_body("n1"))
    await renew(client, "n1", clock)
    await controller.sync()
    clock.advance(GRACE)  # exactly the grace: not yet
    await controller.sync()
    node = await client.get("nodes", "n1")
    assert conditions(node)["Ready"]["status"] == "True"
    assert unreachable(node) == []

    clock.advance(1)
    await controller.sync()
    node = await client.get("nodes", "n1")
    now = epoch_rfc3339(clock.now())
    for type_, cond in conditions(node).items():
        assert (cond["status"], cond["reason"], cond["message"]) == \
            ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."), type_
        assert cond["lastTransitionTime"] == now
        assert cond["lastHeartbeatTime"] == EARLIER  # kept: the agent's last report
    assert unreachable(node) == [(UNREACHABLE_TAINT, "NoExecute"),
                                 (UNREACHABLE_TAINT, "NoSchedule")]
    taints = {t["effect"]: t for t in node["spec"]["taints"]}
    assert taints["NoExecute"]["timeAdded"] == now
    assert "timeAdded" not in taints["NoSchedule"]


async def test_later_passes_keep_the_first_transition_time_and_write_nothing(env) -> None:
    client, clock, controller = env
    await client.create("nodes", node_body("n1"))
    await controller.sync()
    clock.advance(GRACE + 1)
    await controller.sync()
    first = await client.get("nodes", "n1")
    clock.advance(30)
    await controller.sync()
    again = await client.get("nodes", "n1")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert conditions(again)["Ready"]["lastTransitionTime"] == \
        epoch_rfc3339(clock.now() - 30)


async def test_renewals_keep_the_node_reachable(env) -> None:
    client, clock, controller = env
    await client.create("nodes", node_body("n1"))
    for _ in range(10):
        await renew(client, "n1", clock)
        await controller.sync()
        clock.advance(GRACE / 2)
    node = await client.get("nodes", "n1")
    assert conditions(node)["Ready"]["status"] == "True"
    assert unreachable(node) == []


async def test_recovery_removes_the_taints_once_the_agent_reports_ready(env) -> None:
    client, clock, controller = env
    node = node_body("n1")
    node["spec"] = {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}
    await client.create("nodes", node)
    await controller.sync()
    clock.advance(GRACE + 1)
    await controller.sync()
    assert unreachable(await client.get("nodes", "n1"))

    await renew(client, "n1", clock)  # lease back, but Ready still Unknown: keep the taints
    await controller.sync()
    assert unreachable(await client.get("nodes", "n1"))

    stamp = epoch_rfc3339(clock.now())

    def ready(n: dict) -> dict:
        for cond in n["status"]["conditions"]:
            cond.update(status="True" if cond["type"] == "Ready" else "False",
                        lastHeartbeatTime=stamp, lastTransitionTime=stamp)
        return n
    await update_node_status(client, "n1", ready)
    await controller.sync()
    node = await client.get("nodes", "n1")
    assert unreachable(node) == []
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    assert conditions(node)["Ready"]["status"] == "True"


async def test_a_node_that_never_reported_gets_never_updated_conditions(env) -> None:
    client, clock, controller = env
    await client.create("nodes", {"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": "bare"}})
    await controller.sync()
    clock.advance(GRACE + 1)
    await controller.sync()
    node = await client.get("nodes", "bare")
    for cond in conditions(node).values():
        assert (cond["status"], cond["reason"], cond["message"]) == \
            ("Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")
    assert len(unreachable(node)) == 2


async def test_status_heartbeats_count_as_signs_of_life(env) -> None:
    client, clock, controller = env
    await client.create("nodes", node_body("n1"))
    await controller.sync()
    for _ in range(4):
        clock.advance(GRACE / 2)
        stamp = epoch_rfc3339(clock.now())

        def beat(n: dict) -> dict:
            for cond in n["status"]["conditions"]:
                cond["lastHeartbeatTime"] = stamp
            return n
        await update_node_status(client, "n1", beat)
        await controller.sync()
    assert conditions(await client.get("nodes", "n1"))["Ready"]["status"] == "True"


async def test_deleted_nodes_are_forgotten(env) -> None:
    client, clock, controller = env
    await client.create("nodes", node_body("n1"))
    await controller.sync()
    await client.delete("nodes", "n1")
    clock.advance(GRACE + 1)
    await controller.sync()
    assert controller._seen == {}


async def test_the_loop_runs_passes_until_stopped(client: ApiClient) -> None:
    await client.create("nodes", node_body("n1"))
    controller = NodeLifecycleController(client, grace_seconds=0.2, period=0.05)
    controller.start()
    try:
        for _ in range(100):
            node = await client.get("nodes", "n1")
            if unreachable(node):
                break
            await asyncio.sleep(0.05)
    finally:
        await controller.stop()
        await controller.stop()  # idempotent
    assert conditions(node)["Ready"]["status"] == "Unknown"
    assert len(unreachable(node)) == 2


@pytest.mark.parametrize("grace,period", [(40, 5.0), (3, 0.75), (0.1, 0.2)])
def test_default_period(grace: float, period: float) -> None:
    assert nodelifecycle.default_period(grace) == period
