"""The benchmark helpers that reduce stage timelines and py-spy profiles
(bench/podstages.py, bench/pyspy_top.py)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "bench"))

import podstages  # noqa: E402
import pyspy_top  # noqa: E402


def test_medians_per_stage_in_time_order() -> None:
    runs = [{"api.created": 0.0, "sandbox.started": 90.0, "status.ready": 200.0},
            {"api.created": 0.0, "sandbox.started": 70.0, "status.ready": 260.0},
            {"api.created": 0.0, "sandbox.started": 80.0}]
    assert list(podstages.medians(runs).items()) == [
        ("api.created", 0.0), ("sandbox.started", 80.0), ("status.ready", 230.0)]


def test_kubectl_ready_is_measured_from_the_api_create() -> None:
    item = {"base": "api.created", "baseMonotonic": 50.0,
            "stages": {"api.created": 0.0, "status.ready": 200.0}}
    assert podstages.with_ready(item, 50.25) == {"api.created": 0.0, "status.ready": 200.0,
                                                 "kubectl.ready": 250.0}
    other_base = dict(item, base="agent.received")  # no API create seen: no common clock
    assert "kubectl.ready" not in podstages.with_ready(other_base, 50.25)


def test_delete_stages_are_measured_from_the_kubectl_delete() -> None:
    item = {"base": "api.created", "baseMonotonic": 10.0,
            "stages": {"api.created": 0.0, "status.ready": 100.0,
                       "delete.done": 5150.0, "delete.terminating": 5030.0}}
    # kubectl delete ran at 15.0 s and returned at 15.2 s (monotonic)
    assert list(podstages.delete_stages(item, 15.0, 15.2).items()) == [
        ("delete.terminating", 30.0), ("delete.done", 150.0), ("kubectl.gone", 200.0)]


def test_stage_table_rows_follow_the_fullest_column(capsys: pytest.CaptureFixture) -> None:
    text = podstages.print_table({"one": {"a": 0.0, "c": 5.0},
                                  "three": {"a": 0.0, "b": 2.0, "c": 6.0}})
    rows = [line.split()[0] for line in text.splitlines()[1:]]
    assert rows == ["a", "b", "c"]
    assert text.splitlines()[2].split()[1:] == ["-", "2.0"]
    assert capsys.readouterr().out.strip() == text


def test_pyspy_summary_counts_self_and_total(tmp_path) -> None:
    raw = tmp_path / "p.raw"
    raw.write_text(
        "run (/usr/lib/python3.11/asyncio/runners.py:118);sync (/r/podling/agent/a.py:10);"
        "spawn (/r/podling/runtime/b.py:5) 3\n"
        "run (/usr/lib/python3.11/asyncio/runners.py:118);sync (/r/podling/agent/a.py:12) 1\n")
    summary = pyspy_top.summarise(str(raw))
    assert summary["samples"] == 4
    assert summary["self"] == [["spawn (podling/runtime/b.py)", 75.0],
                               ["sync (podling/agent/a.py)", 25.0]]
    assert summary["total"] == [["sync (podling/agent/a.py)", 100.0],
                                ["spawn (podling/runtime/b.py)", 75.0]]  # no asyncio frames
    assert "75.0   spawn" in pyspy_top.top_text(summary)
