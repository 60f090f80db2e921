"""schedule_one and the FailedScheduling message (docs/kubernetes-fidelity.md §4)."""

from __future__ import annotations

import random

import pytest
from builders import expr, make_node, make_pod, term

from podling.scheduler.framework import (Code, FitError, NodeInfo, PodInfo, Status,
                                         default_normalize, histogram, schedule_one)
from podling.scheduler.plugins import default_profile

AFFINITY = "node(s) didn't match Pod's node affinity/selector"
H = "kubernetes.io/hostname"


def nodes(*builders, pods=()):
    infos = [NodeInfo(b.view()) for b in builders]
    by_name = {i.name: i for i in infos}
    for p in pods:
        built = p.view()
        by_name[built.spec.node_name].add_pod(PodInfo.of(built))
    return infos


def three():
    return [make_node("172.31.2.11"), make_node("172.31.2.12"), make_node("172.31.2.13")]


@pytest.mark.parametrize("statuses, want", [
    ({"n1": Status.unresolvable(AFFINITY)},
     "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
     "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."),
    ({"a": Status.unresolvable("node(s) had untolerated taint {dedicated: gpu}"),
      "b": Status.unresolvable(AFFINITY), "c": Status.unresolvable(AFFINITY)},
     "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
     "2 node(s) didn't match Pod's node affinity/selector. "
     "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
    ({"a": Status.unschedulable("Insufficient cpu"), "b": Status.unschedulable("Insufficient cpu"),
      "c": Status.unschedulable("Insufficient cpu")},
     "0/3 nodes are available: 3 Insufficient cpu. "
     "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."),
    ({"a": Status.unschedulable("Insufficient cpu", "Insufficient memory"),
      "b": Status.unresolvable(AFFINITY)},
     "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, "
     "1 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are "
     "available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful "
     "for scheduling."),
    ({}, "no nodes available to schedule pods"),
])
def test_fit_error_message(statuses, want):
    assert FitError(statuses).message(len(statuses)) == want


def test_histogram_sorts_as_strings():
    # "10 x" sorts before "2 y" (lexicographic, as Kubernetes' sort.Strings)
    assert histogram(["y", "y"] + ["x"] * 10) == "10 x, 2 y"


@pytest.mark.parametrize("scores, reverse, want", [
    ({"a": 0, "b": 0}, False, {"a": 0, "b": 0}),
    ({"a": 0, "b": 0}, True, {"a": 100, "b": 100}),
    ({"a": 5, "b": 10}, False, {"a": 50, "b": 100}),
    ({"a": 1, "b": 3}, True, {"a": 67, "b": 0}),
])
def test_default_normalize(scores, reverse, want):
    default_normalize(scores, reverse)
    assert scores == want


def test_selector_picks_the_named_node():
    pod = make_pod().selector(**{H: "172.31.2.12"}).view()
    result = schedule_one(pod, nodes(*three()), default_profile())
    assert result.node == "172.31.2.12"


def test_label_no_node_has():
    pod = make_pod().selector(disk="ssd").view()
    result = schedule_one(pod, nodes(*three()), default_profile())
    assert result.node is None
    assert result.fit_error.message(3) == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_issue_example_taint_and_affinity():
    a, b, c = three()
    a.taint("dedicated", "gpu").labels(disk="ssd")
    pod = make_pod().selector(disk="ssd").view()
    msg = schedule_one(pod, nodes(a, b, c), default_profile()).fit_error.message(3)
    assert msg.startswith("0/3 nodes are available: 1 node(s) had untolerated taint "
                          "{dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector.")


def test_first_failing_filter_decides():
    # cordoned and tainted and mismatched: NodeUnschedulable runs first
    node = make_node().cordon().taint("k", "v")
    status = schedule_one(make_pod().selector(x="y").view(), nodes(node),
                          default_profile()).fit_error.statuses["n1"]
    assert status == Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("node(s) were unschedulable",),
                            "NodeUnschedulable")


def test_too_big_for_every_node():
    pod = make_pod().requests(cpu="64").view()
    msg = schedule_one(pod, nodes(*three()), default_profile()).fit_error.message(3)
    assert msg == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                   "available: 3 No preemption victims found for incoming pod.")


def test_preferred_affinity_wins():
    a, b, c = three()
    c.labels(disk="ssd")
    pod = make_pod().preferred(50, term(expr("disk", "In", "ssd"))).view()
    for seed in range(5):
        assert schedule_one(pod, nodes(a, b, c), default_profile(),
                            rng=random.Random(seed)).node == "172.31.2.13"


def test_prefer_no_schedule_avoided():
    a, b, c = three()
    a.taint("soft", "1", "PreferNoSchedule")
    b.taint("soft", "1", "PreferNoSchedule")
    assert schedule_one(make_pod().view(), nodes(a, b, c), default_profile()).node == "172.31.2.13"


def test_least_allocated_prefers_the_emptier_node():
    a, b, _ = three()
    busy = make_pod("busy").node("172.31.2.11").requests(cpu="3", memory="6Gi")
    pod = make_pod().requests(cpu="500m", memory="1Gi").view()
    assert schedule_one(pod, nodes(a, b, pods=[busy]), default_profile()).node == "172.31.2.12"


def test_spread_by_owner():
    a, b, _ = three()
    sibling = make_pod("s1").owner("rs").node("172.31.2.11")
    pod = make_pod("s2").owner("rs").view()
    assert schedule_one(pod, nodes(a, b, pods=[sibling]), default_profile()).node == "172.31.2.12"


def test_nodes_without_node_object_are_skipped():
    ghost = NodeInfo()
    ghost.name = "gone"
    result = schedule_one(make_pod().view(), [ghost], default_profile())
    assert result.node is None and result.fit_error.message(0) == \
        "no nodes available to schedule pods"
