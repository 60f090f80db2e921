"""Table tests for every filter / score plugin's pure functions."""

from __future__ import annotations

import pytest
from builders import expr, make_node, make_pod, term

from podling.scheduler.framework import Code, NodeInfo, PodInfo
from podling.scheduler.plugins import (node_affinity, node_name, node_ports, node_ready,
                                       node_resources, node_unschedulable, spread,
                                       taint_toleration)

AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def info(node, *pods) -> NodeInfo:
    return NodeInfo(node.view(), [p.view() for p in pods])


def reasons(status):
    return None if status is None else list(status.reasons)


# -- NodeName --------------------------------------------------------------------------------

@pytest.mark.parametrize("pod, node, want", [
    (make_pod(), "n1", None),
    (make_pod().node("n1"), "n1", None),
    (make_pod().node("n2"), "n1", ["node(s) didn't match the requested node name"]),
])
def test_node_name(pod, node, want):
    assert reasons(node_name.fits(pod.view(), info(make_node(node)))) == want


# -- NodeUnschedulable -----------------------------------------------------------------------

@pytest.mark.parametrize("pod, node, want", [
    (make_pod(), make_node(), None),
    (make_pod(), make_node().cordon(), ["node(s) were unschedulable"]),
    (make_pod().toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule"),
     make_node().cordon(), None),
    (make_pod().toleration(operator="Exists"), make_node().cordon(), None),
    (make_pod().toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoExecute"),
     make_node().cordon(), ["node(s) were unschedulable"]),
])
def test_node_unschedulable(pod, node, want):
    status = node_unschedulable.fits(pod.view(), info(node))
    assert reasons(status) == want
    if status:
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


# -- TaintToleration -------------------------------------------------------------------------

@pytest.mark.parametrize("pod, node, want", [
    (make_pod(), make_node(), None),
    (make_pod(), make_node().taint("dedicated", "gpu"),
     ["node(s) had untolerated taint {dedicated: gpu}"]),
    (make_pod(), make_node().taint("k", effect="NoExecute"),
     ["node(s) had untolerated taint {k: }"]),
    (make_pod(), make_node().taint("soft", "x", "PreferNoSchedule"), None),
    (make_pod().toleration("dedicated", "Equal", "gpu", "NoSchedule"),
     make_node().taint("dedicated", "gpu"), None),
    (make_pod().toleration("dedicated", "Equal", "cpu", "NoSchedule"),
     make_node().taint("dedicated", "gpu"), ["node(s) had untolerated taint {dedicated: gpu}"]),
    (make_pod().toleration("dedicated", "Exists"), make_node().taint("dedicated", "gpu"), None),
    (make_pod().toleration("dedicated", "Exists", effect="NoExecute"),
     make_node().taint("dedicated", "gpu"), ["node(s) had untolerated taint {dedicated: gpu}"]),
    (make_pod().toleration(operator="Exists"),
     make_node().taint("a", "1").taint("b", "2", "NoExecute"), None),
    (make_pod().toleration("a", "Exists"),
     make_node().taint("a", "1").taint("b", "2"), ["node(s) had untolerated taint {b: 2}"]),
])
def test_taint_filter(pod, node, want):
    assert reasons(taint_toleration.fits(pod.view(), info(node))) == want


@pytest.mark.parametrize("pod, node, want", [
    (make_pod(), make_node(), 0),
    (make_pod(), make_node().taint("a", "1", "PreferNoSchedule").taint("b", "", "PreferNoSchedule"), 2),
    (make_pod().toleration("a", "Equal", "1"),
     make_node().taint("a", "1", "PreferNoSchedule"), 0),
    (make_pod().toleration("a", "Equal", "1", "NoSchedule"),
     make_node().taint("a", "1", "PreferNoSchedule"), 1),
    (make_pod(), make_node().taint("hard", "1"), 0),
])
def test_taint_score(pod, node, want):
    assert taint_toleration.prefer_no_schedule_count(pod.view(), info(node)) == want


# -- NodeReady -------------------------------------------------------------------------------

