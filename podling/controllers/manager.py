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
from .namespace import DRAIN_RETRY_SECONDS, NamespaceController
from .nodelifecycle import DEFAULT_GRACE_SECONDS, NodeLifecycleController


@dataclass(frozen=True)
class ControllerConfig:
    """``node_monitor_grace_seconds``: silence before a node turns Unknown (and its
    ``node_monitor_period``, None: a quarter of the grace, 0.2 s to 5 s);
    ``namespace_retry_seconds``: pause between the passes that drain a namespace."""

    node_monitor_grace_seconds: float = DEFAULT_GRACE_SECONDS
    node_monitor_period: float | None = None
    namespace_retry_seconds: float = DRAIN_RETRY_SECONDS


class ControllerManager:
    """The namespace and node lifecycle controllers over one client."""

    def __init__(self, client: ApiClient, config: ControllerConfig = ControllerConfig()) -> None:
        self.namespaces = NamespaceController(client,
                                              retry_seconds=config.namespace_retry_seconds)
        self.node_lifecycle = NodeLifecycleController(
            client, grace_seconds=config.node_monitor_grace_seconds,
            period=config.node_monitor_period)

    def start(self) -> None:
        self.namespaces.start()
        self.node_lifecycle.start()

    async def stop(self) -> None:
        await self.node_lifecycle.stop()
        await self.namespaces.stop()
