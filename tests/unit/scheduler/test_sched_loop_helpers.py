"""The pure helpers of the scheduling loop (the event recorder is tested in
tests/unit/client/test_event_recorder.py)."""

from __future__ import annotations

import pytest
from builders import make_pod

from podling.api.views import PodView
from podling.scheduler.scheduler import (is_pending_for, scheduling_inputs_changed,
                                         unschedulable_condition)


@pytest.mark.parametrize("pod, want", [
    (make_pod(), True),
    (make_pod().node("n1"), False),
    (make_pod().phase("Failed"), False),
])
def test_is_pending_for(pod, want):
    assert is_pending_for(pod.view(), "default-scheduler") == want
    assert not is_pending_for(pod.view(), "other")


def test_deleting_pods_are_not_pending():
    pod = make_pod().build()
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not is_pending_for(PodView.from_obj(pod), "default-scheduler")


def test_scheduling_inputs_changed():
    old = make_pod().build()
    status_only = make_pod().build() | {"spec": old["spec"], "metadata": old["metadata"]}
    status_only["status"] = {"phase": "Pending", "conditions": []}
    old_view = PodView.from_obj(old)
    assert not scheduling_inputs_changed(old_view, PodView.from_obj(status_only))
    assert scheduling_inputs_changed(old_view, make_pod().toleration("k", "Exists").view())
    assert scheduling_inputs_changed(None, old_view)


def test_unschedulable_condition_only_when_changed():
    pod = make_pod().build()
    cond = unschedulable_condition(PodView.from_obj(pod), "m1")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == "Unschedulable"
    pod["status"]["conditions"] = [cond]
    assert unschedulable_condition(PodView.from_obj(pod), "m1") is None
    changed = unschedulable_condition(PodView.from_obj(pod), "m2")
    assert changed["message"] == "m2"
    assert changed["lastTransitionTime"] == cond["lastTransitionTime"]
