"""The scheduler with the real kubectl: a `podling server --disable-agent` subprocess, three
agent-less nodes created with kubectl, and a Scheduler running in a thread of this process.

The pods use their own schedulerName, so these tests stay valid (and unaffected) once
`podling server` runs its own default-scheduler.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from builders import make_node
from kubectl_util import new_namespace, pod_manifest, wait_until

from podling.client import ApiClient, ClientConfig
from podling.scheduler import Scheduler

NAME = "podling-e2e-scheduler"
NODES = ("172.31.2.11", "172.31.2.12", "172.31.2.13")
NOT_HELPFUL = "Preemption is not helpful for scheduling"


class SchedulerThread:
    """A Scheduler on its own event loop in a daemon thread."""

    def __init__(self, kubeconfig: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.kubeconfig = kubeconfig
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)

    async def _start(self) -> None:
        self.client = ApiClient(ClientConfig.from_kubeconfig(self.kubeconfig))
        self.scheduler = Scheduler(self.client, scheduler_name=NAME)
        self.scheduler.start()
        assert await self.scheduler.wait_synced(15)

    async def _stop(self) -> None:
        await self.scheduler.stop()
        await self.client.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def cluster(server):
    for name in NODES:
        server.kubectl("create", "-f", "-", input=json.dumps(make_node(name).build()))
    sched = SchedulerThread(server.kubeconfig)
    yield server
    sched.stop()


def create_pod(server, ns: str, name: str, **spec) -> None:
    server.kubectl("create", "-f", "-", input=pod_manifest(
        name, ns, image="busybox:1.36", spec_extra={"schedulerName": NAME, **spec}))


def node_of(server, ns: str, name: str) -> str:
    return server.kubectl("get", "pod", name, "-n", ns, "-o",
                          "jsonpath={.spec.nodeName}").stdout


def scheduled_condition(server, ns: str, name: str) -> dict:
    pod = json.loads(server.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)
    conds = [c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"]
    return conds[0] if conds else {}


def events_of(server, ns: str, name: str, reason: str) -> list[dict]:
    items = json.loads(server.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


def test_selector_label_and_node_name(cluster):
    server = cluster
    ns = new_namespace(server, "sched")
    create_pod(server, ns, "pinned-by-label",
               nodeSelector={"kubernetes.io/hostname": "172.31.2.12"})
    wait_until(lambda: node_of(server, ns, "pinned-by-label") == "172.31.2.12", 15,
               message="pod bound to 172.31.2.12")
    wait_until(lambda: events_of(server, ns, "pinned-by-label", "Scheduled"), 10,
               message="Scheduled event")
    [event] = events_of(server, ns, "pinned-by-label", "Scheduled")
    assert event["message"] == f"Successfully assigned {ns}/pinned-by-label to 172.31.2.12"
    assert event["source"]["component"] == NAME

    create_pod(server, ns, "ssd", nodeSelector={"disk": "ssd"})
    want = ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
            f"preemption: 0/3 nodes are available: 3 {NOT_HELPFUL}.")
    wait_until(lambda: scheduled_condition(server, ns, "ssd").get("message") == want, 15,
               message="PodScheduled=False with the FitError message")
    assert scheduled_condition(server, ns, "ssd")["reason"] == "Unschedulable"
    wait_until(lambda: events_of(server, ns, "ssd", "FailedScheduling"), 10,
               message="FailedScheduling event")
    assert events_of(server, ns, "ssd", "FailedScheduling")[0]["message"] == want
    described = server.kubectl("describe", "pod", "ssd", "-n", ns).stdout
    assert "FailedScheduling" in described and "didn't match Pod's node affinity" in described
    assert server.kubectl("get", "pod", "ssd", "-n", ns, "--no-headers").stdout.split()[2] \
        == "Pending"
    server.kubectl("label", "node", "172.31.2.13", "disk=ssd")
    wait_until(lambda: node_of(server, ns, "ssd") == "172.31.2.13", 5,
               message="pod bound within seconds of kubectl label")

    create_pod(server, ns, "by-name", nodeName="172.31.2.11")
    assert node_of(server, ns, "by-name") == "172.31.2.11"
    create_pod(server, ns, "marker")
    wait_until(lambda: events_of(server, ns, "marker", "Scheduled"), 10, message="marker")
    assert events_of(server, ns, "by-name", "Scheduled") == []


def test_cordon_taint_and_resources(cluster):
    server = cluster
    ns = new_namespace(server, "sched")
    for node in NODES:
        server.kubectl("cordon", node)
    create_pod(server, ns, "waits")
    want = ("0/3 nodes are available: 3 node(s) were unschedulable. "
            f"preemption: 0/3 nodes are available: 3 {NOT_HELPFUL}.")
    wait_until(lambda: scheduled_condition(server, ns, "waits").get("message") == want, 15,
               message="cordoned everywhere")
    server.kubectl("taint", "node", "172.31.2.12", "dedicated=gpu:NoSchedule")
    server.kubectl("uncordon", "172.31.2.12")
    want = ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            f"2 node(s) were unschedulable. preemption: 0/3 nodes are available: "
            f"3 {NOT_HELPFUL}.")
    wait_until(lambda: scheduled_condition(server, ns, "waits").get("message") == want, 15,
               message="taint message")
    server.kubectl("uncordon", "172.31.2.13")
    wait_until(lambda: node_of(server, ns, "waits") == "172.31.2.13", 10,
               message="bound after uncordon")

    create_pod(server, ns, "huge", containers=[{"name": "main", "image": "busybox:1.36",
                                                 "resources": {"requests": {"cpu": "64"}}}])
    want = ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{dedicated: gpu}, 1 node(s) were unschedulable. preemption: 0/3 nodes are "
            "available: 1 No preemption victims found for incoming pod, 2 "
            f"{NOT_HELPFUL}.")
    wait_until(lambda: scheduled_condition(server, ns, "huge").get("message") == want, 15,
               message="Insufficient cpu")
