"""EventRecorder against a real in-process API server (memory datastore, conftest.py):
fields, aggregation, lanes and ordering, failure handling."""

from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterator

import pytest

from podling.api.resources import EVENTS, PODS
from podling.client import ApiClient, ClientConfig
from podling.client.events import EventRecorder, object_reference
from podling.util.clock import FakeClock

T0 = 1_800_000_000.0


@pytest.fixture
async def pod(client: ApiClient) -> dict[str, Any]:
    return await client.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}})


@pytest.fixture
async def recorder(client: ApiClient) -> AsyncIterator[EventRecorder]:
    rec = EventRecorder(client, "kubelet", "node1", clock=FakeClock(T0), retry_seconds=0.01)
    yield rec
    await rec.close()


async def events_of(client: ApiClient, namespace: str = "default") -> list[dict]:
    items, _ = await client.list(EVENTS, namespace)
    return sorted(items, key=lambda e: e["metadata"]["name"])


async def test_event_fields(client: ApiClient, recorder: EventRecorder, pod: dict) -> None:
    recorder.event(pod, "Normal", "Pulling", 'Pulling image "busybox:1.36"',
                   field_path="spec.containers{main}")
    await recorder.flush()
    [event] = await events_of(client)
    assert re.fullmatch(r"web\.[0-9a-f]{16}", event["metadata"]["name"])
    assert event["metadata"]["namespace"] == "default"
    meta = pod["metadata"]
    assert event["involvedObject"] == {
        "kind": "Pod", "namespace": "default", "name": "web", "uid": meta["uid"],
        "apiVersion": "v1", "resourceVersion": meta["resourceVersion"],
        "fieldPath": "spec.containers{main}"}
    assert event["reason"] == "Pulling" and event["type"] == "Normal"
    assert event["message"] == 'Pulling image "busybox:1.36"'
    assert event["source"] == {"component": "kubelet", "host": "node1"}
    assert event["reportingComponent"] == "kubelet"
    assert event["reportingInstance"] == "node1"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2027-01-15T08:00:00Z"
    assert event["count"] == 1


async def test_repeated_events_aggregate(client: ApiClient, pod: dict) -> None:
    clock = FakeClock(T0)
    recorder = EventRecorder(client, "kubelet", "node1", clock=clock)
    for _ in range(3):
        recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container main",
                       field_path="spec.containers{main}")
        clock.advance(10)
    await recorder.flush()
    [event] = await events_of(client)
    assert event["count"] == 3
    assert event["firstTimestamp"] == "2027-01-15T08:00:00Z"
    assert event["lastTimestamp"] == "2027-01-15T08:00:20Z"
    await recorder.close()


async def test_distinct_messages_and_fields_are_separate(client: ApiClient,
                                                         recorder: EventRecorder,
                                                         pod: dict) -> None:
    recorder.event(pod, "Normal", "Started", "Started container a", "spec.containers{a}")
    recorder.event(pod, "Normal", "Started", "Started container b", "spec.containers{b}")
    recorder.event(pod, "Normal", "Started", "Started container a", "spec.containers{a}")
    recorder.event(pod, "Warning", "Started", "Started container a", "spec.containers{a}")
    recorder.event(pod, "Normal", "Started", "Started container a", "spec.containers{x}")
    await recorder.flush()
    events = await events_of(client)
    counts = sorted((e["involvedObject"]["fieldPath"], e["type"], e["count"]) for e in events)
    assert counts == [("spec.containers{a}", "Normal", 2), ("spec.containers{a}", "Warning", 1),
                      ("spec.containers{b}", "Normal", 1), ("spec.containers{x}", "Normal", 1)]
    assert len({e["metadata"]["name"] for e in events}) == 4


async def test_window_expiry_starts_a_new_event(client: ApiClient, pod: dict) -> None:
    clock = FakeClock(T0)
    recorder = EventRecorder(client, "kubelet", "node1", clock=clock, window_seconds=60)
    recorder.event(pod, "Normal", "Pulled", "already present")
    clock.advance(61)
    recorder.event(pod, "Normal", "Pulled", "already present")
    await recorder.close()
    assert [e["count"] for e in await events_of(client)] == [1, 1]


async def test_deleted_event_is_recreated(client: ApiClient, recorder: EventRecorder,
                                          pod: dict) -> None:
    recorder.event(pod, "Normal", "Killing", "Stopping container main")
    await recorder.flush()
    [event] = await events_of(client)
    await client.delete(EVENTS, event["metadata"]["name"], "default")
    recorder.event(pod, "Normal", "Killing", "Stopping container main")
    await recorder.flush()
    [again] = await events_of(client)
    assert again["metadata"]["name"] == event["metadata"]["name"]
    assert again["count"] == 2


async def test_node_events_go_to_default_namespace(client: ApiClient,
                                                   recorder: EventRecorder) -> None:
    node = {"metadata": {"name": "node1", "uid": "abc"}}
    recorder.event(node, "Normal", "Starting", "Starting kubelet.")
    await recorder.flush()
    [event] = await events_of(client)
    assert event["involvedObject"] == {"kind": "Node", "name": "node1", "uid": "abc",
                                       "apiVersion": "v1"}
    assert event["metadata"]["namespace"] == "default"


