"""Nodes and nodes/status; each new Node gets a free /24 of the cluster CIDR as its pod CIDR.

Kubernetes' node IPAM controller assigns ``spec.podCIDR`` right after a Node is created;
podling does the same in :meth:`NodeStrategy.after_create`, before the create is answered, so
an agent finds its pod CIDR on its Node as soon as it has registered. The assignment is an
ordinary update through the nodes pipeline (watchers see ADDED, then MODIFIED).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

from ...api import defaults, errors, validation
from ...api.errors import Cause
from ...api.resources import Resource
from .strategy import Obj, Strategy

if TYPE_CHECKING:
    from .store import RegistryStore

CLUSTER_CIDR = "10.42.0.0/16"
NODE_PREFIX = 24


class PodCidrAllocator:
    """Hands out the lowest /24 of the cluster CIDR that no Node holds yet.

    Assignments are serialized (one lock), so two nodes created at once never get the same
    range from one API server."""

    def __init__(self, cluster_cidr: str = CLUSTER_CIDR, prefix: int = NODE_PREFIX) -> None:
        self._network = ipaddress.ip_network(cluster_cidr)
        self._prefix = prefix
        self._lock = asyncio.Lock()

    async def assign(self, nodes: RegistryStore, node: Obj) -> Obj:
        """Give ``node`` (stored, without a pod CIDR) a free range through ``nodes.update``;
        returns the updated node, or ``node`` when the range is exhausted or it is gone."""
        name = node["metadata"]["name"]
        async with self._lock:
            items, _ = await nodes.list(None)
            taken = {cidr for n in items for cidr in (n.get("spec") or {}).get("podCIDRs", [])}
            free = next((str(s) for s in self._network.subnets(new_prefix=self._prefix)
                         if str(s) not in taken), None)
            if free is None:
                return node
            try:
                return await nodes.update(None, name, lambda n: _with_pod_cidr(n, free))
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
                return node


def _with_pod_cidr(node: Obj, cidr: str) -> Obj:
    spec = node.setdefault("spec", {})
    if not spec.get("podCIDR"):
        spec["podCIDR"], spec["podCIDRs"] = cidr, [cidr]
    return node


class NodeStrategy(Strategy):
    """Nodes may carry status on create (agents register with it); later only via
    nodes/status. A node without ``spec.podCIDR`` gets one after it is created."""

    updates_status = False

    def __init__(self, resource: Resource, pod_cidrs: PodCidrAllocator | None = None) -> None:
        super().__init__(resource)
        self._pod_cidrs = pod_cidrs

    def default(self, obj: Obj) -> None:
        defaults.default_node(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        """A node that brings its own ``spec.podCIDR`` has it as ``spec.podCIDRs`` too."""
        spec = obj.setdefault("spec", {})
        if spec.get("podCIDR"):
            spec.setdefault("podCIDRs", [spec["podCIDR"]])

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_node(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_node_update(new, old)

    async def after_create(self, store: RegistryStore, created: Obj) -> Obj:
        if self._pod_cidrs is None or (created.get("spec") or {}).get("podCIDR"):
            return created
        return await self._pod_cidrs.assign(store, created)


class NodeStatusStrategy(NodeStrategy):
    """nodes/status: only status changes."""

    updates_status = True
    updates_spec = False
