"""The scheduler against a real API server with agent-less nodes."""

from __future__ import annotations

import asyncio
from typing import Any

from builders import PodBuilder, expr, make_pod, term
from inprocess import wait_until
from sched_cluster import NODE_NAMES, ready_node

from podling.client import ApiClient

Obj = dict[str, Any]
NS = "default"
NOT_HELPFUL = "Preemption is not helpful for scheduling"


def on(node: str) -> dict[str, str]:
    """A nodeSelector for one node by its hostname label."""
    return {"kubernetes.io/hostname": node}


async def create(client: ApiClient, pod: PodBuilder) -> Obj:
    """Create the pod as a client would send it (no uid, no status)."""
    return await client.create("pods", pod.no_uid().no_status().build(), NS)


async def bound_to(client: ApiClient, name: str, timeout: float = 10.0) -> str:
    async def check() -> str:
        pod = await client.get("pods", name, NS)
        return pod["spec"].get("nodeName") or ""
    return await wait_until(check, f"pod {name} to be bound", timeout)


async def events(client: ApiClient, name: str, reason: str) -> list[Obj]:
    items, _ = await client.list("events", NS)
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


async def unschedulable(client: ApiClient, name: str, message: str) -> Obj:
    """Wait for the FailedScheduling event and PodScheduled=False condition with ``message``."""
    async def check() -> Obj | None:
        pod = await client.get("pods", name, NS)
        conds = [c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"]
        evs = await events(client, name, "FailedScheduling")
        if conds and conds[0]["status"] == "False" and conds[0]["message"] == message and evs:
            return pod | {"_events": evs}
        return None
    try:
        return await wait_until(check, f"pod {name} unschedulable", 10)
    except AssertionError:
        pod = await client.get("pods", name, NS)
        raise AssertionError(f"{pod['status']} events={await events(client, name, 'FailedScheduling')}")


def msg(n: int, hist: str, post: str) -> str:
    return f"0/{n} nodes are available: {hist}. preemption: 0/{n} nodes are available: {post}."


async def test_node_selector_lands_on_the_named_node(cluster: ApiClient) -> None:
    await create(cluster, make_pod("web").selector(**on("172.31.2.12")))
    assert await bound_to(cluster, "web") == "172.31.2.12"
    pod = await cluster.get("pods", "web", NS)
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True"
    evs = await wait_until(lambda: events(cluster, "web", "Scheduled"), "Scheduled event", 5)
    assert evs[0]["message"] == "Successfully assigned default/web to 172.31.2.12"
    assert evs[0]["type"] == "Normal" and evs[0]["source"]["component"] == "default-scheduler"


async def test_pending_until_a_node_is_labelled(cluster: ApiClient) -> None:
    await create(cluster, make_pod("ssd").selector(disk="ssd"))
    want = msg(3, "3 node(s) didn't match Pod's node affinity/selector", f"3 {NOT_HELPFUL}")
    pod = await unschedulable(cluster, "ssd", want)
    cond = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"][0]
    assert cond["reason"] == "Unschedulable"
    ev = pod["_events"][0]
    assert ev["type"] == "Warning" and ev["message"] == want
    assert ev["source"]["component"] == "default-scheduler"
    assert pod["status"].get("phase") == "Pending" and not pod["spec"].get("nodeName")
    await asyncio.sleep(1.5)  # let a back-off pass: the pod is still pending
    node = await cluster.get("nodes", "172.31.2.13")
    node["metadata"]["labels"]["disk"] = "ssd"
    labelled = asyncio.get_running_loop().time()
    await cluster.patch("nodes", "172.31.2.13", {"metadata": {"labels": {"disk": "ssd"}}})
    assert await bound_to(cluster, "ssd", timeout=5) == "172.31.2.13"
    assert asyncio.get_running_loop().time() - labelled < 3


async def test_node_name_pods_bypass_the_scheduler(cluster: ApiClient) -> None:
    await create(cluster, make_pod("pinned").node("172.31.2.11"))
    await create(cluster, make_pod("marker").selector(**on("172.31.2.11")))
    await bound_to(cluster, "marker")
    await wait_until(lambda: events(cluster, "marker", "Scheduled"), "marker's event", 5)
    assert await events(cluster, "pinned", "Scheduled") == []
    pod = await cluster.get("pods", "pinned", NS)
    assert pod["spec"]["nodeName"] == "172.31.2.11"
    assert not [c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"
                and c["status"] == "False"]


async def test_taints_and_tolerations(cluster: ApiClient) -> None:
    await cluster.patch("nodes", "172.31.2.11", {"spec": {"taints": [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})
    await cluster.patch("nodes", "172.31.2.12", {"metadata": {"labels": {"gpu": "yes"}}})
    await cluster.patch("nodes", "172.31.2.11", {"metadata": {"labels": {"gpu": "yes"}}})
    await wait_until(lambda: _node_has_taint(cluster), "taint visible", 5)
    await create(cluster, make_pod("plain").selector(**on("172.31.2.11")))
    await unschedulable(cluster, "plain", msg(
        3, "1 node(s) had untolerated taint {dedicated: gpu}, "
           "2 node(s) didn't match Pod's node affinity/selector", f"3 {NOT_HELPFUL}"))
    await create(cluster, make_pod("tolerant").selector(**on("172.31.2.11"))
                 .toleration("dedicated", "Equal", "gpu", "NoSchedule"))
    assert await bound_to(cluster, "tolerant") == "172.31.2.11"
    for i in range(4):  # untolerating pods selecting gpu nodes only go to .12
        await create(cluster, make_pod(f"g{i}").selector(gpu="yes"))
        assert await bound_to(cluster, f"g{i}") == "172.31.2.12"


async def _node_has_taint(client: ApiClient) -> bool:
    node = await client.get("nodes", "172.31.2.11")
    return bool(node["spec"].get("taints")) and "gpu" in node["metadata"]["labels"]


async def test_required_and_preferred_affinity(cluster: ApiClient) -> None:
    await cluster.patch("nodes", "172.31.2.13", {"metadata": {"labels": {"zone": "b"}}})
    await create(cluster, make_pod("req").required(
        term(expr("kubernetes.io/hostname", "NotIn", "172.31.2.11", "172.31.2.12"))))
    assert await bound_to(cluster, "req") == "172.31.2.13"
    await create(cluster, make_pod("byname").required(
        term(fields=[expr("metadata.name", "In", "172.31.2.12")])))
    assert await bound_to(cluster, "byname") == "172.31.2.12"
    for i in range(3):
        await create(cluster, make_pod(f"pref{i}").preferred(100, term(expr("zone", "In", "b"))))
        assert await bound_to(cluster, f"pref{i}") == "172.31.2.13"
    await create(cluster, make_pod("nowhere").required(term(expr("zone", "In", "z"))))
    await unschedulable(cluster, "nowhere", msg(
        3, "3 node(s) didn't match Pod's node affinity/selector", f"3 {NOT_HELPFUL}"))


async def test_too_big_for_every_node(cluster: ApiClient) -> None:
    await create(cluster, make_pod("huge").requests(cpu="64"))
    await unschedulable(cluster, "huge", msg(
        3, "3 Insufficient cpu", "3 No preemption victims found for incoming pod"))


async def test_cordon_is_respected(cluster: ApiClient) -> None:
    for name in NODE_NAMES:
        await cluster.patch("nodes", name, {"spec": {"unschedulable": True}})
    await wait_until(lambda: _all_cordoned(cluster), "cordon visible", 5)
    await create(cluster, make_pod("c1"))
    await unschedulable(cluster, "c1", msg(3, "3 node(s) were unschedulable",
                                           f"3 {NOT_HELPFUL}"))
    await cluster.patch("nodes", "172.31.2.12", {"spec": {"unschedulable": None}})
    assert await bound_to(cluster, "c1", timeout=5) == "172.31.2.12"


async def _all_cordoned(client: ApiClient) -> bool:
    items, _ = await client.list("nodes")
    return all(n["spec"].get("unschedulable") for n in items)


async def test_deleting_a_pod_frees_resources(cluster: ApiClient) -> None:
    await create(cluster, make_pod("first").selector(**on("172.31.2.11")).requests(cpu="3"))
    assert await bound_to(cluster, "first") == "172.31.2.11"
    await create(cluster, make_pod("second").selector(**on("172.31.2.11")).requests(cpu="2"))
    await unschedulable(cluster, "second", msg(
        3, "1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector",
        f"1 No preemption victims found for incoming pod, 2 {NOT_HELPFUL}"))
    await cluster.delete("pods", "first", NS, grace_period=0)
    assert await bound_to(cluster, "second", timeout=5) == "172.31.2.11"


async def test_a_node_added_later_takes_the_pod(cluster: ApiClient) -> None:
    await create(cluster, make_pod("late").selector(**on("172.31.2.14")))
    await unschedulable(cluster, "late", msg(
        3, "3 node(s) didn't match Pod's node affinity/selector", f"3 {NOT_HELPFUL}"))
    await cluster.create("nodes", ready_node("172.31.2.14").build())
    assert await bound_to(cluster, "late", timeout=5) == "172.31.2.14"


async def test_repeated_failures_aggregate_into_one_event(cluster: ApiClient) -> None:
    await create(cluster, make_pod("again").selector(disk="nvme"))
    want = msg(3, "3 node(s) didn't match Pod's node affinity/selector", f"3 {NOT_HELPFUL}")
    await unschedulable(cluster, "again", want)
    for i in range(2):  # irrelevant-but-scheduling-visible changes retry the pod
        await cluster.patch("nodes", "172.31.2.11", {"metadata": {"labels": {"x": str(i)}}})
        await asyncio.sleep(1.2)

    async def counted() -> bool:
        evs = await events(cluster, "again", "FailedScheduling")
        return len(evs) == 1 and evs[0]["count"] >= 2
    await wait_until(counted, "an aggregated FailedScheduling event", 10)


async def test_pods_of_other_schedulers_are_left_alone(cluster: ApiClient) -> None:
    await create(cluster, make_pod("other").scheduler("my-scheduler"))
    await create(cluster, make_pod("marker2"))
    await bound_to(cluster, "marker2")
    pod = await cluster.get("pods", "other", NS)
    assert not pod["spec"].get("nodeName") and not pod["status"].get("conditions")
