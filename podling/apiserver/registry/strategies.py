"""Every served resource's strategies: the resource's own and its subresources'.

:func:`registry_stores` builds one :class:`~.store.RegistryStore` per stored resource with
them; the kinds' rules are in :mod:`.pods`, :mod:`.binding`, :mod:`.eviction`, :mod:`.nodes`,
:mod:`.namespaces`, :mod:`.configdata` (configmaps, secrets), :mod:`.serviceaccounts` and
:mod:`.rbac` (roles and their bindings);
events and leases, which have no subresources, are here.
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
from .podsecurity import PodSecurityAdmission
from .pods import PodEphemeralContainersStrategy, PodStatusStrategy, PodStrategy
from .rbac import BindingStrategy, RbacPolicy, RoleStrategy
from .serviceaccounts import ServiceAccountAdmission, ServiceAccountStrategy
from .store import RegistryStore, collection_prefix
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


def registry_stores(storage: Storage, *, cluster_cidr: str = CLUSTER_CIDR,
                    service_account_admission: bool = False,
                    rbac: RbacPolicy | None = None) -> dict[str, RegistryStore]:
    """One RegistryStore per stored resource, keyed by resource name. ``cluster_cidr`` is
    the range new nodes get their pod CIDRs from. ``service_account_admission``: pod
    creates go through the ServiceAccount admission plugin (the API server always turns it
    on; tests without a ServiceAccounts controller leave it off). ``rbac``: the authorizer
    that RBAC writes are checked against for escalation (none: not checked)."""
    pods, nodes, namespaces = resources.PODS, resources.NODES, resources.NAMESPACES
    accounts = RegistryStore(resources.SERVICE_ACCOUNTS,
                             ServiceAccountStrategy(resources.SERVICE_ACCOUNTS), storage)
    admission = ServiceAccountAdmission(accounts) if service_account_admission else None
    async def list_pods(namespace: str) -> list[Obj]:
        return (await storage.list(collection_prefix(pods, namespace)))[0]
    namespace_store = RegistryStore(namespaces, NamespaceStrategy(namespaces, list_pods),
                                    storage,
                                    subresources={
                                        "status": NamespaceStatusStrategy(namespaces),
                                        "finalize": NamespaceFinalizeStrategy(namespaces)})
    security = PodSecurityAdmission(namespace_store)
    return {
        "pods": RegistryStore(pods, PodStrategy(pods, admission, security), storage,
                              subresources={
            "status": PodStatusStrategy(pods), "binding": PodBindingStrategy(pods),
            "eviction": PodEvictionStrategy(pods),
            "ephemeralcontainers": PodEphemeralContainersStrategy(pods, security=security)}),
        "nodes": RegistryStore(nodes, NodeStrategy(nodes, PodCidrAllocator(cluster_cidr)),
                               storage, subresources={"status": NodeStatusStrategy(nodes)}),
        "namespaces": namespace_store,
        "configmaps": RegistryStore(resources.CONFIG_MAPS,
                                    ConfigMapStrategy(resources.CONFIG_MAPS), storage),
        "secrets": RegistryStore(resources.SECRETS, SecretStrategy(resources.SECRETS), storage),
        "serviceaccounts": accounts,
        "events": RegistryStore(resources.EVENTS, EventStrategy(resources.EVENTS), storage),
        "leases": RegistryStore(resources.LEASES, LeaseStrategy(resources.LEASES), storage),
        **{r.name: RegistryStore(r, RoleStrategy(r, rbac), storage)
           for r in (resources.ROLES, resources.CLUSTER_ROLES)},
        **{r.name: RegistryStore(r, BindingStrategy(r, rbac), storage)
           for r in (resources.ROLE_BINDINGS, resources.CLUSTER_ROLE_BINDINGS)},
    }
