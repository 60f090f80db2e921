"""Which pod updates from the API wake the pod's worker (kubelet checkAndUpdatePod)."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from podling.agent.pod.updates import needs_sync

BASE: dict[str, Any] = {
    "metadata": {"name": "p", "uid": "u1", "resourceVersion": "5", "labels": {"a": "b"},
                 "managedFields": [{"manager": "kubectl"}]},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}}


def changed(edit: Callable[[dict[str, Any]], None], base: dict[str, Any] = BASE
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    new = copy.deepcopy(base)
    edit(new)
    return base, new


def gated() -> dict[str, Any]:
    pod = copy.deepcopy(BASE)
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/ready"}]
    return pod


@pytest.mark.parametrize("old_new, wanted", [
    (changed(lambda p: p["status"].update(phase="Running")), False),  # our own status write
    (changed(lambda p: p["metadata"].update(resourceVersion="6",
                                            managedFields=[])), False),
    (changed(lambda p: p["spec"]["containers"][0].update(image="nginx")), True),
    (changed(lambda p: p["metadata"]["labels"].update(a="c")), True),
    (changed(lambda p: p["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z")), True),
    (changed(lambda p: p["metadata"].update(annotations={"x": "y"})), True),
    (changed(lambda p: p["status"]["conditions"].append(
        {"type": "example.com/ready", "status": "True"}), gated()), True),
    (changed(lambda p: p["status"].update(phase="Running"), gated()), False),
])
def test_what_needs_a_sync(old_new: tuple[dict[str, Any], dict[str, Any]],
                           wanted: bool) -> None:
    assert needs_sync(*old_new) is wanted
