"""pods/binding, pods/eviction and the nodes' pod-CIDR hook: strategies run by the generic
store, over the real in-memory storage; and the store's lack of kind-specific rules."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from podling.api import errors
from podling.api.resources import Resource
from podling.apiserver.app import registry_stores
from podling.apiserver.registry import store as store_module
from podling.apiserver.registry.binding import PodBindingStrategy, bind
from podling.apiserver.registry.eviction import PodEvictionStrategy, evict
from podling.apiserver.registry.store import RegistryStore
from podling.apiserver.registry.strategy import Strategy
from podling.storage.interface import Preconditions
from podling.storage.memory import MemoryStore
from registry_builders import (binding_to, eviction_of, expect_error, gone, make_node,
                               make_pod, set_pod_status)

Obj = dict[str, Any]
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UID = "0a0a0a0a-0000-4000-8000-000000000001"


def stored_pod(**spec: Any) -> Obj:
    """A pod as the store holds it (uid, resourceVersion), for the pure strategy tables."""
    pod = make_pod().build()
    pod["metadata"].update(uid=UID, resourceVersion="7", namespace="default")
    pod["spec"].update(spec)
    return pod


# --- strategies alone (pure) -------------------------------------------------------------------

BINDING_REFUSALS = [
    ("already bound", {"nodeName": "n1"}, {},
     'Operation cannot be fulfilled on pods/binding "web": pod web is already assigned to '
     'node "n1"'),
    ("being deleted", {}, {"deletionTimestamp": "2026-01-01T00:00:00Z"},
     'Operation cannot be fulfilled on pods/binding "web": pod web is being deleted, cannot '
     'be assigned to a host'),
    ("scheduling gates", {"schedulingGates": [{"name": "example.com/wait"}]}, {},
     'Operation cannot be fulfilled on pods/binding "web": pod web has non-empty '
     '.spec.schedulingGates'),
]


@pytest.mark.parametrize("spec,meta,message", [r[1:] for r in BINDING_REFUSALS],
                         ids=[r[0] for r in BINDING_REFUSALS])
def test_binding_strategy_refuses_with_kubernetes_messages(spec: Obj, meta: Obj,
                                                           message: str) -> None:
    strategy = PodBindingStrategy(registry_stores(MemoryStore())["pods"].resource)
    old = stored_pod(**spec)
    old["metadata"].update(meta)
    new = strategy.bound(stored_pod(**spec), binding_to("n2"))
    with pytest.raises(errors.ApiError) as caught:
        strategy.prepare_for_update(new, old)
    assert (caught.value.code, caught.value.reason, caught.value.message) == \
        (409, "Conflict", message)


def test_binding_strategy_candidate_carries_the_preconditions() -> None:
    strategy = PodBindingStrategy(registry_stores(MemoryStore())["pods"].resource)
    new = strategy.bound(stored_pod(), binding_to("n1", uid="other", resourceVersion="3"))
    assert (new["metadata"]["uid"], new["metadata"]["resourceVersion"]) == ("other", "3")
    assert new["spec"]["nodeName"] == "n1"
    strategy.prepare_for_update(new, stored_pod())  # an unbound pod may be bound


EVICTION_PRECONDITIONS = [
    ("none", None, None),
    ("matching", Preconditions(uid=UID, resource_version="7"), None),
    ("wrong uid", Preconditions(uid="other"),
     f'Operation cannot be fulfilled on Pod "web": the UID in the precondition (other) does '
     f'not match the UID in record ({UID}). The object might have been deleted and then '
     f'recreated'),
    ("stale resourceVersion", Preconditions(resource_version="6"),
     'Operation cannot be fulfilled on Pod "web": the ResourceVersion in the precondition (6) '
     'does not match the ResourceVersion in record (7). The object might have been modified'),
]


@pytest.mark.parametrize("preconditions,message", [r[1:] for r in EVICTION_PRECONDITIONS],
                         ids=[r[0] for r in EVICTION_PRECONDITIONS])
def test_eviction_strategy_preconditions(preconditions: Preconditions | None,
                                         message: str | None) -> None:
    strategy = PodEvictionStrategy(registry_stores(MemoryStore())["pods"].resource)
    if message is None:
        pod = strategy.disrupted(stored_pod(), preconditions)
        [target] = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert (target["status"], target["reason"]) == ("True", "EvictionByEvictionAPI")
        return
    with pytest.raises(errors.ApiError) as caught:
        strategy.disrupted(stored_pod(), preconditions)
    assert (caught.value.code, caught.value.message) == (409, message)


# --- pods/binding through the store -------------------------------------------------------------

async def test_bind_sets_node_name_and_pod_scheduled(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    bound = await bind(pods, "default", "web", binding_to(
        "n1", annotations={"scheduler.example.com/why": "best"}))
    assert bound["spec"]["nodeName"] == "n1"
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert len(scheduled) == 1 and scheduled[0]["status"] == "True"
    assert TIMESTAMP_RE.match(scheduled[0]["lastTransitionTime"])
    assert bound["metadata"]["annotations"] == {"scheduler.example.com/why": "best"}
    assert bound["status"]["phase"] == "Pending"
    assert bound["metadata"]["uid"] == created["metadata"]["uid"]
    assert bound["metadata"]["generation"] == 1
    assert await pods.get("default", "web") == bound


async def test_bind_replaces_an_unschedulable_condition(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await set_pod_status(pods, "web", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "lastProbeTime": None, "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    bound = await bind(pods, "default", "web", binding_to("n1"))
    assert [c["status"] for c in bound["status"]["conditions"]
            if c["type"] == "PodScheduled"] == ["True"]


async def test_second_bind_is_409(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await bind(pods, "default", "web", binding_to("n1"))
    err = await expect_error(409, "Conflict", bind(pods, "default", "web", binding_to("n2")))
    assert err.message == ('Operation cannot be fulfilled on pods/binding "web": pod web is '
                           'already assigned to node "n1"')
    assert (await pods.get("default", "web"))["spec"]["nodeName"] == "n1"


async def test_bind_of_a_deleting_pod_is_409(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().finalizers("example.com/hold").build())
    await pods.delete("default", "web")
    err = await expect_error(409, "Conflict", bind(pods, "default", "web", binding_to("n1")))
    assert err.message.endswith("pod web is being deleted, cannot be assigned to a host")
    assert "nodeName" not in (await pods.get("default", "web"))["spec"]


async def test_bind_with_another_uid_is_409(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    err = await expect_error(409, "Conflict", bind(pods, "default", "web",
                                                   binding_to("n1", uid="other")))
    assert err.message == ('Operation cannot be fulfilled on pods "web": Precondition failed: '
                           f'UID in precondition: other, UID in object meta: '
                           f'{created["metadata"]["uid"]}')
    assert "nodeName" not in (await pods.get("default", "web"))["spec"]


async def test_bind_honours_the_resource_version(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().build())
    await expect_error(409, "Conflict", bind(pods, "default", "web",
                                             binding_to("n1", resourceVersion="999")))
    bound = await bind(pods, "default", "web", binding_to(
        "n1", uid=created["metadata"]["uid"],
        resourceVersion=created["metadata"]["resourceVersion"]))
    assert bound["spec"]["nodeName"] == "n1"


async def test_bind_of_a_missing_pod_is_404(pods: RegistryStore) -> None:
    err = await expect_error(404, "NotFound", bind(pods, "default", "web", binding_to("n1")))
    assert err.message == 'pods "web" not found'


async def test_bind_naming_another_pod_is_400(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    err = await expect_error(400, "BadRequest", bind(pods, "default", "other",
                                                     binding_to("n1")))
    assert err.message == "name in URL does not match name in Binding object"


@pytest.mark.parametrize("target,field", [({"kind": "Node"}, "target.name"),
                                          ({"kind": "Pod", "name": "n1"}, "target.kind")])
async def test_invalid_binding_is_422(pods: RegistryStore, target: Obj, field: str) -> None:
    await pods.create("default", make_pod().build())
    err = await expect_error(422, "Invalid", bind(
        pods, "default", "web", {"apiVersion": "v1", "kind": "Binding",
                                 "metadata": {"name": "web"}, "target": target}))
    assert err.details and err.details["causes"][0]["field"] == field


async def test_dry_run_bind_writes_nothing(pods: RegistryStore, storage: MemoryStore) -> None:
    await pods.create("default", make_pod().build())
    before = storage.revision
    would_be = await bind(pods, "default", "web", binding_to("n1"), dry_run=True)
    assert would_be["spec"]["nodeName"] == "n1"
    assert storage.revision == before
    assert "nodeName" not in (await pods.get("default", "web"))["spec"]


# --- pods/eviction through the store ------------------------------------------------------------

async def test_eviction_of_a_missing_pod_is_404(pods: RegistryStore) -> None:
    err = await expect_error(404, "NotFound", evict(pods, "default", "nope",
                                                    eviction_of("nope")))
    assert err.message == 'pods "nope" not found'


async def test_eviction_with_a_wrong_uid_is_409_and_changes_nothing(
        pods: RegistryStore, storage: MemoryStore) -> None:
    created = await pods.create("default", make_pod().node("n1").build())
    before = storage.revision
    err = await expect_error(409, "Conflict", evict(pods, "default", "web", eviction_of(
        "web", preconditions={"uid": "other"})))
    assert err.message.startswith('Operation cannot be fulfilled on Pod "web": the UID in the '
                                  'precondition (other) does not match the UID in record')
    assert storage.revision == before
    assert await pods.get("default", "web") == created


async def test_eviction_marks_then_deletes_through_the_pipeline(pods: RegistryStore) -> None:
    created = await pods.create("default", make_pod().node("n1").build())
    await evict(pods, "default", "web", eviction_of("web", preconditions={
        "resourceVersion": created["metadata"]["resourceVersion"]}))
    pod = await pods.get("default", "web")
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    assert pod["spec"] == created["spec"]  # the status strategy kept the spec
    assert [c["reason"] for c in pod["status"]["conditions"]
            if c["type"] == "DisruptionTarget"] == ["EvictionByEvictionAPI"]


async def test_dry_run_eviction_checks_preconditions(pods: RegistryStore) -> None:
    await pods.create("default", make_pod().build())
    await expect_error(409, "Conflict", evict(pods, "default", "web", eviction_of(
        "web", preconditions={"uid": "other"}), dry_run=True))
    await evict(pods, "default", "web", eviction_of("web"), dry_run=True)
    assert not await gone(pods, "default", "web")


# --- nodes: the pod-CIDR after-create hook ------------------------------------------------------

async def test_new_nodes_get_the_lowest_free_pod_cidr(storage: MemoryStore) -> None:
    nodes = registry_stores(storage, cluster_cidr="10.9.0.0/16")["nodes"]
    first = await nodes.create(None, make_node("n1"))
    own = make_node("n2")
    own["spec"] = {"podCIDR": "10.9.1.0/24"}
    second = await nodes.create(None, own)
    third = await nodes.create(None, make_node("n3"))
    assert [n["spec"].get("podCIDRs") for n in (first, second, third)] == \
        [["10.9.0.0/24"], ["10.9.1.0/24"], ["10.9.2.0/24"]]
    assert third["spec"]["podCIDR"] == "10.9.2.0/24"
    assert await nodes.get(None, "n3") == third


async def test_a_dry_run_node_create_assigns_nothing(storage: MemoryStore) -> None:
    nodes = registry_stores(storage)["nodes"]
    would_be = await nodes.create(None, make_node("n1"), dry_run=True)
    assert "podCIDR" not in would_be.get("spec", {})
    assert storage.revision == 0


# --- the store itself has no kind-specific rules -----------------------------------------------

WIDGETS = Resource("example.com", "v1", "widgets", "widget", "Widget", True, "")


class HoldingStrategy(Strategy):
    """A made-up kind: stays while ``spec.hold`` is set, marks itself when deleted, and
    gets a label after create; all of it only through the strategy hooks."""

    def check_graceful_delete(self, obj: Obj, requested: int | None) -> int:
        if obj["metadata"]["name"] == "keep":
            raise errors.forbidden_request("widgets \"keep\" is forbidden")
        return 0

    def prepare_for_delete(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Going"

    def blocks_deletion(self, obj: Obj) -> bool:
        return super().blocks_deletion(obj) or bool((obj.get("spec") or {}).get("hold"))

    async def after_create(self, store: RegistryStore, created: Obj) -> Obj:
        name = created["metadata"]["name"]

        def label(obj: Obj) -> Obj:
            obj["metadata"]["labels"] = {"seen": "yes"}
            return obj
        return await store.update(created["metadata"]["namespace"], name, label)


async def test_the_store_runs_only_the_strategy_hooks(storage: MemoryStore) -> None:
    widgets = RegistryStore(WIDGETS, HoldingStrategy(WIDGETS), storage)
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"hold": True}}
    created = await widgets.create("default", body)
    assert created["metadata"]["labels"] == {"seen": "yes"}
    marked, removed = await widgets.delete("default", "w")
    assert not removed and marked["status"]["phase"] == "Going"
    await widgets.update("default", "w", lambda w: {**w, "spec": {}})
    assert await gone(widgets, "default", "w")
    await widgets.create("default", {**body, "metadata": {"name": "keep"}})
    await expect_error(403, "Forbidden", widgets.delete("default", "keep"))


def test_the_store_module_names_no_kind() -> None:
    source = inspect.getsource(store_module)
    for word in ("Pod", "Node", "Namespace", "Event", "Lease", "pods", "nodes", "namespaces",
                 "nodeName", "podCIDR"):
        assert not re.search(rf"\b{word}\b", source), word
