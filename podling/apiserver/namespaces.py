"""Namespace lifecycle: the built-in namespaces, and draining namespaces being deleted.

    Active ──delete──▶ Terminating (deletionTimestamp; spec.finalizers = [kubernetes])
                          │  every namespaced object in it is deleted (pods gracefully)
                          ▼  once none is left: finalize (spec.finalizers = [])
                        gone

Runs inside the API server process (Kubernetes runs it in the controller manager).
"""

from __future__ import annotations

import asyncio
import logging

from ..api import errors
from ..storage.interface import Storage
from .registry.store import RegistryStore, collection_prefix
from .registry.strategies import SUBRESOURCES

log = logging.getLogger(__name__)

BUILT_IN = ("default", "kube-system", "kube-public", "kube-node-lease")
DRAIN_RETRY_SECONDS = 0.5


async def ensure_built_in(namespaces: RegistryStore) -> None:
    """Create the built-in namespaces that do not exist yet."""
    for name in BUILT_IN:
        try:
            await namespaces.create(None, {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name}})
        except errors.ApiError as exc:
            if exc.code != 409:
                raise


class NamespaceController:
    """Drains terminating namespaces; one task per namespace being deleted."""

    def __init__(self, storage: Storage, stores: dict[str, RegistryStore]) -> None:
        self._storage = storage
        self._stores = stores
        self._draining: dict[str, asyncio.Task] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="namespace-controller")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._draining.values()] if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        namespaces = self._stores["namespaces"]
        items, rev = await namespaces.list(None)
        for ns in items:
            self._consider(ns)
        stream = await self._storage.watch(collection_prefix(namespaces.resource, None), rev)
        try:
            async for event in stream:
                if event.type != "DELETED":
                    self._consider(event.obj)
        finally:
            stream.close()

    def _consider(self, ns: dict) -> None:
        name = ns["metadata"]["name"]
        if ns["metadata"].get("deletionTimestamp") and name not in self._draining:
            self._draining[name] = asyncio.create_task(self._drain(name), name=f"drain-{name}")

    async def _drain(self, name: str) -> None:
        try:
            while not await self._delete_contents(name):
                await asyncio.sleep(DRAIN_RETRY_SECONDS)
            await self._finalize(name)
        except Exception:
            log.exception("draining namespace %s", name)
        finally:
            self._draining.pop(name, None)

    async def _delete_contents(self, namespace: str) -> bool:
        """Delete everything in ``namespace``; True when nothing is left."""
        empty = True
        for store in self._stores.values():
            if not store.resource.namespaced:
                continue
            items, _ = await store.list(namespace)
            for obj in items:
                empty = False
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await store.delete(namespace, obj["metadata"]["name"])
                except errors.ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
        return empty

    async def _finalize(self, name: str) -> None:
        def clear(ns: dict) -> dict:
            ns.setdefault("spec", {})["finalizers"] = [
                f for f in ns["spec"].get("finalizers", []) if f != "kubernetes"]
            return ns
        try:
            await self._stores["namespaces"].update(
                None, name, clear, strategy=SUBRESOURCES[("namespaces", "finalize")])
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
