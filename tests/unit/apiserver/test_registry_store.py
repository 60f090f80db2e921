"""The generic registry store and the resource strategies, over the real in-memory storage.

Covers the create and update pipelines; deletion is in ``test_registry_delete.py``,
pods/binding and pods/eviction in ``test_registry_subresources.py``; the fixtures in
``conftest.py``.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable

import pytest

from podling.api.errors import ApiError
from podling.apiserver.app import registry_stores
from podling.apiserver.registry.store import RegistryStore
from podling.storage.interface import KeyNotFound
from podling.storage.memory import MemoryStore
from registry_builders import (edit, expect_error, make_lease, make_namespace, make_node,
                               make_pod, replace_with, set_pod_status)

Obj = dict[str, Any]
UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --- create ----------------------------------------------------------------------------------

async def test_create_stamps_system_fields_and_applies_defaults(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    meta = created["metadata"]
    assert UID_RE.match(meta["uid"])
    assert TIMESTAMP_RE.match(meta["creationTimestamp"])
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert meta["resourceVersion"].isdigit()
    spec = created["spec"]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["terminationGracePeriodSeconds"],
            spec["schedulerName"]) == ("Always", "ClusterFirst", 30, "default-scheduler")
    assert spec["containers"][0]["imagePullPolicy"] == "Always"
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert await pods.get("default", "web") == created


async def test_create_ignores_client_supplied_system_fields(pods: RegistryStore) -> None:
    sent = make_pod().set_meta(uid="client-uid", creationTimestamp="2000-01-01T00:00:00Z",
                               resourceVersion="999", generation=7, namespace="elsewhere",
                               deletionTimestamp="2000-01-01T00:00:00Z",
                               deletionGracePeriodSeconds=5) \
        .set_status(phase="Running", podIP="10.0.0.9").build()
    meta = (await pods.create("default", sent))["metadata"]
    assert meta["uid"] != "client-uid"
    assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert meta["resourceVersion"] != "999"
    assert meta["generation"] == 1
    assert meta["namespace"] == "default"
    assert "deletionTimestamp" not in meta and "deletionGracePeriodSeconds" not in meta
    assert (await pods.get("default", "web"))["status"]["phase"] == "Pending"


async def test_each_create_gets_a_new_uid(pods: RegistryStore) -> None:
    first = await pods.create("default", make_pod("a").build())
    second = await pods.create("default", make_pod("b").build())
    assert first["metadata"]["uid"] != second["metadata"]["uid"]


async def test_generate_name(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod(None).set_meta(generateName="web-").build())
    name = created["metadata"]["name"]
    assert re.fullmatch(r"web-[a-z0-9]{5}", name)
    assert created["metadata"]["generateName"] == "web-"
    assert (await pods.get("default", name))["metadata"]["uid"] == created["metadata"]["uid"]


async def test_name_wins_over_generate_name(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod("fixed").set_meta(generateName="web-").build())
    assert created["metadata"]["name"] == "fixed"


async def test_create_of_an_existing_name_is_409(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    err = await expect_error(409, "AlreadyExists", pods.create("default", make_pod().build()))
    assert err.message == 'pods "web" already exists'


async def test_same_name_in_other_namespace_is_a_different_object(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await pods.create("other", make_pod().build())
    items, _ = await pods.list(None)
    assert sorted(p["metadata"]["namespace"] for p in items) == ["default", "other"]
    assert [p["metadata"]["namespace"] for p in (await pods.list("other"))[0]] == ["other"]


INVALID = [
    (make_pod().build() | {"spec": {"containers": [{"name": "c"}]}},
     "spec.containers[0].image", "FieldValueRequired"),
    (make_pod("Not_A_Name").build(), "metadata.name", "FieldValueInvalid"),
    (make_pod(None).build(), "metadata.name", "FieldValueRequired"),
    (make_pod().build() | {"spec": {"containers": [{"name": "c", "image": "nginx"}],
                                    "restartPolicy": "Sometimes"}},
     "spec.restartPolicy", "FieldValueNotSupported"),
]


@pytest.mark.parametrize("pod,field,reason", INVALID,
                         ids=[f for _, f, _ in INVALID])
async def test_invalid_create_is_422_with_causes(pods: RegistryStore, storage: MemoryStore,
                                                 pod: Obj, field: str, reason: str) -> None:
    err = await expect_error(422, "Invalid", pods.create("default", pod))
    assert err.details is not None and err.details["kind"] == "Pod"
    assert {"field": field, "reason": reason} in [
        {"field": c["field"], "reason": c["reason"]} for c in err.details["causes"]]
    assert err.message.startswith('Pod "')
    assert storage.revision == 0


async def test_invalid_lease_names_its_group(stores: dict[str, RegistryStore]) -> None:
    lease = make_lease("l")
    lease["spec"]["leaseDurationSeconds"] = 0
    err = await expect_error(422, "Invalid", stores["leases"].create("default", lease))
    assert err.message.startswith('Lease.coordination.k8s.io "l" is invalid: '
                                  "spec.leaseDurationSeconds")
    assert err.details and err.details["group"] == "coordination.k8s.io"


async def test_unknown_priority_class_is_403(pods: RegistryStore) -> None:
    pod = make_pod().build()
    pod["spec"]["priorityClassName"] = "nope"
    await expect_error(403, "Forbidden", pods.create("default", pod))


async def test_lease_spec_is_always_present(stores: dict[str, RegistryStore]) -> None:
    """coordination/v1 Lease serializes an empty spec; a lease created without one has {}."""
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}}
    created = await stores["leases"].create("default", lease)
    assert created.get("spec") == {}


async def test_namespace_create_is_active_with_the_kubernetes_finalizer(
        stores: dict[str, RegistryStore]) -> None:
    ns = make_namespace("team")
    ns["status"] = {"phase": "Terminating"}
    ns["spec"] = {"finalizers": []}
    created = await stores["namespaces"].create(None, ns)
    assert created["status"] == {"phase": "Active"}
    assert created["spec"] == {"finalizers": ["kubernetes"]}
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert "namespace" not in created["metadata"]


# --- update ----------------------------------------------------------------------------------

async def test_update_with_a_stale_resource_version_is_409(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    await pods.update("default", "web", edit(lambda p: p["metadata"].setdefault(
        "labels", {}).update(a="1")))
    err = await expect_error(409, "Conflict", pods.update("default", "web",
                                                          replace_with(created)))
    assert err.message == ('Operation cannot be fulfilled on pods "web": the object has been '
                           "modified; please apply your changes to the latest version and try "
                           "again")


async def test_update_without_resource_version_is_unconditional(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    body = copy.deepcopy(created)
    del body["metadata"]["resourceVersion"]
    body["metadata"]["labels"] = {"app": "web"}
    updated = await pods.update("default", "web", replace_with(body))
    assert updated["metadata"]["labels"] == {"app": "web"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


async def test_update_of_a_missing_object_is_404(pods: RegistryStore) -> None:
    err = await expect_error(404, "NotFound", pods.update("default", "nope", lambda c: c))
    assert err.message == 'pods "nope" not found'


async def test_main_resource_update_keeps_the_stored_status(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    body = copy.deepcopy(created)
    body["status"] = {"phase": "Running", "qosClass": "BestEffort", "podIP": "10.0.0.9"}
    body["metadata"]["labels"] = {"app": "web"}
    updated = await pods.update("default", "web", replace_with(body))
    assert updated["status"] == created["status"]
    assert updated["metadata"]["labels"] == {"app": "web"}


async def test_main_resource_update_without_status_keeps_it(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    body = copy.deepcopy(created)
    del body["status"]
    assert (await pods.update("default", "web", replace_with(body)))["status"] == \
        created["status"]


async def test_status_update_keeps_spec_and_metadata(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    body = copy.deepcopy(created)
    body["spec"]["containers"][0]["image"] = "redis"
    body["spec"]["activeDeadlineSeconds"] = 5
    body["metadata"]["labels"] = {"sneaky": "yes"}
    body["status"]["phase"] = "Running"
    updated = await pods.update("default", "web", replace_with(body),
                                strategy=pods.strategy_for("status"))
    assert updated["status"]["phase"] == "Running"
    assert updated["spec"] == created["spec"]
    assert "labels" not in updated["metadata"]
    assert updated["metadata"]["generation"] == 1


async def test_status_update_honours_a_stale_resource_version(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    await set_pod_status(pods, "web", phase="Running")
    body = copy.deepcopy(created)
    body["status"]["phase"] = "Failed"
    await expect_error(409, "Conflict", pods.update("default", "web", replace_with(body),
                                                    strategy=pods.strategy_for("status")))


GENERATION = [
    ("image change", lambda p: p["spec"]["containers"][0].update(image="redis"), 2),
    ("deadline set", lambda p: p["spec"].update(activeDeadlineSeconds=30), 2),
    ("label change", lambda p: p["metadata"].update(labels={"a": "b"}), 1),
    ("annotation change", lambda p: p["metadata"].update(annotations={"a": "b"}), 1),
    ("status change", lambda p: p.update(status={"phase": "Running"}), 1),
    ("client sets generation", lambda p: p["metadata"].update(generation=9), 1),
]


@pytest.mark.parametrize("change,expected", [(c, g) for _, c, g in GENERATION],
                         ids=[n for n, _, _ in GENERATION])
async def test_generation_bumps_on_spec_changes_only(pods: RegistryStore,
                                                     change: Callable[[Obj], None],
                                                     expected: int) -> None:
    await pods.create("default", make_pod().build())
    updated = await pods.update("default", "web", edit(change))
    assert updated["metadata"]["generation"] == expected


async def test_generation_is_not_client_settable_on_kinds_without_it(
        stores: dict[str, RegistryStore]) -> None:
    """rest.BeforeUpdate always copies the stored generation: a node keeps generation 0."""
    await stores["nodes"].create(None, make_node("n1"))
    updated = await stores["nodes"].update(
        None, "n1", edit(lambda n: n["metadata"].update(generation=5)))
    assert updated["metadata"].get("generation", 0) == 0


async def test_uid_is_immutable(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    # Kubernetes takes the uid of an update as a precondition (defaultUpdatedObjectInfo)
    err = await expect_error(409, "Conflict", pods.update(
        "default", "web", edit(lambda p: p["metadata"].update(uid="other"))))
    assert "Precondition failed: UID in precondition: other" in err.message


async def test_missing_uid_in_the_update_keeps_the_stored_one(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    updated = await pods.update("default", "web", edit(lambda p: p["metadata"].pop("uid")))
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]


async def test_creation_timestamp_changes_are_ignored(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    updated = await pods.update("default", "web", edit(lambda p: p["metadata"].update(
        creationTimestamp="2000-01-01T00:00:00Z", labels={"a": "b"})))
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert updated["metadata"]["labels"] == {"a": "b"}


@pytest.mark.parametrize("resource,namespace,obj", [
    ("namespaces", None, make_namespace("team")),
    ("leases", "default", make_lease("l")),
    ("nodes", None, make_node("n1")),
    ("events", "default", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                           "involvedObject": {"kind": "Pod", "name": "web",
                                              "namespace": "default"}}),
], ids=["namespaces", "leases", "nodes", "events"])
async def test_uid_is_immutable_on_every_kind(stores: dict[str, RegistryStore], resource: str,
                                              namespace: str | None, obj: Obj) -> None:
    store = stores[resource]
    created = await store.create(namespace, obj)
    name = created["metadata"]["name"]
    # the uid of an update is a precondition, as in Kubernetes: a conflict, not an edit
    await expect_error(409, "Conflict", store.update(
        namespace, name, edit(lambda o: o["metadata"].update(uid="other"))))
    assert (await store.get(namespace, name))["metadata"]["uid"] == created["metadata"]["uid"]


async def test_update_that_changes_nothing_writes_nothing(pods: RegistryStore,
                                                          storage: MemoryStore) -> None:
    created = await pods.create("default", make_pod().build())
    before = storage.revision
    same = await pods.update("default", "web", replace_with(created))
    assert storage.revision == before
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_invalid_update_is_422_and_not_stored(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    err = await expect_error(422, "Invalid", pods.update(
        "default", "web", edit(lambda p: p["spec"].update(restartPolicy="Never"))))
    assert err.details and err.details["causes"][0]["field"] == "spec"
    assert (await pods.get("default", "web"))["spec"]["restartPolicy"] == "Always"


# --- pods: a negative terminationGracePeriodSeconds ------------------------------------------

async def test_negative_grace_period_is_stored_as_one(pods: RegistryStore) -> None:
    body = make_pod().build()
    body["spec"]["terminationGracePeriodSeconds"] = -1
    created = await pods.create("default", body)
    assert created["spec"]["terminationGracePeriodSeconds"] == 1
    again = copy.deepcopy(created)
    again["spec"]["terminationGracePeriodSeconds"] = -5
    updated = await pods.update("default", "web", replace_with(again))
    assert updated["spec"]["terminationGracePeriodSeconds"] == 1


class LaggingStore(MemoryStore):
    """A store whose cached copy has not yet seen anything (another server's writes)."""

    async def get_cached(self, key: str) -> Obj:
        raise KeyNotFound(key)


async def test_lookup_falls_back_to_a_consistent_read_when_the_copy_lags() -> None:
    namespaces = registry_stores(LaggingStore())["namespaces"]
    created = await namespaces.create(None, make_namespace("fresh"))
    assert await namespaces.lookup(None, "fresh") == created
    with pytest.raises(ApiError) as missing:
        await namespaces.lookup(None, "absent")
    assert (missing.value.code, missing.value.reason) == (404, "NotFound")
