"""The NetworkPlugin protocol: how the agent gives a pod sandbox its network.

The agent (through the runtime) creates the pod's network namespace and hands its path to
``setup_pod``; the plugin attaches interfaces, assigns addresses and maps host ports. Life of
one pod's network, as the agent drives it::

    (none) --setup_pod--> ATTACHED --teardown_pod--> (none)
       ^                     |  setup_pod failed: the plugin has already undone its partial work
       +---------------------+  teardown_pod is still safe to call (idempotent)

Calls for one pod are serialized by the caller (the pod worker); calls for different pods may
run concurrently.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol, runtime_checkable

_PROTOCOLS = ("TCP", "UDP", "SCTP")


class NetworkError(Exception):
    """A network operation failed; ``str(err)`` is the message to show the user.

    ``code`` and ``details`` carry a CNI plugin's error code and details when a plugin reported
    them (see the CNI spec's well-known error codes), else None / "".
    """

    def __init__(self, message: str, *, code: int | None = None, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details


@dataclass(frozen=True)
class PortMapping:
    """One hostPort of a pod: traffic to ``host_ip:host_port`` goes to ``container_port``.

    ``protocol`` is Kubernetes' spelling (TCP, UDP, SCTP); ``host_ip`` "" means every address.
    """

    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def __post_init__(self) -> None:
        if self.protocol.upper() not in _PROTOCOLS:
            raise ValueError(f"unsupported protocol {self.protocol!r}")
        for port in (self.container_port, self.host_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range 1-65535")
        if self.host_ip:
            ipaddress.ip_address(self.host_ip)


@dataclass(frozen=True)
class PodNetworkInfo:
    """Who the network is for. ``sandbox_id`` is the CNI container ID (the pause container's
    ID): it must be unique per sandbox and stay the same between setup and teardown."""

    namespace: str
    name: str
    uid: str
    sandbox_id: str
    port_mappings: tuple[PortMapping, ...] = ()


@dataclass(frozen=True)
class PodIPs:
    """The addresses given to a pod: ``ips`` without prefix length, primary first."""

    ips: tuple[str, ...]
    gateway: str | None = None
    prefix_lengths: tuple[int, ...] = field(default=())

    @property
    def primary(self) -> str | None:
        """The pod's ``status.podIP`` (None when the plugin assigned no address)."""
        return self.ips[0] if self.ips else None


@runtime_checkable
class NetworkPlugin(Protocol):
    """Attach pods to the node's pod network. Implementations: CniNetwork, FakeNetwork."""

    async def setup_pod(self, netns_path: str, pod: PodNetworkInfo) -> PodIPs:
        """Attach the pod in ``netns_path`` (``eth0`` and ``lo`` up, address, routes, hostPorts).

        On failure raises NetworkError after undoing what it did (addresses released); the
        caller may retry or call ``teardown_pod``. Cancellation: the plugin process is killed
        and the partial attachment is undone before CancelledError propagates.
        """
        ...

    async def teardown_pod(self, netns_path: str | None, pod: PodNetworkInfo) -> None:
        """Detach the pod and release its addresses and hostPorts.

        Idempotent: a netns that is gone (or None), or a pod that was never set up, is success.
        The IPAM allocation is always released, even when the netns is gone. Raises
        NetworkError only when something could not be cleaned up; retrying is safe.
        """
        ...

    async def ready(self) -> bool:
        """True when pods can be set up: plugins present and the network config valid."""
        ...

    async def collect_garbage(self, live: Callable[[], Awaitable[set[str]]]) -> list[str]:
        """Release the attachments of sandboxes that ``live()`` does not name (it is asked
        after the attachments are listed, so a sandbox being made meanwhile is kept:
        callers record a sandbox before attaching it); the sandbox ids released."""
        ...
