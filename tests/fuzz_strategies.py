"""Hypothesis strategies shared by the fuzz tests: arbitrary JSON values, a valid pod with
one value replaced, JSON patches aimed at it.

``PODLING_FUZZ_EXAMPLES`` sets the examples per property (default 200: ``make test`` stays
fast; ``tests/chaos/fuzz_campaign.sh`` runs many more); ``PODLING_FUZZ_RANDOM=1`` draws new
examples each run instead of the same ones."""

from __future__ import annotations

import json
import os
from typing import Any

from builders import make_pod
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PODLING_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get(
    "PODLING_FUZZ_RANDOM"), suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=25)
POD = make_pod("p", namespace="default").container("c", "nginx").bare().build()


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into ``value`` (keys and list indices)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, prefix + (index,))
    return found


POD_PATHS = _paths(POD)


@st.composite
def mutated_pods(draw: st.DrawFn) -> Any:
    """A valid pod with one value somewhere replaced by an arbitrary JSON value."""
    doc = json.loads(json.dumps(POD))
    where = draw(st.sampled_from(POD_PATHS))
    if not where:
        return draw(json_values)
    parent = doc
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = draw(json_values)
    return doc


@st.composite
def json_patch_ops(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Well-formed-looking JSON patches with random paths, some into the pod."""
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        op = {"op": draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test",
                                           "bogus"]))}
        pointer = draw(st.sampled_from(POD_PATHS))
        path = "/" + "/".join(str(p) for p in pointer) if pointer else ""
        op["path"] = draw(st.sampled_from([path, path + "/-", path + "/x", draw(st.text(
            max_size=10))]))
        if draw(st.booleans()):
            op["from"] = draw(st.sampled_from(["/metadata", "/spec/containers/0", "/nope"]))
        if draw(st.booleans()):
            op["value"] = draw(json_values)
        ops.append(op)
    return ops
