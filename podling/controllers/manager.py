"""Run podling's controllers together (Kubernetes' controller manager).

    manager = ControllerManager(client, ControllerConfig(node_monitor_grace_seconds=40))
    manager.start()          # from a running loop; returns at once
    ...
    await manager.stop()     # idempotent; the client stays the caller's

Every controller is an ordinary API client: it reads and writes through ``client`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..client import ApiClient
from .clusterroleaggregation import ClusterRoleAggregationController
from .eventttl import DEFAULT_TTL_SECONDS, EventTTLController
from .namespace import DRAIN_RETRY_SECONDS, NamespaceController
from .nodelifecycle import DEFAULT_GRACE_SECONDS, NodeLifecycleController
from .podgc import PERIOD_SECONDS, QUARANTINE_SECONDS, PodGCController
from .serviceaccounts import RootCAPublisher, ServiceAccountsController


@dataclass(frozen=True)
class ControllerConfig:
    """``node_monitor_grace_seconds``: silence before a node turns Unknown (and its
    ``node_monitor_period``, None: a quarter of the grace, 0.2 s to 5 s);
    ``namespace_retry_seconds``: pause between the passes that drain a namespace;
    ``pod_gc_quarantine_seconds`` / ``pod_gc_period``: how long a missing node is waited
    for before its pods are deleted, and how often PodGC looks (Kubernetes: 40 s, 20 s);
    ``root_ca_pem``: the cluster CA certificate published as ``kube-root-ca.crt`` in every
    namespace ("" publishes nothing); ``event_ttl_seconds``: how long an event is kept after
    its last write (kube-apiserver's ``--event-ttl``, 1 h)."""

    node_monitor_grace_seconds: float = DEFAULT_GRACE_SECONDS
    node_monitor_period: float | None = None
    namespace_retry_seconds: float = DRAIN_RETRY_SECONDS
    pod_gc_quarantine_seconds: float = QUARANTINE_SECONDS
    pod_gc_period: float = PERIOD_SECONDS
    root_ca_pem: str = ""
    event_ttl_seconds: float = DEFAULT_TTL_SECONDS


class ControllerManager:
    """The namespace, node lifecycle, pod GC, event TTL, service account, root CA and
    ClusterRole aggregation controllers over one client."""

    def __init__(self, client: ApiClient, config: ControllerConfig = ControllerConfig()) -> None:
        self.namespaces = NamespaceController(client,
                                              retry_seconds=config.namespace_retry_seconds)
        self.node_lifecycle = NodeLifecycleController(
            client, grace_seconds=config.node_monitor_grace_seconds,
            period=config.node_monitor_period)
        self.pod_gc = PodGCController(client, quarantine_seconds=config.pod_gc_quarantine_seconds,
                                      period=config.pod_gc_period)
        self.event_ttl = EventTTLController(client, ttl_seconds=config.event_ttl_seconds)
        self.service_accounts = ServiceAccountsController(client)
        self.clusterrole_aggregation = ClusterRoleAggregationController(client)
        self.root_ca = RootCAPublisher(client, config.root_ca_pem) if config.root_ca_pem \
            else None

    def start(self) -> None:
        self.namespaces.start()
        self.node_lifecycle.start()
        self.pod_gc.start()
        self.event_ttl.start()
        self.service_accounts.start()
        self.clusterrole_aggregation.start()
        if self.root_ca is not None:
            self.root_ca.start()

    async def stop(self) -> None:
        if self.root_ca is not None:
            await self.root_ca.stop()
        await self.clusterrole_aggregation.stop()
        await self.service_accounts.stop()
        await self.event_ttl.stop()
        await self.pod_gc.stop()
        await self.node_lifecycle.stop()
        await self.namespaces.stop()
