"""The generic registry store and the resource strategies, over the real in-memory storage.

Covers the create / update / delete pipelines, pod graceful deletion, finalizers, dry runs,
namespace termination (with the namespace controller draining) and pods/binding.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any, Awaitable, Callable

import pytest

from podling.api.errors import ApiError
from podling.apiserver import namespaces as nslib
from podling.apiserver.app import registry_stores
from podling.apiserver.binding import bind_pod
from podling.apiserver.registry.store import RegistryStore
from podling.apiserver.registry.strategies import SUBRESOURCES
from podling.storage.interface import Preconditions
from podling.storage.memory import MemoryStore
from podling.util.timefmt import parse_rfc3339

Obj = dict[str, Any]
UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
WAIT = 3.0  # seconds before a condition that should hold soon counts as a failure


# --- builders ------------------------------------------------------------------------------

class PodBuilder:
    """``make_pod("web").node("n1").finalizers("example.com/x").build()``"""

    def __init__(self, name: str | None) -> None:
        meta: Obj = {"name": name} if name else {}
        self.obj: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}

    def node(self, name: str) -> PodBuilder:
        self.obj["spec"]["nodeName"] = name
        return self

    def grace(self, seconds: int) -> PodBuilder:
        self.obj["spec"]["terminationGracePeriodSeconds"] = seconds
        return self

    def finalizers(self, *names: str) -> PodBuilder:
        self.obj["metadata"]["finalizers"] = list(names)
        return self

    def meta(self, **fields: Any) -> PodBuilder:
        self.obj["metadata"].update(fields)
        return self

    def status(self, **fields: Any) -> PodBuilder:
        self.obj["status"] = fields
        return self

    def build(self) -> Obj:
        return copy.deepcopy(self.obj)


def make_pod(name: str | None = "web") -> PodBuilder:
    return PodBuilder(name)


def make_namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def make_lease(name: str, **meta: Any) -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, **meta}, "spec": {"holderIdentity": "n1"}}


def make_node(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def binding_to(node: str, **meta: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web", **meta},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


# --- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture
def storage() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def stores(storage: MemoryStore) -> dict[str, RegistryStore]:
    return registry_stores(storage)


@pytest.fixture
def pods(stores: dict[str, RegistryStore]) -> RegistryStore:
    return stores["pods"]


async def gone(store: RegistryStore, namespace: str | None, name: str) -> bool:
    try:
        await store.get(namespace, name)
    except ApiError as exc:
        assert exc.code == 404
        return True
    return False


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {WAIT}s waiting for {what}")
        await asyncio.sleep(0.01)


def replace_with(obj: Obj) -> Callable[[Obj], Obj]:
    """A make_new for RegistryStore.update that answers a fixed PUT body."""
    return lambda current: copy.deepcopy(obj)


def edit(change: Callable[[Obj], None]) -> Callable[[Obj], Obj]:
    """A make_new that changes the current object (like a patch)."""
    def make_new(current: Obj) -> Obj:
        change(current)
        return current
    return make_new


async def set_pod_status(pods: RegistryStore, name: str, **status: Any) -> Obj:
    return await pods.update("default", name, edit(lambda p: p["status"].update(status)),
                             strategy=SUBRESOURCES[("pods", "status")])


async def expect_error(code: int, reason: str, call: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    assert (caught.value.code, caught.value.reason) == (code, reason), caught.value.message
    return caught.value


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
    sent = make_pod().meta(uid="client-uid", creationTimestamp="2000-01-01T00:00:00Z",
                           resourceVersion="999", generation=7, namespace="elsewhere",
                           deletionTimestamp="2000-01-01T00:00:00Z",
                           deletionGracePeriodSeconds=5) \
        .status(phase="Running", podIP="10.0.0.9").build()
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
    created = await pods.create("default", make_pod(None).meta(generateName="web-").build())
    name = created["metadata"]["name"]
    assert re.fullmatch(r"web-[a-z0-9]{5}", name)
    assert created["metadata"]["generateName"] == "web-"
    assert (await pods.get("default", name))["metadata"]["uid"] == created["metadata"]["uid"]


async def test_name_wins_over_generate_name(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod("fixed").meta(generateName="web-").build())
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
                                strategy=SUBRESOURCES[("pods", "status")])
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
                                                    strategy=SUBRESOURCES[("pods", "status")]))


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
        strategy=SUBRESOURCES[("namespaces", "finalize")])
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


@pytest.fixture
async def controller(storage: MemoryStore, stores: dict[str, RegistryStore],
                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(nslib, "DRAIN_RETRY_SECONDS", 0.01)
    running = nslib.NamespaceController(storage, stores)
    running.start()
    yield running
    await running.stop()


async def test_controller_drains_and_finalizes_a_namespace(
        stores: dict[str, RegistryStore], controller: nslib.NamespaceController) -> None:
    namespaces, pods = stores["namespaces"], stores["pods"]
    await namespaces.create(None, make_namespace("team"))
    await namespaces.create(None, make_namespace("keep"))
    await pods.create("team", make_pod("a").build())
    await pods.create("keep", make_pod("a").build())
    await stores["leases"].create("team", make_lease("l"))
    await stores["events"].create("team", {"apiVersion": "v1", "kind": "Event",
                                           "metadata": {"name": "e"},
                                           "involvedObject": {"kind": "Pod", "name": "a",
                                                              "namespace": "team"}})
    await namespaces.delete(None, "team")

    await eventually(lambda: gone(namespaces, None, "team"), "namespace team to go")
    for resource in ("pods", "leases", "events"):
        assert (await stores[resource].list("team"))[0] == []
    assert not await gone(pods, "keep", "a")
    assert (await namespaces.get(None, "keep"))["status"]["phase"] == "Active"


async def test_controller_waits_for_terminating_pods(
        stores: dict[str, RegistryStore], controller: nslib.NamespaceController) -> None:
    namespaces, pods = stores["namespaces"], stores["pods"]
    await namespaces.create(None, make_namespace("team"))
    await pods.create("team", make_pod("bound").node("n1").build())
    await namespaces.delete(None, "team")

    async def pod_terminating() -> bool:
        return bool((await pods.get("team", "bound"))["metadata"].get("deletionTimestamp"))

    await eventually(pod_terminating, "the bound pod to be deleted gracefully")
    await asyncio.sleep(0.1)  # several drain passes
    ns = await namespaces.get(None, "team")
    assert ns["status"]["phase"] == "Terminating"
    assert ns["spec"]["finalizers"] == ["kubernetes"]

    await pods.delete("team", "bound", grace=0)  # what the agent does once it stopped it
    await eventually(lambda: gone(namespaces, None, "team"), "namespace team to go")


async def test_controller_picks_up_namespaces_terminating_before_it_started(
        storage: MemoryStore, stores: dict[str, RegistryStore],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nslib, "DRAIN_RETRY_SECONDS", 0.01)
    await stores["namespaces"].create(None, make_namespace("team"))
    await stores["pods"].create("team", make_pod().build())
    await stores["namespaces"].delete(None, "team")
    late = nslib.NamespaceController(storage, stores)
    late.start()
    try:
        await eventually(lambda: gone(stores["namespaces"], None, "team"),
                         "namespace team to go")
    finally:
        await late.stop()


# --- pods/binding ----------------------------------------------------------------------------

async def test_bind_sets_node_name_and_pod_scheduled(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    bound = await bind_pod(pods, "default", "web", binding_to(
        "n1", annotations={"scheduler.example.com/why": "best"}))
    assert bound["spec"]["nodeName"] == "n1"
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert len(scheduled) == 1 and scheduled[0]["status"] == "True"
    assert TIMESTAMP_RE.match(scheduled[0]["lastTransitionTime"])
    assert bound["metadata"]["annotations"] == {"scheduler.example.com/why": "best"}
    assert bound["status"]["phase"] == "Pending"
    assert bound["metadata"]["uid"] == created["metadata"]["uid"]
    assert await pods.get("default", "web") == bound


async def test_bind_replaces_an_unschedulable_condition(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await set_pod_status(pods, "web", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "lastProbeTime": None, "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    bound = await bind_pod(pods, "default", "web", binding_to("n1"))
    assert [c["status"] for c in bound["status"]["conditions"]
            if c["type"] == "PodScheduled"] == ["True"]


async def test_second_bind_is_409(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await bind_pod(pods, "default", "web", binding_to("n1"))
    err = await expect_error(409, "Conflict", bind_pod(pods, "default", "web",
                                                       binding_to("n2")))
    assert err.message == ('Operation cannot be fulfilled on pods "web": pod web is already '
                           'assigned to node "n1"')
    assert (await pods.get("default", "web"))["spec"]["nodeName"] == "n1"


async def test_bind_of_a_deleting_pod_is_409(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().finalizers("example.com/hold").build())
    await pods.delete("default", "web")
    await expect_error(409, "Conflict", bind_pod(pods, "default", "web", binding_to("n1")))
    assert "nodeName" not in (await pods.get("default", "web"))["spec"]


async def test_bind_with_another_uid_is_409(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await expect_error(409, "Conflict", bind_pod(pods, "default", "web",
                                                 binding_to("n1", uid="other")))


async def test_bind_of_a_missing_pod_is_404(pods: RegistryStore) -> None:
    await expect_error(404, "NotFound", bind_pod(pods, "default", "web", binding_to("n1")))


@pytest.mark.parametrize("target,field", [({"kind": "Node"}, "target.name"),
                                          ({"kind": "Pod", "name": "n1"}, "target.kind")])
async def test_invalid_binding_is_422(pods: RegistryStore, target: Obj, field: str) -> None:
    await pods.create("default", make_pod().build())
    err = await expect_error(422, "Invalid", bind_pod(
        pods, "default", "web", {"apiVersion": "v1", "kind": "Binding",
                                 "metadata": {"name": "web"}, "target": target}))
    assert err.details and err.details["causes"][0]["field"] == field


async def test_dry_run_bind_writes_nothing(pods: RegistryStore, storage: MemoryStore) -> None:
    await pods.create("default", make_pod().build())
    before = storage.revision
    would_be = await bind_pod(pods, "default", "web", binding_to("n1"), dry_run=True)
    assert would_be["spec"]["nodeName"] == "n1"
    assert storage.revision == before
    assert "nodeName" not in (await pods.get("default", "web"))["spec"]
