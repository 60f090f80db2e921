"""The event writer's aggregation (real API server) and the pure helpers of the loop."""

from __future__ import annotations

import pytest
from builders import make_pod

from podling.client import ApiClient
from podling.scheduler.events import EventWriter
from podling.scheduler.scheduler import (is_pending_for, scheduling_inputs_changed,
                                         unschedulable_condition)


async def test_same_message_is_counted_not_repeated(client: ApiClient) -> None:
    writer = EventWriter(client)
    pod = make_pod("p").build()
    for _ in range(3):
        writer.record(pod, "Warning", "FailedScheduling", "0/1 nodes are available: x.")
    writer.record(pod, "Warning", "FailedScheduling", "0/2 nodes are available: y.")
    await writer.flush()
    await writer.close()
    items, _ = await client.list("events", "default")
    by_message = {e["message"]: e for e in items}
    assert by_message["0/1 nodes are available: x."]["count"] == 3
    assert by_message["0/2 nodes are available: y."]["count"] == 1
    assert {e["source"]["component"] for e in items} == {"default-scheduler"}
    assert {e["involvedObject"]["uid"] for e in items} == {pod["metadata"]["uid"]}


@pytest.mark.parametrize("pod, want", [
    (make_pod(), True),
    (make_pod().node("n1"), False),
    (make_pod().phase("Failed"), False),
])
def test_is_pending_for(pod, want):
    assert is_pending_for(pod.build(), "default-scheduler") == want
    assert not is_pending_for(pod.build(), "other")


def test_deleting_pods_are_not_pending():
    pod = make_pod().build()
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not is_pending_for(pod, "default-scheduler")


def test_scheduling_inputs_changed():
    old = make_pod().build()
    status_only = make_pod().build() | {"spec": old["spec"], "metadata": old["metadata"]}
    status_only["status"] = {"phase": "Pending", "conditions": []}
    assert not scheduling_inputs_changed(old, status_only)
    assert scheduling_inputs_changed(old, make_pod().toleration("k", "Exists").build())
    assert scheduling_inputs_changed(None, old)


def test_unschedulable_condition_only_when_changed():
    pod = make_pod().build()
    cond = unschedulable_condition(pod, "m1")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == "Unschedulable"
    pod["status"]["conditions"] = [cond]
    assert unschedulable_condition(pod, "m1") is None
    changed = unschedulable_condition(pod, "m2")
    assert changed["message"] == "m2"
    assert changed["lastTransitionTime"] == cond["lastTransitionTime"]
