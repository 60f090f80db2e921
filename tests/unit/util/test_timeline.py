"""The per-pod stage recorder (podling/util/timeline.py): first marks win, bounds hold, the
read side orders stages and measures them from the API create."""

from __future__ import annotations

import logging

import pytest

from podling.util.timeline import Timeline


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_stages_are_ms_since_the_api_create_in_time_order(clock: FakeClock) -> None:
    t = Timeline(clock=clock)
    clock.now = 99.9
    t.mark("u1", "scheduler.received")  # before the create was seen: negative, listed first
    clock.now = 100.0
    t.begin("u1", "ns", "web")
    clock.now = 100.250
    t.mark("u1", "sandbox.started")
    t.mark("u1", "agent.received", at=100.010)
    [pod] = t.pods()
    assert (pod["uid"], pod["namespace"], pod["name"], pod["base"]) == ("u1", "ns", "web",
                                                                         "api.created")
    assert pod["baseMonotonic"] == 100.0
    assert list(pod["stages"].items()) == [("scheduler.received", pytest.approx(-100.0)),
                                           ("api.created", 0.0),
                                           ("agent.received", pytest.approx(10.0)),
                                           ("sandbox.started", pytest.approx(250.0))]


def test_a_repeated_stage_keeps_its_first_time(clock: FakeClock) -> None:
    t = Timeline(clock=clock)
    t.begin("u1", "ns", "web")
    clock.now = 101.0
    t.mark("u1", "agent.sync")
    clock.now = 131.0  # the periodic resync
    t.mark("u1", "agent.sync")
    t.begin("u1", "ns", "web")
    assert t.pods()[0]["stages"] == {"api.created": 0.0, "agent.sync": 1000.0}


def test_without_an_api_create_the_earliest_mark_is_the_base(clock: FakeClock) -> None:
    t = Timeline(clock=clock)  # e.g. a remote agent's process
    clock.now = 5.0
    t.mark("u1", "agent.received")
    clock.now = 5.5
    t.mark("u1", "sandbox.started")
    [pod] = t.pods()
    assert (pod["base"], pod["name"], pod["stages"]) == (
        "agent.received", "", {"agent.received": 0.0, "sandbox.started": 500.0})


def test_the_oldest_pods_are_dropped_beyond_the_bound() -> None:
    t = Timeline(max_pods=3)
    for i in range(5):
        t.begin(f"u{i}", "ns", f"p{i}")
    assert [p["uid"] for p in t.pods()] == ["u2", "u3", "u4"]
    t.mark("u0", "agent.received")  # a dropped pod comes back as a new record, the newest
    assert [p["uid"] for p in t.pods()] == ["u3", "u4", "u0"]


def test_stages_per_pod_are_bounded() -> None:
    t = Timeline(max_stages=3)
    for stage in ("a", "b", "c", "d"):
        t.mark("u1", stage)
    assert list(t.pods()[0]["stages"]) == ["a", "b", "c"]


def test_filters_and_empty_uid() -> None:
    t = Timeline()
    t.begin("u1", "ns1", "web")
    t.begin("u2", "ns2", "web")
    t.begin("u3", "ns1", "db")
    t.mark("", "agent.received")  # no uid: ignored
    assert [p["uid"] for p in t.pods(namespace="ns1")] == ["u1", "u3"]
    assert [p["uid"] for p in t.pods(name="web")] == ["u1", "u2"]
    assert [p["uid"] for p in t.pods(namespace="ns1", name="web")] == ["u1"]
    assert [p["uid"] for p in t.pods(uid="u2")] == ["u2"]
    assert len(t.pods()) == 3


def test_status_marks_the_first_running_and_ready_writes(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    t = Timeline(clock=clock)
    t.begin("u1", "ns", "web")
    clock.now = 100.1
    t.mark_status("u1", {"phase": "Pending", "conditions": [{"type": "Ready",
                                                             "status": "False"}]})
    assert "status.running" not in t.pods()[0]["stages"]
    clock.now = 100.2
    t.mark_status("u1", {"phase": "Running", "conditions": [{"type": "Ready",
                                                             "status": "False"}]})
    clock.now = 100.3
    with caplog.at_level(logging.DEBUG, logger="podling.util.timeline"):
        t.mark_status("u1", {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]})
        clock.now = 100.4
        t.mark_status("u1", {"phase": "Running", "conditions": [{"type": "Ready",
                                                                 "status": "True"}]})
    assert t.pods()[0]["stages"] == {"api.created": 0.0,
                                     "status.running": pytest.approx(200.0),
                                     "status.ready": pytest.approx(300.0)}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines  # logged once, at the first Ready
    assert lines[0].startswith("pod ns/web ready: api.created 0.0ms") and \
        "status.ready 300.0ms" in lines[0]


def test_clear() -> None:
    t = Timeline()
    t.begin("u1", "ns", "web")
    t.clear()
    assert t.pods() == []