@pytest.mark.parametrize("pod, node, want", [
    (make_pod(), make_node(), None),
    (make_pod(), make_node().ready("False"),
     ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]),
    (make_pod(), make_node().ready("Unknown"),
     ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]),
    (make_pod(), make_node().ready(None),
     ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]),
    # the default tolerations (NoExecute, 300 s) do not allow scheduling
    (make_pod().toleration("node.kubernetes.io/not-ready", "Exists", effect="NoExecute"),
     make_node().ready("False"),
     ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]),
    (make_pod().toleration("node.kubernetes.io/not-ready", "Exists", effect="NoSchedule"),
     make_node().ready("False"), None),
    (make_pod(), make_node().ready("False").taint("node.kubernetes.io/not-ready"), None),
])
def test_node_ready(pod, node, want):
    assert reasons(node_ready.fits(pod.view(), info(node))) == want


# -- NodeAffinity ----------------------------------------------------------------------------

NODE = make_node("172.31.2.12").labels(zone="a", gen="5", disk="ssd")


@pytest.mark.parametrize("pod, want", [
    (make_pod(), True),
    (make_pod().selector(**{"kubernetes.io/hostname": "172.31.2.12"}), True),
    (make_pod().selector(**{"kubernetes.io/hostname": "172.31.2.11"}), False),
    (make_pod().selector(zone="a", disk="ssd"), True),
    (make_pod().selector(zone="a", disk="hdd"), False),
    (make_pod().selector(gpu="yes"), False),
    (make_pod().required(term(expr("zone", "In", "a", "b"))), True),
    (make_pod().required(term(expr("zone", "In", "b"))), False),
    (make_pod().required(term(expr("zone", "NotIn", "b"))), True),
    (make_pod().required(term(expr("zone", "NotIn", "a"))), False),
    (make_pod().required(term(expr("absent", "NotIn", "a"))), True),
    (make_pod().required(term(expr("disk", "Exists"))), True),
    (make_pod().required(term(expr("gpu", "Exists"))), False),
    (make_pod().required(term(expr("gpu", "DoesNotExist"))), True),
    (make_pod().required(term(expr("disk", "DoesNotExist"))), False),
    (make_pod().required(term(expr("gen", "Gt", "4"))), True),
    (make_pod().required(term(expr("gen", "Gt", "5"))), False),
    (make_pod().required(term(expr("gen", "Lt", "6"))), True),
    (make_pod().required(term(expr("gen", "Lt", "5"))), False),
    (make_pod().required(term(expr("zone", "Gt", "1"))), False),  # not an integer
    (make_pod().required(term(expr("absent", "Lt", "9"))), False),
    # terms are ORed, expressions ANDed
    (make_pod().required(term(expr("zone", "In", "b")), term(expr("disk", "Exists"))), True),
    (make_pod().required(term(expr("zone", "In", "a"), expr("disk", "In", "hdd"))), False),
    (make_pod().required(term()), False),  # an empty term matches nothing
    (make_pod().required(), False),  # no terms: nothing
    # matchFields on metadata.name
    (make_pod().required(term(fields=[expr("metadata.name", "In", "172.31.2.12")])), True),
    (make_pod().required(term(fields=[expr("metadata.name", "NotIn", "172.31.2.12")])), False),
    (make_pod().required(term(expr("zone", "In", "a"),
                              fields=[expr("metadata.name", "In", "other")])), False),
    (make_pod().required(term(fields=[expr("metadata.uid", "In", "x")])), False),
    # the selector and the affinity must both match
    (make_pod().selector(zone="b").required(term(expr("zone", "In", "a"))), False),
])
def test_node_affinity_filter(pod, want):
    status = node_affinity.fits(pod.view(), info(NODE))
    assert (status is None) == want
    if status:
        assert list(status.reasons) == [AFFINITY]
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


@pytest.mark.parametrize("pod, want", [
    (make_pod(), 0),
    (make_pod().preferred(10, term(expr("zone", "In", "a"))), 10),
    (make_pod().preferred(10, term(expr("zone", "In", "a")))
     .preferred(5, term(expr("disk", "Exists"))).preferred(7, term(expr("gpu", "Exists"))), 15),
    (make_pod().preferred(3, term()), 0),
])
def test_node_affinity_score(pod, want):
    assert node_affinity.preferred_score(pod.view(), info(NODE)) == want


# -- NodePorts -------------------------------------------------------------------------------

