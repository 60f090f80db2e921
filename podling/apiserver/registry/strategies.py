"""Every served resource's strategies: the resource's own and its subresources'.

:func:`registry_stores` builds one :class:`~.store.RegistryStore` per stored resource with
them; the kinds' rules are in :mod:`.pods`, :mod:`.binding`, :mod:`.eviction`, :mod:`.nodes`,
:mod:`.namespaces` and :mod:`.configdata` (configmaps, secrets); events and leases, which
have no subresources, are here.
"""

from __future__ import annotations

from ...api import defaults, resources, validation
from ...api.errors import Cause
from ...storage.interface import Storage
from .binding import PodBindingStrategy
from .configdata import ConfigMapStrategy, SecretStrategy
from .eviction import PodEvictionStrategy
from .namespaces import NamespaceFinalizeStrategy, NamespaceStatusStrategy, NamespaceStrategy
from .nodes import CLUSTER_CIDR, NodeStatusStrategy, NodeStrategy, PodCidrAllocator
from .pods import PodEphemeralContainersStrategy, PodStatusStrategy, PodStrategy
from .store import RegistryStore
from .strategy import Obj, Strategy


class EventStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        defaults.default_event(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return super().validate(obj) + validation.validate_event(obj)


class LeaseStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        defaults.default_lease(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_lease(obj)


def registry_stores(storage: Storage, *,
                    cluster_cidr: str = CLUSTER_CIDR) -> dict[str, RegistryStore]:
    """One RegistryStore per stored resource, keyed by resource name. ``cluster_cidr`` is
    the range new nodes get their pod CIDRs from."""
    pods, nodes, namespaces = resources.PODS, resources.NODES, resources.NAMESPACES
    return {
        "pods": RegistryStore(pods, PodStrategy(pods), storage, subresources={
            "status": PodStatusStrategy(pods), "binding": PodBindingStrategy(pods),
            "eviction": PodEvictionStrategy(pods),
            "ephemeralcontainers": PodEphemeralContainersStrategy(pods)}),
        "nodes": RegistryStore(nodes, NodeStrategy(nodes, PodCidrAllocator(cluster_cidr)),
                               storage, subresources={"status": NodeStatusStrategy(nodes)}),
        "namespaces": RegistryStore(namespaces, NamespaceStrategy(namespaces), storage,
                                    subresources={
                                        "status": NamespaceStatusStrategy(namespaces),
                                        "finalize": NamespaceFinalizeStrategy(namespaces)}),
        "configmaps": RegistryStore(resources.CONFIG_MAPS,
                                    ConfigMapStrategy(resources.CONFIG_MAPS), storage),
        "secrets": RegistryStore(resources.SECRETS, SecretStrategy(resources.SECRETS), storage),
        "events": RegistryStore(resources.EVENTS, EventStrategy(resources.EVENTS), storage),
        "leases": RegistryStore(resources.LEASES, LeaseStrategy(resources.LEASES), storage),
    }
