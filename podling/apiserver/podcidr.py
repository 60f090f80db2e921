"""Per-node pod CIDRs: the API server gives each new Node a free /24 of the cluster CIDR.

Kubernetes does this in the controller manager's node IPAM; podling assigns on create so an
agent finds ``spec.podCIDR`` on its Node as soon as it has registered.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from .registry.store import RegistryStore

CLUSTER_CIDR = "10.42.0.0/16"
NODE_PREFIX = 24


class PodCidrAllocator:
    """Hands out the lowest /24 of the cluster CIDR that no Node holds yet."""

    def __init__(self, nodes: RegistryStore, cluster_cidr: str = CLUSTER_CIDR,
                 prefix: int = NODE_PREFIX) -> None:
        self._nodes = nodes
        self._network = ipaddress.ip_network(cluster_cidr)
        self._prefix = prefix
        self._lock = asyncio.Lock()

    async def assign(self, node: dict[str, Any], create) -> dict[str, Any]:
        """Run ``create(node)`` with spec.podCIDR(s) filled in unless the node brings its own.

        Serialized, so two nodes created at once never get the same range."""
        spec = node.setdefault("spec", {})
        if spec.get("podCIDR"):
            spec.setdefault("podCIDRs", [spec["podCIDR"]])
            return await create(node)
        async with self._lock:
            items, _ = await self._nodes.list(None)
            taken = {cidr for n in items for cidr in (n.get("spec") or {}).get("podCIDRs", [])}
            for subnet in self._network.subnets(new_prefix=self._prefix):
                if str(subnet) not in taken:
                    spec["podCIDR"], spec["podCIDRs"] = str(subnet), [str(subnet)]
                    break
            return await create(node)
