"""FakeNetwork: an in-memory NetworkPlugin for the agent's unit tests.

It hands out addresses from a CIDR like host-local (gateway = first host, pods from the
second), records every call, and fails on demand::

    net = FakeNetwork("10.42.0.0/24")
    net.fail_next("setup_pod", NetworkError("boom"))   # the next setup_pod raises it
    ips = await net.setup_pod("/run/netns/x", pod)     # -> PodIPs(("10.42.0.2",), "10.42.0.1")
    net.calls                                          # [Call("setup_pod", "/run/netns/x", pod)]

Same contract as CniNetwork: teardown is idempotent and releases the address; setup of an
already attached sandbox returns its existing address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Awaitable, Callable

from podling.network.interface import NetworkError, PodIPs, PodNetworkInfo


@dataclass(frozen=True)
class Call:
    """One recorded call: method name, netns path and pod."""

    method: str
    netns_path: str | None
    pod: PodNetworkInfo | None


class FakeNetwork:
    """NetworkPlugin fake with a call log, error injection and a simple IPAM."""

    def __init__(self, cidr: str = "10.42.0.0/24", *, ready: bool = True) -> None:
        self._net = ipaddress.ip_network(cidr)
        hosts = self._net.hosts()
        self.gateway = str(next(hosts))
        self._free = [str(ip) for ip in hosts]
        self.attached: dict[str, str] = {}  # sandbox id -> IP
        self.netns: dict[str, str] = {}  # sandbox id -> netns path
        self.calls: list[Call] = []
        self.is_ready = ready
        self._errors: dict[str, list[BaseException]] = {}

    def fail_next(self, method: str, error: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``error`` (after being logged,
        before changing any state)."""
        self._errors.setdefault(method, []).extend([error] * times)

    def methods(self) -> list[str]:
        """The names of the calls made so far, in order."""
        return [c.method for c in self.calls]

    def _record(self, method: str, netns: str | None, pod: PodNetworkInfo | None) -> None:
        self.calls.append(Call(method, netns, pod))
        pending = self._errors.get(method)
        if pending:
            raise pending.pop(0)

    async def setup_pod(self, netns_path: str, pod: PodNetworkInfo) -> PodIPs:
        """Allocate (or return the existing) address for ``pod.sandbox_id``."""
        self._record("setup_pod", netns_path, pod)
        ip = self.attached.get(pod.sandbox_id)
        if ip is None:
            if not self._free:
                raise NetworkError(f"no IP addresses available in range set: {self._net}")
            ip = self._free.pop(0)
            self.attached[pod.sandbox_id] = ip
        self.netns[pod.sandbox_id] = netns_path
        return PodIPs(ips=(ip,), gateway=self.gateway, prefix_lengths=(self._net.prefixlen,))

    async def teardown_pod(self, netns_path: str | None, pod: PodNetworkInfo) -> None:
        """Release the sandbox's address; a no-op when it has none."""
        self._record("teardown_pod", netns_path, pod)
        ip = self.attached.pop(pod.sandbox_id, None)
        self.netns.pop(pod.sandbox_id, None)
        if ip is not None:
            self._free.append(ip)
            self._free.sort(key=ipaddress.ip_address)

    async def ready(self) -> bool:
        self._record("ready", None, None)
        return self.is_ready

    async def collect_garbage(self, live: Callable[[], Awaitable[set[str]]]) -> list[str]:
        self._record("collect_garbage", None, None)
        doomed = sorted(set(self.attached) - await live())
        for sid in doomed:
            self._free.append(self.attached.pop(sid))
            self.netns.pop(sid, None)
        return doomed

    async def purge(self) -> None:
        """Forget every attachment (like CniNetwork.purge)."""
        self._record("purge", None, None)
        for sandbox_id in list(self.attached):
            self._free.append(self.attached.pop(sandbox_id))
        self._free.sort(key=ipaddress.ip_address)
        self.netns.clear()
