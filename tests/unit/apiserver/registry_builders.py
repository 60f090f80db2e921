"""Object builders and helpers for the registry tests (``make_pod().node("n1")``): pods and
nodes are thin layers over ``tests/builders.py``."""

from __future__ import annotations

import copy
from typing import Any, Awaitable, Callable

import builders
import pytest
from builders import PodBuilder

from podling.api.errors import ApiError
from podling.apiserver.registry.store import RegistryStore

Obj = dict[str, Any]


# --- builders ------------------------------------------------------------------------------

def make_pod(name: str | None = "web") -> PodBuilder:
    """What a client POSTs in these tests: ``builders.make_pod(name).bare()`` with image
    ``nginx`` and no namespace (the store is given one); ``name=None`` leaves the name out."""
    return builders.make_pod(name, namespace=None).container("c", "nginx").bare()


def make_namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def make_lease(name: str, **meta: Any) -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, **meta}, "spec": {"holderIdentity": "n1"}}


def make_node(name: str) -> Obj:
    """A Node with nothing but its name."""
    return builders.make_node(name).bare().build()


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
