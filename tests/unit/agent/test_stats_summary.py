"""The node's /stats/summary: host parsers, CPU rates and the summary over a FakeRuntime with a
fake clock (nothing sleeps for real)."""

from __future__ import annotations

import asyncio

import pytest

from podling.agent.kuberuntime import labels
from podling.agent.node.stats import (CpuRates, HostReaders, NodeMemory, NodeStats, Rate,
                                      parse_meminfo, parse_proc_stat)
from podling.runtime.fake import FakeRuntime
from podling.runtime.interface import ContainerConfig, PodSandboxConfig
from podling.util.clock import FakeClock

# -- host parsers -------------------------------------------------------------------------


def test_proc_stat_busy_time() -> None:
    text = ("cpu  100 20 30 5000 40 5 6 7 8 0\n"
            "cpu0 50 10 15 2500 20 2 3 3 4 0\nintr 1 2 3\n")
    # user+nice+system+irq+softirq+steal = 100+20+30+5+6+7 = 168 ticks of 1/100 s
    assert parse_proc_stat(text, 100) == 1_680_000_000


def test_proc_stat_without_cpu_line() -> None:
    with pytest.raises(ValueError):
        parse_proc_stat("intr 1\n", 100)


def test_meminfo() -> None:
    text = ("MemTotal:       16000 kB\nMemFree:         4000 kB\nMemAvailable:    9000 kB\n"
            "Buffers:          100 kB\nCached:          5000 kB\nInactive(file):  3000 kB\n")
    memory = parse_meminfo(text)
    assert memory == NodeMemory(16000 * 1024, 12000 * 1024, 9000 * 1024)
    assert memory.available_bytes == 7000 * 1024


def test_meminfo_working_set_clamped() -> None:
    memory = parse_meminfo("MemTotal: 10 kB\nMemFree: 8 kB\nInactive(file): 5 kB\n")
    assert memory.working_set_bytes == 0 and memory.available_bytes == 10 * 1024


# -- rates --------------------------------------------------------------------------------


@pytest.mark.parametrize("steps, expected", [
    # (time, cumulative ns) observations → the last observe()'s answer
    ([(0.0, 0)], None),  # no previous sample
    ([(0.0, 0), (2.0, 1_000_000_000)], Rate(500_000_000, 2.0)),  # half a core
    ([(0.0, 0), (61.0, 61_000_000_000)], None),  # previous too old: start again
    ([(0.0, 0), (61.0, 61_000), (62.0, 61_000 + 250_000_000)], Rate(250_000_000, 1.0)),
    ([(0.0, 0), (0.2, 100)], None),  # too young and no rate yet
    ([(0.0, 0), (1.0, 1_000_000_000), (1.2, 1_100_000_000)], Rate(1_000_000_000, 1.0)),
    ([(0.0, 0), (1.0, 1_000_000_000), (2.0, 1)], None),  # counter went back: start again
    ([(0.0, 0), (1.0, 9), (2.0, 1), (3.0, 11)], Rate(10, 1.0)),
    ([(0.0, 0), (1.0, 10), (1.2, 20), (3.0, 40)], Rate(15, 2.0)),  # window grew from t=1
])
def test_cpu_rates(steps, expected) -> None:
    rates = CpuRates(min_window=0.5, max_age=60.0)
    answer = None
    for when, usage in steps:
        answer = rates.observe("c", when, usage)
    assert answer == expected


def test_cpu_rates_forget_gone_keys() -> None:
    rates = CpuRates()
    rates.observe("a", 0.0, 0)
    rates.observe("b", 0.0, 0)
    rates.keep_only({"b"})
    assert rates.observe("a", 1.0, 10) is None
    assert rates.observe("b", 1.0, 10) == Rate(10, 1.0)


# -- the summary ----------------------------------------------------------------------------


class Host:
    """Node counters the test moves by hand."""

    def __init__(self) -> None:
        self.cpu_ns = 0
        self.memory = NodeMemory(8 << 30, 3 << 30, 2 << 30)
        self.readers = HostReaders(cpu_ns=lambda: self.cpu_ns, memory=lambda: self.memory)


def api_pod(name: str, uid: str, namespace: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"nodeName": "n1"}}


class Node:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock.now)
        self.host = Host()
        self.pods: dict[tuple[str, str], dict] = {}
        self.stats = NodeStats(self.runtime, lambda ns, n: self.pods.get((ns, n)),
                               node_name="n1", readers=self.host.readers, clock=self.clock)

    async def run(self, pod: dict, *containers: str) -> list[str]:
        meta = pod["metadata"]
        self.pods[(meta["namespace"], meta["name"])] = pod
        pod_labels = {labels.POD_NAME: meta["name"], labels.POD_NAMESPACE: meta["namespace"],
                      labels.POD_UID: meta["uid"]}
        sid = await self.runtime.run_pod_sandbox(PodSandboxConfig(
            meta["name"], meta["namespace"], meta["uid"], labels=pod_labels))
        ids = []
        for name in containers:
            cid = await self.runtime.create_container(sid, ContainerConfig(
                name=name, rootfs="/", command=["sh"],
                labels={**pod_labels, labels.CONTAINER_NAME: name}))
            await self.runtime.start_container(cid)
            ids.append(cid)
        return ids

    async def summary_after_settle(self) -> dict:
        """A request that has to take two samples: let the fake second pass."""
        task = asyncio.create_task(self.stats.summary())
        while self.clock.sleepers == 0:
            assert not task.done(), "expected the request to wait for a second sample"
            await asyncio.sleep(0)
        self.clock.advance(1.0)
        self.host.cpu_ns += 1_500_000_000  # 1.5 cores busy over that second
        for cid, busy in self.busy.items():
            self.runtime.set_stats(cid, cpu_usage_core_nanoseconds=self.cpu_of(cid) + busy,
                                   memory_usage_bytes=5 << 20,
                                   memory_working_set_bytes=4 << 20)
        return await task

    busy: dict[str, int] = {}

    def cpu_of(self, cid: str) -> int:
        return self.runtime._stats.get(cid, (0, 0, 0))[0]


