"""Object builders and helpers for the registry tests (``make_pod("p").node("n1")``)."""

from __future__ import annotations

import copy
from typing import Any, Awaitable, Callable

import pytest

from podling.api.errors import ApiError
from podling.apiserver.registry.store import RegistryStore

Obj = dict[str, Any]


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


def eviction_of(name: str, **delete_options: Any) -> Obj:
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction",
                 "metadata": {"name": name, "namespace": "default"}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


# --- helpers -------------------------------------------------------------------------------

async def gone(store: RegistryStore, namespace: str | None, name: str) -> bool:
    try:
        await store.get(namespace, name)
    except ApiError as exc:
        assert exc.code == 404
        return True
    return False


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
                             strategy=pods.strategy_for("status"))


async def expect_error(code: int, reason: str, call: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    assert (caught.value.code, caught.value.reason) == (code, reason), caught.value.message
    return caught.value