@pytest.mark.parametrize("pod, others, want", [
    (make_pod().host_port(80), [], True),
    (make_pod().host_port(80), [make_pod("o").node("n1").host_port(80)], False),
    (make_pod().host_port(80), [make_pod("o").node("n1").host_port(81)], True),
    (make_pod().host_port(80, "UDP"), [make_pod("o").node("n1").host_port(80)], True),
    (make_pod().host_port(80, ip="10.0.0.1"),
     [make_pod("o").node("n1").host_port(80, ip="10.0.0.2")], True),
    (make_pod().host_port(80, ip="10.0.0.1"), [make_pod("o").node("n1").host_port(80)], False),
    (make_pod().host_port(80), [make_pod("o").node("n1").host_port(80, ip="10.0.0.2")], False),
    (make_pod(), [make_pod("o").node("n1").host_port(80)], True),
])
def test_node_ports(pod, others, want):
    status = node_ports.fits(pod.view(), info(make_node(), *others))
    assert (status is None) == want
    if status:
        assert list(status.reasons) == [
            "node(s) didn't have free ports for the requested pod ports"]
        assert status.code == Code.UNSCHEDULABLE


# -- NodeResourcesFit ------------------------------------------------------------------------

@pytest.mark.parametrize("pod, node, others, want", [
    (make_pod(), make_node(), [], None),
    (make_pod().requests(cpu="4"), make_node(), [], None),
    (make_pod().requests(cpu="4001m"), make_node(), [], ["Insufficient cpu"]),
    (make_pod().requests(cpu="1", memory="9Gi"), make_node(), [], ["Insufficient memory"]),
    (make_pod().requests(cpu="5", memory="9Gi"), make_node(), [],
     ["Insufficient cpu", "Insufficient memory"]),
    (make_pod().requests(cpu="2"), make_node(), [make_pod("o").node("n1").requests(cpu="2500m")],
     ["Insufficient cpu"]),
    (make_pod(), make_node().allocatable(pods="1"), [make_pod("o").node("n1")],
     ["Too many pods"]),
    (make_pod().requests(cpu="9"), make_node().allocatable(pods="1"), [make_pod("o").node("n1")],
     ["Too many pods", "Insufficient cpu"]),
    (make_pod().requests(**{"example.com/gpu": "1"}), make_node(), [],
     ["Insufficient example.com/gpu"]),
    (make_pod().requests(**{"example.com/gpu": "1"}),
     make_node().allocatable(**{"example.com/gpu": "2"}), [], None),
    # init containers: the max, not the sum
    (make_pod().requests(cpu="2").init("i", cpu="3"), make_node(), [], None),
    (make_pod().requests(cpu="2").init("i", cpu="5"), make_node(), [], ["Insufficient cpu"]),
    # sidecars add up with the app containers
    (make_pod().requests(cpu="2").init("s", sidecar=True, cpu="2500m"), make_node(), [],
     ["Insufficient cpu"]),
    # pod overhead counts
    (make_pod().requests(cpu="4").overhead(cpu="100m"), make_node(), [], ["Insufficient cpu"]),
])
def test_node_resources_fit(pod, node, others, want):
    assert reasons(node_resources.fits(pod.view(), info(node, *others))) == want


def test_least_allocated_and_balanced_scores():
    empty = info(make_node())
    busy = info(make_node(), make_pod("o").node("n1").requests(cpu="2", memory="4Gi"))
    pod = PodInfo.of(make_pod().requests(cpu="1", memory="2Gi").view())
    assert node_resources.least_allocated(pod, empty) == 75
    assert node_resources.least_allocated(pod, busy) == 25
    lopsided = PodInfo.of(make_pod().requests(cpu="4", memory="0").view())
    assert node_resources.balanced_allocation(pod, empty) == 100
    assert node_resources.balanced_allocation(lopsided, empty) == 50
    # a pod without requests counts as 100m / 200Mi for least-allocated
    bare = PodInfo.of(make_pod().view())
    assert node_resources.least_allocated(bare, empty) == (97 + 97) // 2


# -- Spread ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pod, others, want", [
    (make_pod().labels(app="web"), [make_pod("a").labels(app="web").node("n1")], 1),
    (make_pod().labels(app="web"), [make_pod("a").labels(app="db").node("n1")], 0),
    (make_pod().labels(app="web"), [make_pod("a", "other").labels(app="web").node("n1")], 0),
    (make_pod(), [make_pod("a").node("n1")], 0),  # no labels, no owner: no group
    (make_pod().owner("rs1").labels(x="1"), [make_pod("a").owner("rs1").labels(x="2").node("n1"),
                                             make_pod("b").owner("rs2").labels(x="1").node("n1")],
     1),
])
def test_spread_group_count(pod, others, want):
    node = info(make_node(), *others)
    assert spread.group_count(PodInfo.of(pod.view()), node) == want
