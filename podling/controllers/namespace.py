"""The namespace controller: empties namespaces being deleted, then lets them go.

    Active ──delete──▶ Terminating (deletionTimestamp; spec.finalizers = [kubernetes])
                          │  every namespaced object in it is deleted (pods gracefully),
                          │  pass after pass, until none is left
                          ▼  then PUT namespaces/{name}/finalize without "kubernetes"
                        gone (the API server removes it once nothing blocks it)

An API client like the scheduler (Kubernetes runs it in the controller manager): a
namespace informer notices terminating namespaces; one drain task per namespace lists and
deletes its contents over HTTP. "Every namespaced object" means every namespaced resource
of :data:`podling.api.resources.RESOURCES` that can be listed and deleted.
"""

from __future__ import annotations

import asyncio
import logging

from ..api.errors import ApiError
from ..api.resources import NAMESPACES, RESOURCES, Resource
from ..api.types import Obj
from ..client import DELETED, ApiClient, ApiConnectionError, Informer
from .apply import update_object

log = logging.getLogger(__name__)

DRAIN_RETRY_SECONDS = 0.5
RESYNC_SECONDS = 300.0
FINALIZER = "kubernetes"


def namespaced_contents() -> tuple[Resource, ...]:
    """The resources a namespace's deletion empties."""
    return tuple(r for r in RESOURCES
                 if r.namespaced and "list" in r.verbs and "delete" in r.verbs)


def without_our_finalizer(ns: Obj) -> Obj:
    """``ns`` with ``kubernetes`` dropped from ``spec.finalizers`` (in place)."""
    spec = ns.setdefault("spec", {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
    return ns


class NamespaceController:
    """Drains terminating namespaces; one task per namespace being deleted.

    ``client`` stays the caller's. :meth:`start` from a running loop; ``await stop()``
    cancels the informer and every drain in progress (idempotent). A drain that fails is
    retried every ``retry_seconds`` until the namespace is gone."""

    def __init__(self, client: ApiClient, *, retry_seconds: float = DRAIN_RETRY_SECONDS,
                 resync_seconds: float = RESYNC_SECONDS) -> None:
        self._client = client
        self._retry_seconds = retry_seconds
        self._resources = namespaced_contents()
        self._draining: dict[str, asyncio.Task[None]] = {}
        self.namespaces = Informer(client, NAMESPACES, resync_period=resync_seconds)
        self.namespaces.add_handler(self._on_namespace)

    def start(self) -> None:
        self.namespaces.start()

    async def stop(self) -> None:
        await self.namespaces.stop()
        tasks = list(self._draining.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_namespace(self, type_: str, ns: Obj, old: Obj | None) -> None:
        name = ns["metadata"]["name"]
        if type_ != DELETED and ns["metadata"].get("deletionTimestamp") \
                and name not in self._draining:
            self._draining[name] = asyncio.create_task(self._drain(name), name=f"drain-{name}")

    async def _drain(self, name: str) -> None:
        try:
            while not await self._drain_pass(name):
                await asyncio.sleep(self._retry_seconds)
        except Exception:  # a bug: logged; the informer's next resync starts over
            log.exception("draining namespace %s", name)
        finally:
            self._draining.pop(name, None)

    async def _drain_pass(self, name: str) -> bool:
        """One pass: delete what is left, finalize when nothing is. True when done."""
        try:
            if not await self._delete_contents(name):
                return False
            await self._finalize(name)
            return True
        except (ApiError, ApiConnectionError) as exc:
            log.warning("draining namespace %s failed (retrying): %s", name, exc)
            return False

    async def _delete_contents(self, namespace: str) -> bool:
        """Delete everything in ``namespace`` not yet being deleted; True when it is empty."""
        empty = True
        for resource in self._resources:
            items, _ = await self._client.list(resource, namespace)
            for obj in items:
                empty = False
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    await self._client.delete(resource, meta["name"], namespace,
                                              preconditions={"uid": meta["uid"]})
                except ApiError as exc:
                    if exc.code not in (404, 409):  # gone, or replaced meanwhile
                        raise
        return empty

    async def _finalize(self, name: str) -> None:
        """Drop our finalizer through namespaces/{name}/finalize; a gone namespace is done."""
        try:
            ns = await self._client.get(NAMESPACES, name)
            await update_object(self._client, NAMESPACES, ns, without_our_finalizer,
                                subresource="finalize")
        except ApiError as exc:
            if exc.code != 404:
                raise
