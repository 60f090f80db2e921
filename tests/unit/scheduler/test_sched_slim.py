"""What the scheduler's pod informer keeps: every field scheduling reads, nothing of the
agent-only container fields, annotations, managedFields or container statuses."""

from __future__ import annotations

import copy

from builders import make_pod
from podling.api.views import PodView
from podling.scheduler.scheduler import scheduling_inputs_changed
from podling.scheduler.slim import scheduling_fields


def full_pod() -> dict:
    pod = (make_pod("web").uid("u1").labels(app="web").annotations(note="x" * 100)
           .container("main", "nginx:1", command=["nginx"], args=["-g"],
                      env=[{"name": "A", "value": "1"}],
                      livenessProbe={"httpGet": {"port": 80}},
                      volumeMounts=[{"name": "data", "mountPath": "/d"}],
                      ports=[{"containerPort": 80, "hostPort": 8080}],
                      resources={"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}})
           .init("setup", sidecar=True, image="busybox")
           .toleration("k", "Exists").selector(disk="ssd").volume("data", emptyDir={})
           .overhead(cpu="10m").build())
    pod["kind"], pod["apiVersion"] = "Pod", "v1"
    pod["metadata"]["resourceVersion"] = "42"
    pod["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    pod["status"] = {"phase": "Pending", "qosClass": "Burstable",
                     "conditions": [{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable", "message": "m"}],
                     "containerStatuses": [{"name": "main", "ready": False}]}
    return pod


def test_scheduling_fields_keep_what_scheduling_reads():
    pod = full_pod()
    before = copy.deepcopy(pod)
    slim = scheduling_fields(pod)
    assert pod == before  # the input is not changed
    full, small = PodView.from_obj(pod), PodView.from_obj(slim)
    assert small.metadata.labels == full.metadata.labels
    assert (small.metadata.uid, small.metadata.resource_version) == ("u1", "42")
    assert small.status.conditions == full.status.conditions
    assert small.status.phase == "Pending"
    for name in ("node_selector", "tolerations", "node_affinity", "overhead", "priority", "scheduler_name", "node_name"):
        assert getattr(small.spec, name) == getattr(full.spec, name), name
    for got, want in zip(small.spec.containers + small.spec.init_containers,
                         full.spec.containers + full.spec.init_containers, strict=True):
        assert (got.name, got.image, got.resources, got.ports, got.is_sidecar) == \
            (want.name, want.image, want.resources, want.ports, want.is_sidecar)
    assert (slim["kind"], slim["apiVersion"]) == ("Pod", "v1")


def test_scheduling_fields_drop_agent_only_fields():
    slim = scheduling_fields(full_pod())
    assert "managedFields" not in slim["metadata"]
    assert "annotations" not in slim["metadata"]
    main = slim["spec"]["containers"][0]
    assert not {"command", "args", "env", "livenessProbe", "volumeMounts"} & set(main)
    assert set(slim["status"]) == {"phase", "conditions"}
    assert "volumes" not in slim["spec"]


def test_spec_changes_between_slim_versions_are_still_seen():
    old = full_pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    assert scheduling_inputs_changed(PodView.from_obj(scheduling_fields(old)),
                                     PodView.from_obj(scheduling_fields(new)))
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {"note": "changed"}
    new["status"]["containerStatuses"] = []
    assert not scheduling_inputs_changed(PodView.from_obj(scheduling_fields(old)),
                                         PodView.from_obj(scheduling_fields(new)))


def test_status_update_view_equals_a_fresh_view():
    """The scheduler reuses the spec view across a status-only update; the result must be
    exactly what reading the new version afresh gives."""
    from podling.scheduler.scheduler import Scheduler

    sched = Scheduler(None)  # type: ignore[arg-type]  # never started: no client needed
    old = scheduling_fields(full_pod())
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "43"
    new["status"]["conditions"][0]["message"] = "other"
    prior = PodView.from_obj(old)
    reused = sched._pod_view(new, prior)
    assert reused.spec is prior.spec
    assert reused == PodView.from_obj(new) and reused.raw is new
    new["spec"]["containers"][0]["image"] = "nginx:2"
    changed = sched._pod_view(new, prior)
    assert changed.spec != prior.spec and changed == PodView.from_obj(new)
