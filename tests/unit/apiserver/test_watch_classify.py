"""watch.classify: what a filtered watcher sees for one storage event.

An object entering the selection is ADDED, one leaving it is DELETED, one staying in it is
MODIFIED, and changes wholly outside it are not sent at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from podling.apiserver.watch import classify
from podling.storage.interface import WatchEvent

Obj = dict[str, Any]


def obj(app: str) -> Obj:
    return {"kind": "Pod", "metadata": {"name": "p", "namespace": "default",
                                        "labels": {"app": app}}}


def web_only(o: Obj) -> bool:
    return o["metadata"]["labels"].get("app") == "web"


def event(type_: str, now: str, prev: str | None) -> WatchEvent:
    return WatchEvent(type_, "/core/pods/default/p", obj(now),  # type: ignore[arg-type]
                      obj(prev) if prev is not None else None, 7)


# (event type, labels now, labels before or None) → what a watcher of app=web sees
CASES = [
    ("ADDED", "web", None, "ADDED"),
    ("ADDED", "db", None, None),
    ("MODIFIED", "web", "web", "MODIFIED"),
    ("MODIFIED", "web", "db", "ADDED"),       # starts matching
    ("MODIFIED", "db", "web", "DELETED"),     # stops matching
    ("MODIFIED", "db", "db", None),
    ("DELETED", "web", "web", "DELETED"),
    ("DELETED", "db", "db", None),
    # a deletion is judged by the state the watcher last saw (prev)
    ("DELETED", "db", "web", "DELETED"),
    ("DELETED", "web", "db", None),
]


@pytest.mark.parametrize("type_,now,prev,expected", CASES,
                         ids=[f"{t}-{n}-from-{p}" for t, n, p, _ in CASES])
def test_classify_with_selector(type_: str, now: str, prev: str | None,
                                expected: str | None) -> None:
    assert classify(event(type_, now, prev), web_only) == expected


@pytest.mark.parametrize("type_,prev", [("ADDED", None), ("MODIFIED", "db"), ("DELETED", "db")])
def test_everything_passes_an_empty_selector(type_: str, prev: str | None) -> None:
    assert classify(event(type_, "db", prev), lambda o: True) == type_


def test_nothing_passes_a_selector_matching_nothing() -> None:
    for type_, prev in (("ADDED", None), ("MODIFIED", "web"), ("DELETED", "web")):
        assert classify(event(type_, "web", prev), lambda o: False) is None