async def test_first_request_waits_one_second_and_reports_rates() -> None:
    node = Node()
    web, idle = await node.run(api_pod("web", "u1"), "busy", "idle")
    node.busy = {web: 900_000_000, idle: 1_000_000}
    body = await node.summary_after_settle()
    assert body["node"]["nodeName"] == "n1"
    assert body["node"]["cpu"]["usageNanoCores"] == 1_500_000_000
    assert body["node"]["memory"] == {"time": body["node"]["memory"]["time"],
                                      "availableBytes": 6 << 30, "usageBytes": 3 << 30,
                                      "workingSetBytes": 2 << 30}
    [pod] = body["pods"]
    assert pod["podRef"] == {"name": "web", "namespace": "default", "uid": "u1"}
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers["busy"]["cpu"]["usageNanoCores"] == 900_000_000
    assert containers["idle"]["cpu"]["usageNanoCores"] == 1_000_000
    assert containers["busy"]["memory"]["workingSetBytes"] == 4 << 20
    assert pod["cpu"]["usageNanoCores"] == 901_000_000
    assert pod["memory"]["workingSetBytes"] == 8 << 20


async def test_a_later_request_uses_the_previous_sample_without_waiting() -> None:
    node = Node()
    [cid] = await node.run(api_pod("web", "u1"), "c")
    node.busy = {cid: 0}
    await node.summary_after_settle()
    node.clock.advance(10.0)
    node.host.cpu_ns += 5_000_000_000
    node.runtime.set_stats(cid, cpu_usage_core_nanoseconds=2_000_000_000)
    body = await asyncio.wait_for(node.stats.summary(), 1)  # no sleep: fake time stands still
    assert body["node"]["cpu"]["usageNanoCores"] == 500_000_000
    assert body["node"]["cpu"]["windowSeconds"] == 10.0
    assert body["pods"][0]["containers"][0]["cpu"]["usageNanoCores"] == 200_000_000


async def test_a_stale_previous_sample_means_waiting_again() -> None:
    node = Node()
    [cid] = await node.run(api_pod("web", "u1"), "c")
    node.busy = {cid: 100}
    await node.summary_after_settle()
    node.clock.advance(120.0)
    body = await node.summary_after_settle()
    assert body["pods"][0]["containers"][0]["cpu"]["usageNanoCores"] == 100


async def test_a_new_container_makes_the_request_wait() -> None:
    node = Node()
    [a] = await node.run(api_pod("a", "ua"), "c")
    node.busy = {a: 0}
    await node.summary_after_settle()
    node.clock.advance(5.0)
    [b] = await node.run(api_pod("b", "ub"), "c")
    node.busy = {a: 0, b: 300_000_000}
    body = await node.summary_after_settle()
    assert [p["podRef"]["name"] for p in body["pods"]] == ["a", "b"]
    assert body["pods"][1]["cpu"]["usageNanoCores"] == 300_000_000


async def test_only_running_containers_of_this_nodes_pods() -> None:
    node = Node()
    [kept] = await node.run(api_pod("web", "u1"), "c")
    [exited] = await node.run(api_pod("done", "u2"), "c")
    node.runtime.exit_container(exited, 0)
    [stale] = await node.run(api_pod("old", "u3"), "c")
    node.pods[("default", "old")] = api_pod("old", "u3-recreated")  # another pod now
    [gone] = await node.run(api_pod("deleted", "u4"), "c")
    del node.pods[("default", "deleted")]
    node.busy = {kept: 1, stale: 1, gone: 1}
    body = await node.summary_after_settle()
    assert [p["podRef"]["uid"] for p in body["pods"]] == ["u1"]


async def test_no_pods_still_reports_the_node() -> None:
    node = Node()
    node.busy = {}
    body = await node.summary_after_settle()
    assert body["pods"] == [] and body["node"]["cpu"]["usageNanoCores"] == 1_500_000_000


async def test_concurrent_requests_share_one_wait() -> None:
    node = Node()
    [cid] = await node.run(api_pod("web", "u1"), "c")
    node.busy = {cid: 50}
    second = asyncio.create_task(node.stats.summary())
    first = await node.summary_after_settle()
    body = await asyncio.wait_for(second, 1)
    assert body["pods"][0]["containers"][0]["cpu"]["usageNanoCores"] == \
        first["pods"][0]["containers"][0]["cpu"]["usageNanoCores"] == 50
    assert len(node.runtime.calls_of("container_stats")) == 3  # two samples, then one