async def test_bounded_queue_drops_oldest(client: ApiClient, pod: dict) -> None:
    recorder = EventRecorder(client, "kubelet", "node1", clock=FakeClock(T0), max_queue=2)
    for i in range(5):  # queued synchronously: the sender has not run yet
        recorder.event(pod, "Normal", "Created", f"Created container: c{i}")
    await recorder.close()
    messages = sorted(e["message"] for e in await events_of(client))
    assert messages == ["Created container: c3", "Created container: c4"]


async def test_closed_recorder_ignores_events(client: ApiClient, pod: dict) -> None:
    recorder = EventRecorder(client, "kubelet", "node1")
    await recorder.close()
    recorder.event(pod, "Normal", "Created", "late")
    await recorder.flush()
    assert await events_of(client) == []


async def test_api_errors_do_not_stop_the_sender(client: ApiClient,
                                                 recorder: EventRecorder) -> None:
    bad = {"metadata": {"name": "x", "namespace": "no such ns!"}}  # rejected by the server
    recorder.event(bad, "Normal", "Created", "rejected")
    recorder.event({"metadata": {"name": "n1"}}, "Normal", "Starting", "ok")
    recorder.event({"metadata": {"name": "n1"}}, "Bogus", "Starting", "bad type")
    await recorder.flush()
    assert [e["message"] for e in await events_of(client)] == ["ok"]


async def test_unreachable_server_gives_up(tmp_path) -> None:
    api = ApiClient(ClientConfig(server="https://127.0.0.1:1", insecure_skip_tls_verify=True,
                                 request_timeout=1, connect_timeout=1))
    recorder = EventRecorder(api, "kubelet", "n", retries=2, retry_seconds=0.01)
    recorder.event({"metadata": {"name": "n"}}, "Normal", "Starting", "x")
    await recorder.flush()
    await recorder.close()
    await api.close()


def test_references() -> None:
    ref = object_reference({"kind": "Pod", "apiVersion": "v1",
                            "metadata": {"name": "p", "namespace": "ns", "uid": "u"}})
    assert ref == {"kind": "Pod", "apiVersion": "v1", "name": "p", "namespace": "ns", "uid": "u"}


# -- the scheduler's use: no host, several lanes, a 600 s window -----------------------------


def scheduler_recorder(client: ApiClient, **kwargs: Any) -> EventRecorder:
    return EventRecorder(client, "default-scheduler", clock=FakeClock(T0), window_seconds=600,
                         lanes=4, **kwargs)


async def test_same_message_is_counted_not_repeated(client: ApiClient, pod: dict) -> None:
    recorder = scheduler_recorder(client)
    for _ in range(3):
        recorder.event(pod, "Warning", "FailedScheduling", "0/1 nodes are available: x.")
    recorder.event(pod, "Warning", "FailedScheduling", "0/2 nodes are available: y.")
    await recorder.flush()
    await recorder.close()
    items = await events_of(client)
    by_message = {e["message"]: e for e in items}
    assert by_message["0/1 nodes are available: x."]["count"] == 3
    assert by_message["0/2 nodes are available: y."]["count"] == 1
    assert {e["involvedObject"]["uid"] for e in items} == {pod["metadata"]["uid"]}
    for event in items:
        assert re.fullmatch(r"web\.[0-9a-f]{16}", event["metadata"]["name"])
        assert event["source"] == {"component": "default-scheduler"}
        assert event["reportingComponent"] == event["reportingInstance"] == "default-scheduler"


async def test_lanes_keep_each_objects_order(client: ApiClient) -> None:
    pods = [await client.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}) for i in range(6)]
    recorder = scheduler_recorder(client)
    for step in range(5):
        for pod in pods:
            recorder.event(pod, "Normal", "Step", f"step {step}")
    await recorder.close()
    items = await events_of(client)
    assert len(items) == 30
    for pod in pods:  # names grow with the recording order and every event was created
        mine = [e for e in items if e["involvedObject"]["name"] == pod["metadata"]["name"]]
        assert [e["message"] for e in mine] == [f"step {s}" for s in range(5)]


class OrderLog:
    """An ApiClient stand-in that records the order of writes (and can be slow)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []

    async def create(self, resource: Any, body: dict, namespace: str) -> dict:
        await asyncio.sleep(0.001 * (hash(body["involvedObject"]["name"]) % 3))
        self.writes.append((body["involvedObject"]["name"], body["message"]))
        return body


async def test_order_per_object_is_the_recording_order() -> None:
    api = OrderLog()
    recorder = EventRecorder(api, "default-scheduler",  # type: ignore[arg-type]
                             clock=FakeClock(T0), lanes=3)
    objects = [{"metadata": {"name": f"n{i}", "uid": f"u{i}"}} for i in range(7)]
    for step in range(4):
        for obj in objects:
            recorder.event(obj, "Normal", "Step", f"{step}")
    await recorder.close()
    assert len(api.writes) == 28
    for obj in objects:
        name = obj["metadata"]["name"]
        assert [m for n, m in api.writes if n == name] == ["0", "1", "2", "3"]
