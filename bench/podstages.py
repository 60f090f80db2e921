"""Per-pod stage timelines for the pod benchmarks: read podling's ``GET
/debug/pods/timeline`` (podling/util/timeline.py) and reduce it to medians per stage.

Every stage is in milliseconds since the API server committed the pod's create
(``api.created``). ``kubectl.ready`` is added by the benchmark: the moment ``kubectl wait
--for=condition=Ready`` returned, on the same CLOCK_MONOTONIC as the server's marks (the
benchmark and the server run on one machine). A single pod's deletion is reduced the same
way, its ``delete.*`` stages in milliseconds since the benchmark ran ``kubectl delete``, with
``kubectl.gone`` when that returned.
"""

from __future__ import annotations

import json
import statistics
from typing import Any, Callable

KUBECTL_READY = "kubectl.ready"
KUBECTL_GONE = "kubectl.gone"


def fetch(kubectl: Callable[..., Any], names: list[str] | None = None,
          namespace: str = "default") -> dict[str, dict[str, Any]]:
    """pod name -> its newest timeline item (``{"uid", "base", "baseMonotonic", "stages"}``),
    for ``names`` (all pods of ``namespace`` when None)."""
    path = f"/debug/pods/timeline?namespace={namespace}"
    if names is not None and len(names) == 1:
        path += f"&name={names[0]}"
    items = json.loads(kubectl("get", "--raw", path).stdout)["items"]
    wanted = None if names is None else set(names)
    out: dict[str, dict[str, Any]] = {}
    for item in items:  # oldest first: a name created again keeps its newest pod
        if wanted is None or item["name"] in wanted:
            out[item["name"]] = item
    return out


def with_ready(item: dict[str, Any], ready_monotonic: float) -> dict[str, float]:
    """The item's stages plus ``kubectl.ready`` at ``ready_monotonic`` (time.monotonic())."""
    stages = dict(item["stages"])
    if item.get("base") == "api.created":
        stages[KUBECTL_READY] = round((ready_monotonic - item["baseMonotonic"]) * 1000.0, 3)
    return stages


def delete_stages(item: dict[str, Any], started: float, gone: float) -> dict[str, float]:
    """The item's ``delete.*`` stages in ms since monotonic ``started`` (``kubectl delete``
    run), in time order, and ``kubectl.gone`` at monotonic ``gone`` (it returned)."""
    base = item["baseMonotonic"]
    out = {stage: round((base + ms / 1000.0 - started) * 1000.0, 3)
           for stage, ms in item["stages"].items() if stage.startswith("delete.")}
    out[KUBECTL_GONE] = round((gone - started) * 1000.0, 3)
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per stage, the median over the runs that have it, ordered by that median."""
    values: dict[str, list[float]] = {}
    for stages in runs:
        for stage, ms in stages.items():
            values.setdefault(stage, []).append(ms)
    out = {stage: statistics.median(v) for stage, v in values.items()}
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """What the JSON report keeps of a phase: the medians and each pod's stages."""
    return {"pods": len(runs), "median_ms": medians(runs), "runs": runs}


def print_table(columns: dict[str, dict[str, float]], width: int = 28,
                title: str = "stage (median ms since create)") -> str:
    """Print (and return) one row per stage, one column per phase: the median ms since the
    create (or what ``title`` says); rows in the order of the column with the most stages
    (then of the others)."""
    if not columns:
        return ""
    stages: list[str] = []
    for col in sorted(columns.values(), key=len, reverse=True):
        stages += [s for s in col if s not in stages]  # each column is in time order
    colw = max(14, *(len(c) + 2 for c in columns))
    lines = [f"{title:{width + 4}}"
             + "".join(f"{c:>{colw}}" for c in columns)]
    for stage in stages:
        cells = "".join(f"{columns[c][stage]:{colw}.1f}" if stage in columns[c]
                        else f"{'-':>{colw}}" for c in columns)
        lines.append(f"{stage:{width + 4}}{cells}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text
