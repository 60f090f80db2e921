"""The node's heartbeat: the Lease ``kube-node-lease/<node>``, created or renewed on each
tick of the node loop (kubelet nodelease controller). Its only writer is that loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from podling.api.errors import ApiError
from podling.api.resources import LEASES
from podling.api.types import Obj
from podling.util.timefmt import epoch_rfc3339

if TYPE_CHECKING:
    from podling.client.rest import ApiClient

LEASE_NAMESPACE = "kube-node-lease"


class NodeLease:
    """Creates and renews one node's Lease. ``clock`` gives epoch seconds."""

    def __init__(self, client: "ApiClient", node_name: str, *, duration_seconds: int,
                 clock: Callable[[], float]) -> None:
        self.client = client
        self.name = node_name
        self.duration_seconds = duration_seconds
        self.clock = clock
        self._lease: Obj | None = None

    def _body(self, lease: Obj | None, node_uid: str) -> Obj:
        meta: Obj = {"name": self.name, "namespace": LEASE_NAMESPACE}
        if lease is not None:
            meta = dict(lease["metadata"])
        if node_uid:
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                        "uid": node_uid}]
        spec = dict((lease or {}).get("spec") or {})
        spec.update(holderIdentity=self.name, leaseDurationSeconds=self.duration_seconds,
                    renewTime=epoch_rfc3339(self.clock(), micro=True))
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}

    async def renew(self, node_uid: str = "") -> Obj:
        """Create or renew the Lease (renewTime = now), owned by the Node ``node_uid`` when
        known. A stale cached copy (409) or a vanished lease (404) is re-read on the next
        call. Raises on API errors."""
        if self._lease is None:
            try:
                self._lease = await self.client.get(LEASES, self.name, LEASE_NAMESPACE)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                self._lease = await self.client.create(LEASES, self._body(None, node_uid),
                                                       LEASE_NAMESPACE)
                return self._lease
        try:
            self._lease = await self.client.update(LEASES, self._body(self._lease, node_uid))
        except ApiError:
            self._lease = None
            raise
        return self._lease
