"""The scheduler cache: accounting, assume / forget, scheduling-relevant node changes."""

from __future__ import annotations

import pytest
from builders import make_node, make_pod

from podling.api.views import NodeView, PodView
from podling.scheduler.cache import SchedulerCache, node_changed


def test_assume_confirm_forget():
    cache = SchedulerCache()
    cache.set_node(make_node("n1").view())
    pod = make_pod().requests(cpu="1").build()
    cache.assume(PodView.from_obj(pod), "n1")
    assert cache.nodes["n1"].requested["cpu"] == 1000 and cache.is_assumed(pod["metadata"]["uid"])
    assert "nodeName" not in pod["spec"]  # the informer's object is untouched
    cache.forget(PodView.from_obj(pod))
    assert cache.nodes["n1"].requested["cpu"] == 0
    cache.assume(PodView.from_obj(pod), "n1")
    bound = dict(pod, spec=dict(pod["spec"], nodeName="n1"))
    cache.update_pod(PodView.from_obj(bound))  # confirmed by the informer
    cache.forget(PodView.from_obj(pod))  # a late forget does not drop a confirmed pod
    assert cache.nodes["n1"].requested["cpu"] == 1000


def test_terminal_and_deleted_pods_free_resources():
    cache = SchedulerCache()
    cache.set_node(make_node("n1").view())
    pod = make_pod().node("n1").requests(cpu="1").build()
    assert not cache.update_pod(PodView.from_obj(pod))
    assert len(cache.nodes["n1"].pods) == 1
    done = make_pod().node("n1").requests(cpu="1").phase("Succeeded").build()
    done["metadata"]["uid"] = pod["metadata"]["uid"]
    assert cache.update_pod(PodView.from_obj(done))
    assert cache.nodes["n1"].requested["cpu"] == 0 and not cache.nodes["n1"].pods
    cache.update_pod(PodView.from_obj(pod))
    assert cache.remove_pod(pod["metadata"]["uid"])
    assert not cache.remove_pod(pod["metadata"]["uid"])


def test_pods_on_unknown_nodes_are_kept_but_not_snapshotted():
    cache = SchedulerCache()
    cache.update_pod(make_pod().node("later").requests(cpu="1").view())
    assert cache.snapshot() == []
    cache.set_node(make_node("later").view())
    [info] = cache.snapshot()
    assert info.requested["cpu"] == 1000
    cache.remove_node("later")
    assert cache.snapshot() == [] and "later" in cache.nodes


BASE = make_node("n1")


@pytest.mark.parametrize("new, changed", [
    (make_node("n1"), False),
    (make_node("n1").labels(disk="ssd"), True),
    (make_node("n1").taint("k"), True),
    (make_node("n1").cordon(), True),
    (make_node("n1").allocatable(cpu="8"), True),
    (make_node("n1").ready("False"), True),
])
def test_node_changed(new, changed):
    assert node_changed(BASE.view(), new.view()) == changed


def test_heartbeat_is_not_a_change():
    old = BASE.build()
    new = BASE.build()
    new["status"]["conditions"][0]["lastHeartbeatTime"] = "2024-01-01T00:00:00Z"
    new["metadata"]["resourceVersion"] = "99"
    assert not node_changed(NodeView.from_obj(old), NodeView.from_obj(new))
