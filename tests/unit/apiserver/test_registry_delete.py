"""The registry's delete pipeline, over the real in-memory storage: pod graceful deletion,
finalizers, dry runs, namespace termination and the built-in namespaces. Draining deleted
namespaces is the namespace controller's (``tests/unit/controllers/test_namespace.py``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from podling.apiserver import namespaces as nslib
from podling.apiserver.registry.store import RegistryStore
from podling.storage.interface import Preconditions
from podling.storage.memory import MemoryStore
from podling.util.timefmt import parse_rfc3339
from registry_builders import (PodBuilder, edit, expect_error, gone, make_lease,
                               make_namespace, make_pod, set_pod_status)

Obj = dict[str, Any]
UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --- pod graceful deletion -------------------------------------------------------------------

# (pod, phase set through status or None, requested grace) → removed now, grace left
DELETE_MATRIX = [
    ("unbound", make_pod(), None, None, True, None),
    ("unbound, grace requested", make_pod(), None, 30, True, None),
    ("bound, spec grace", make_pod().node("n1"), None, None, False, 30),
    ("bound, spec grace 10", make_pod().node("n1").grace(10), None, None, False, 10),
    ("bound, requested overrides spec", make_pod().node("n1").grace(10), None, 45, False, 45),
    ("bound, requested 0", make_pod().node("n1"), None, 0, True, None),
    ("bound, spec grace 0", make_pod().node("n1").grace(0), None, None, True, None),
    ("bound, negative counts as 1", make_pod().node("n1"), None, -5, False, 1),
    ("bound, Succeeded", make_pod().node("n1"), "Succeeded", None, True, None),
    ("bound, Failed", make_pod().node("n1"), "Failed", 30, True, None),
    ("bound, Running", make_pod().node("n1"), "Running", None, False, 30),
]


@pytest.mark.parametrize("builder,phase,requested,removed,grace",
                         [row[1:] for row in DELETE_MATRIX], ids=[r[0] for r in DELETE_MATRIX])
async def test_pod_graceful_delete(pods: RegistryStore, builder: PodBuilder, phase: str | None,
                                   requested: int | None, removed: bool,
                                   grace: int | None) -> None:
    created = await pods.create("default", builder.build())
    if phase:
        await set_pod_status(pods, "web", phase=phase)
    obj, removed_now = await pods.delete("default", "web", grace=requested)
    assert removed_now is removed
    assert obj["metadata"]["uid"] == created["metadata"]["uid"]
    assert await gone(pods, "default", "web") is removed
    if not removed:
        stored = await pods.get("default", "web")
        assert stored == obj
        meta = stored["metadata"]
        assert meta["deletionGracePeriodSeconds"] == grace
        assert TIMESTAMP_RE.match(meta["deletionTimestamp"])
        expected_deadline = parse_rfc3339(meta["creationTimestamp"]).timestamp() + grace
        assert abs(parse_rfc3339(meta["deletionTimestamp"]).timestamp() - expected_deadline) <= 3


async def test_second_delete_with_a_longer_or_equal_grace_changes_nothing(
        pods: RegistryStore, storage: MemoryStore) -> None:
    await pods.create("default", make_pod().node("n1").build())
    first, _ = await pods.delete("default", "web", grace=10)
    before = storage.revision
    for grace in (30, 10, None):
        again, removed = await pods.delete("default", "web", grace=grace)
        assert (removed, again) == (False, first)
    assert storage.revision == before


async def test_second_delete_with_a_shorter_grace_shortens_it(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().node("n1").build())
    await pods.delete("default", "web", grace=60)
    again, removed = await pods.delete("default", "web", grace=5)
    assert not removed
    assert again["metadata"]["deletionGracePeriodSeconds"] == 5
    assert (await pods.get("default", "web"))["metadata"]["deletionGracePeriodSeconds"] == 5


async def test_grace_zero_removes_a_terminating_pod(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().node("n1").build())
    await pods.delete("default", "web")
    _, removed = await pods.delete("default", "web", grace=0)
    assert removed and await gone(pods, "default", "web")


async def test_updates_cannot_change_deletion_fields(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().node("n1").build())
    marked, _ = await pods.delete("default", "web")
    updated = await pods.update("default", "web", edit(lambda p: (
        p["metadata"].pop("deletionTimestamp"),
        p["metadata"].pop("deletionGracePeriodSeconds"),
        p["metadata"].update(labels={"a": "b"}))))
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        assert updated["metadata"][field] == marked["metadata"][field]


async def test_delete_of_a_missing_pod_is_404(pods: RegistryStore) -> None:
    await expect_error(404, "NotFound", pods.delete("default", "nope"))


async def test_delete_preconditions(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    await expect_error(409, "Conflict", pods.delete(
        "default", "web", preconditions=Preconditions(uid="other")))
    await expect_error(409, "Conflict", pods.delete(
        "default", "web", preconditions=Preconditions(resource_version="12345")))
    _, removed = await pods.delete("default", "web", preconditions=Preconditions(
        uid=created["metadata"]["uid"], resource_version=created["metadata"]["resourceVersion"]))
    assert removed


# --- finalizers ------------------------------------------------------------------------------

async def test_finalizers_keep_a_deleted_object_until_cleared(
        stores: dict[str, RegistryStore]) -> None:
    leases = stores["leases"]
    await leases.create("default", make_lease("l", finalizers=["example.com/hold",
                                                               "example.com/other"]))
    marked, removed = await leases.delete("default", "l")
    assert not removed
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    partly = await leases.update("default", "l", edit(
        lambda o: o["metadata"].update(finalizers=["example.com/other"])))
    assert partly["metadata"]["finalizers"] == ["example.com/other"]
    assert not await gone(leases, "default", "l")
    await leases.update("default", "l", edit(lambda o: o["metadata"].pop("finalizers")))
    assert await gone(leases, "default", "l")


async def test_no_new_finalizers_while_deleting(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().finalizers("example.com/hold").build())
    await pods.delete("default", "web")
    await expect_error(422, "Invalid", pods.update("default", "web", edit(
        lambda p: p["metadata"]["finalizers"].append("example.com/more"))))


async def test_unbound_pod_with_finalizer_goes_when_finalizer_is_removed(
        pods: RegistryStore) -> None:
    await pods.create("default", make_pod().finalizers("example.com/hold").build())
    marked, removed = await pods.delete("default", "web")
    assert not removed and marked["metadata"]["deletionGracePeriodSeconds"] == 0
    await pods.update("default", "web", edit(lambda p: p["metadata"].update(finalizers=[])))
    assert await gone(pods, "default", "web")


async def test_bound_pod_stays_for_its_grace_after_finalizers_clear(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().node("n1").finalizers("example.com/hold").build())
    await pods.delete("default", "web")
    await pods.update("default", "web", edit(lambda p: p["metadata"].update(finalizers=[])))
    assert not await gone(pods, "default", "web")
    _, removed = await pods.delete("default", "web", grace=0)
    assert removed


async def test_finalizers_hold_even_a_grace_zero_delete(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().node("n1").finalizers("example.com/hold").build())
    _, removed = await pods.delete("default", "web", grace=0)
    assert not removed and not await gone(pods, "default", "web")


# --- dry run ---------------------------------------------------------------------------------

async def test_dry_run_create_writes_nothing(pods: RegistryStore, storage: MemoryStore) -> None:
    would_be = await pods.create("default", make_pod().build(), dry_run=True)
    assert would_be["status"]["phase"] == "Pending" and UID_RE.match(would_be["metadata"]["uid"])
    assert storage.revision == 0 and await gone(pods, "default", "web")


async def test_dry_run_update_writes_nothing(pods: RegistryStore, storage: MemoryStore) -> None:
    created = await pods.create("default", make_pod().build())
    before = storage.revision
    would_be = await pods.update("default", "web", edit(
        lambda p: p["spec"]["containers"][0].update(image="redis")), dry_run=True)
    assert would_be["spec"]["containers"][0]["image"] == "redis"
    assert would_be["metadata"]["generation"] == 2
    assert storage.revision == before
    assert await pods.get("default", "web") == created


@pytest.mark.parametrize("builder", [make_pod(), make_pod().node("n1"),
                                     make_pod().finalizers("example.com/hold")],
                         ids=["unbound", "bound", "finalizer"])
async def test_dry_run_delete_writes_nothing(pods: RegistryStore, storage: MemoryStore,
                                             builder: PodBuilder) -> None:
    created = await pods.create("default", builder.build())
    before = storage.revision
    await pods.delete("default", "web", dry_run=True)
    assert storage.revision == before
    assert await pods.get("default", "web") == created


# --- namespaces ------------------------------------------------------------------------------

async def test_namespace_delete_marks_it_terminating(stores: dict[str, RegistryStore]) -> None:
    namespaces = stores["namespaces"]
    await namespaces.create(None, make_namespace("team"))
    marked, removed = await namespaces.delete(None, "team")
    assert not removed
    assert marked["status"]["phase"] == "Terminating"
    assert marked["metadata"]["deletionTimestamp"]
    assert await namespaces.get(None, "team") == marked


async def test_namespace_spec_changes_only_through_finalize(
        stores: dict[str, RegistryStore]) -> None:
    namespaces = stores["namespaces"]
    await namespaces.create(None, make_namespace("team"))
    updated = await namespaces.update(None, "team", edit(
        lambda n: n["spec"].update(finalizers=[])))
    assert updated["spec"]["finalizers"] == ["kubernetes"]
    finalized = await namespaces.update(None, "team", edit(
        lambda n: n["spec"].update(finalizers=[])),
        strategy=namespaces.strategy_for("finalize"))
    assert finalized["spec"]["finalizers"] == []


async def test_ensure_built_in_is_idempotent(stores: dict[str, RegistryStore],
                                             storage: MemoryStore) -> None:
    await nslib.ensure_built_in(stores["namespaces"])
    items, _ = await stores["namespaces"].list(None)
    names = sorted(n["metadata"]["name"] for n in items)
    assert names == sorted(nslib.BUILT_IN)
    assert all(n["status"]["phase"] == "Active" for n in items)
    before = storage.revision
    await nslib.ensure_built_in(stores["namespaces"])
    assert storage.revision == before
    assert (await stores["namespaces"].list(None))[0] == items


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_protected_namespaces_may_not_be_deleted(stores: dict[str, RegistryStore],
                                                       name: str) -> None:
    await nslib.ensure_built_in(stores["namespaces"])
    err = await expect_error(403, "Forbidden", stores["namespaces"].delete(None, name))
    assert err.message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    assert (await stores["namespaces"].get(None, name))["status"]["phase"] == "Active"
