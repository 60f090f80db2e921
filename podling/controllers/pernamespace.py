"""One object of one name in every active namespace, kept as the controller wants it.

    namespace informer ──ADDED / MODIFIED / SYNC──┐
                                                 ▼
    object informer (metadata.name=<name>) ──▶ queue of namespaces ──▶ worker: ensure(ns)
       DELETED / MODIFIED / SYNC ────────────────┘                        │
                                                    missing → create; drifted → update
                                                    (Terminating or gone namespace: skip)

Level-triggered: the informers' periodic SYNC re-queues every namespace, and a failed pass
is retried after ``retry_seconds`` (:mod:`.workqueue`). :class:`PerNamespaceObject` is the loop; a subclass says
what the object is (:meth:`desired`) and what a stored copy must be changed into
(:meth:`repaired`). Used by the ServiceAccounts controller (``default``) and the root CA
publisher (``kube-root-ca.crt``) of :mod:`.serviceaccounts`.
"""

from __future__ import annotations

from ..api.errors import ApiError
from ..api.resources import NAMESPACES, Resource
from ..api.types import Obj
from ..client import DELETED, ApiClient, Informer
from .apply import update_object
from .workqueue import WorkQueue

RESYNC_SECONDS = 300.0
RETRY_SECONDS = 1.0


class PerNamespaceObject:
    """Keeps ``name`` of ``resource`` in every active namespace. ``start`` from a running
    loop; ``await stop()`` is idempotent. The client stays the caller's."""

    name = "per-namespace"

    def __init__(self, client: ApiClient, resource: Resource, object_name: str, *,
                 resync_seconds: float = RESYNC_SECONDS,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self._client = client
        self.resource = resource
        self.object_name = object_name
        self.namespaces = Informer(client, NAMESPACES, resync_period=resync_seconds)
        self.objects = Informer(client, resource, field_selector=f"metadata.name={object_name}",
                                resync_period=resync_seconds)
        self.namespaces.add_handler(self._on_namespace)
        self.objects.add_handler(self._on_object)
        self.queue = WorkQueue(self.name, self.ensure, retry_seconds=retry_seconds,
                               waits_for=[self.namespaces, self.objects],
                               describe=lambda ns: f"{ns}/{object_name}")

    def desired(self, namespace: str) -> Obj:
        """The object to create in ``namespace``."""
        raise NotImplementedError

    def repaired(self, current: Obj) -> Obj:
        """``current`` (a copy) as it must be; returned unchanged when it is fine."""
        return current

    def start(self) -> None:
        self.namespaces.start()
        self.objects.start()
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        await self.objects.stop()
        await self.namespaces.stop()

    def _on_namespace(self, type_: str, ns: Obj, old: Obj | None) -> None:
        if type_ != DELETED:
            self.queue.add(ns["metadata"]["name"])

    def _on_object(self, type_: str, obj: Obj, old: Obj | None) -> None:
        if obj["metadata"].get("namespace"):
            self.queue.add(obj["metadata"]["namespace"])

    async def ensure(self, namespace: str) -> None:
        """Create or repair the object in ``namespace`` if the namespace is active."""
        ns = self.namespaces.get(None, namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            return
        current = self.objects.get(namespace, self.object_name)
        try:
            if current is None:
                await self._client.create(self.resource, self.desired(namespace), namespace)
            elif not current["metadata"].get("deletionTimestamp"):
                await update_object(self._client, self.resource, current, self.repaired)
        except ApiError as exc:
            # exists (our informer is behind) or the namespace began terminating: fine
            if exc.code not in (403, 409) or exc.reason not in ("AlreadyExists", "Forbidden"):
                raise
