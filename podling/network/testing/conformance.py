"""The NetworkPlugin conformance suite (docs/architecture.md §3): every implementation passes it.

A check is ``async def check_x(h: NetworkHarness)``. The harness supplies a fresh plugin
for the pod CIDR ``h.cidr``, makes network namespaces (``new_netns`` returns the path;
``delete_netns`` removes one behind the plugin's back), names pods (``pod``), and reports
which pod addresses the plugin holds (``addresses_in_use``). The runner creates one harness
per check; a real harness's teardown must leave nothing behind (namespaces, veths, bridge,
iptables rules, state). Nothing here imports pytest.

The contract checked::

    ready() is True for a working plugin
    setup_pod(netns, pod) → PodIPs: primary address in the CIDR, one per pod, distinct;
        again for the same sandbox and netns → the same address
    teardown_pod releases the address; again (or for a pod never set up, or with netns None)
        is success; after the netns is gone it is success too and still releases the address
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Awaitable, Callable, Protocol

from ..interface import NetworkPlugin, PodIPs, PodNetworkInfo, PortMapping

TIMEOUT = 60.0


class NetworkHarness(Protocol):
    network: NetworkPlugin
    cidr: str

    def new_netns(self, suffix: str) -> str:
        """Create a network namespace; its path."""
        ...

    def delete_netns(self, path: str) -> None:
        """Remove a namespace made by ``new_netns`` (as when a sandbox dies)."""
        ...

    def pod(self, suffix: str, *ports: PortMapping) -> PodNetworkInfo:
        """A pod with a unique sandbox ID per ``suffix``."""
        ...

    def free_port(self) -> int:
        """A host port nothing uses."""
        ...

    async def addresses_in_use(self) -> set[str]:
        """Pod addresses the plugin has allocated and not released."""
        ...


Check = Callable[[NetworkHarness], Awaitable[None]]


async def _setup(h: NetworkHarness, path: str, pod: PodNetworkInfo) -> PodIPs:
    return await asyncio.wait_for(h.network.setup_pod(path, pod), TIMEOUT)


async def _teardown(h: NetworkHarness, path: str | None, pod: PodNetworkInfo) -> None:
    await asyncio.wait_for(h.network.teardown_pod(path, pod), TIMEOUT)


def _in_cidr(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


async def check_ready(h: NetworkHarness) -> None:
    assert await h.network.ready() is True


async def check_setup_returns_an_address_in_the_cidr(h: NetworkHarness) -> None:
    ips = await _setup(h, h.new_netns("a"), h.pod("a"))
    assert ips.primary is not None and _in_cidr(ips.primary, h.cidr), ips
    assert ips.primary == ips.ips[0]
    if ips.gateway is not None:
        assert _in_cidr(ips.gateway, h.cidr) and ips.gateway != ips.primary
    assert await h.addresses_in_use() == {ips.primary}


async def check_pods_get_distinct_addresses(h: NetworkHarness) -> None:
    pods = [(h.new_netns(f"p{i}"), h.pod(f"p{i}")) for i in range(3)]
    results = await asyncio.gather(*(_setup(h, path, pod) for path, pod in pods))
    addresses = {r.primary for r in results}
    assert len(addresses) == 3, results
    assert await h.addresses_in_use() == addresses
    await asyncio.gather(*(_teardown(h, path, pod) for path, pod in pods))
    assert await h.addresses_in_use() == set()


async def check_setup_again_returns_the_same_address(h: NetworkHarness) -> None:
    path, pod = h.new_netns("a"), h.pod("a")
    first = await _setup(h, path, pod)
    again = await _setup(h, path, pod)
    assert again.primary == first.primary
    assert await h.addresses_in_use() == {first.primary}


async def check_teardown_releases_and_is_idempotent(h: NetworkHarness) -> None:
    path, pod = h.new_netns("a"), h.pod("a")
    await _setup(h, path, pod)
    await _teardown(h, path, pod)
    assert await h.addresses_in_use() == set()
    await _teardown(h, path, pod)
    await _teardown(h, None, pod)
    assert await h.addresses_in_use() == set()


async def check_teardown_of_a_pod_never_set_up(h: NetworkHarness) -> None:
    await _teardown(h, None, h.pod("never"))
    await _teardown(h, h.new_netns("never"), h.pod("never"))
    assert await h.addresses_in_use() == set()


async def check_missing_netns_is_success(h: NetworkHarness) -> None:
    path, pod = h.new_netns("gone"), h.pod("gone")
    await _setup(h, path, pod)
    h.delete_netns(path)
    await _teardown(h, path, pod)
    assert await h.addresses_in_use() == set()
    await _teardown(h, path, pod)


async def check_pod_with_a_host_port(h: NetworkHarness) -> None:
    port = h.free_port()
    path = h.new_netns("hp")
    pod = h.pod("hp", PortMapping(container_port=80, host_port=port))
    ips = await _setup(h, path, pod)
    assert ips.primary is not None
    await _teardown(h, path, pod)
    again = h.pod("hp2", PortMapping(container_port=80, host_port=port))
    path2 = h.new_netns("hp2")  # the port is free for the next pod
    assert (await _setup(h, path2, again)).primary is not None
    await _teardown(h, path2, again)
    assert await h.addresses_in_use() == set()


async def check_garbage_collection_releases_only_dead_sandboxes(h: NetworkHarness) -> None:
    kept, dead = h.pod("kept"), h.pod("dead")
    kept_ips = await _setup(h, h.new_netns("kept"), kept)
    await _setup(h, h.new_netns("dead"), dead)
    asked: list[str] = []

    async def live() -> set[str]:
        asked.append("live")
        return {kept.sandbox_id}

    assert await h.network.collect_garbage(live) == [dead.sandbox_id]
    assert asked == ["live"] and await h.addresses_in_use() == {kept_ips.primary}
    assert await h.network.collect_garbage(live) == []


CHECKS: list[Check] = [
    check_ready, check_setup_returns_an_address_in_the_cidr,
    check_pods_get_distinct_addresses, check_setup_again_returns_the_same_address,
    check_teardown_releases_and_is_idempotent, check_teardown_of_a_pod_never_set_up,
    check_missing_netns_is_success, check_pod_with_a_host_port,
    check_garbage_collection_releases_only_dead_sandboxes,
]
