"""The NetworkPlugin conformance suite against FakeNetwork and CniNetwork.

The CNI variant needs root, the containernetworking plugins and iptables. Each test gets its
own bridge and network name (``pdc<hex>``), a free 10.198.<n>.0/24, a state dir and its own
network namespaces (``podling-c-<hex>-…``); afterwards the plugin is purged, the namespaces
deleted, and the test fails if any namespace, veth, the bridge, an iptables rule or chain
mentioning it, or its state dir is left.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import AsyncIterator

import pytest
from cni_host import assert_no_leftovers, cni_missing, free_cidr, free_port, sh, veths

pytest.register_assert_rewrite("podling.network.testing.conformance")

from podling.network.cni import CniNetwork  # noqa: E402
from podling.network.cni_config import CniConfig  # noqa: E402
from podling.network.fake import FakeNetwork  # noqa: E402
from podling.network.interface import NetworkPlugin, PodNetworkInfo, PortMapping  # noqa: E402
from podling.network.testing.conformance import CHECKS, Check  # noqa: E402

class FakeHarness:
    def __init__(self) -> None:
        self.cidr = "10.42.0.0/24"
        self.fake = FakeNetwork(self.cidr)
        self.network: NetworkPlugin = self.fake
        self.tag = secrets.token_hex(3)

    def new_netns(self, suffix: str) -> str:
        return f"/run/netns/fake-{self.tag}-{suffix}"

    def delete_netns(self, path: str) -> None:
        pass  # the fake never looks at namespaces

    def pod(self, suffix: str, *ports: PortMapping) -> PodNetworkInfo:
        return PodNetworkInfo("default", f"pod-{suffix}", f"uid-{suffix}", f"sb-{suffix}",
                              tuple(ports))

    def free_port(self) -> int:
        return free_port()

    async def addresses_in_use(self) -> set[str]:
        return set(self.fake.attached.values())


# -- CNI ---------------------------------------------------------------------------------------


class CniHarness:
    def __init__(self, state_dir: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.cidr = free_cidr(198)
        self.config = CniConfig(state_dir=str(state_dir), pod_cidr=self.cidr,
                                network_name=f"pdc{self.tag}", bridge_name=f"pdc{self.tag}",
                                plugin_timeout=20)
        self.network: NetworkPlugin = CniNetwork(self.config)
        self.namespaces: list[str] = []
        self.veths_before = veths()

    def new_netns(self, suffix: str) -> str:
        name = f"podling-c-{self.tag}-{suffix}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        return f"/run/netns/{name}"

    def delete_netns(self, path: str) -> None:
        name = os.path.basename(path)
        sh("ip", "netns", "del", name)
        self.namespaces.remove(name)

    def pod(self, suffix: str, *ports: PortMapping) -> PodNetworkInfo:
        return PodNetworkInfo("default", f"pod-{suffix}", f"uid-{self.tag}-{suffix}",
                              f"{self.tag}{suffix}sandbox", tuple(ports))

    def free_port(self) -> int:
        return free_port()

    async def addresses_in_use(self) -> set[str]:
        d = os.path.join(self.config.ipam_dir, self.config.network_name)
        return {n for n in os.listdir(d) if n[0].isdigit()} if os.path.isdir(d) else set()

    async def close(self) -> None:
        assert isinstance(self.network, CniNetwork)
        try:
            await self.network.purge()
        finally:
            for name in self.namespaces:
                sh("ip", "netns", "del", name, check=False)
        await assert_no_leftovers(self.config, self.tag, self.cidr, self.veths_before)


@pytest.fixture(params=["fake", "cni"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "fake":
        yield FakeHarness()
        return
    missing = cni_missing()
    if missing:
        pytest.skip(missing)
    h = CniHarness(tmp_path / "cni")
    try:
        yield h
    finally:
        await h.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_network_conformance(check: Check, harness: FakeHarness | CniHarness) -> None:
    await check(harness)  # type: ignore[arg-type]


async def test_cni_garbage_collection_removes_old_reservations_nobody_owns(tmp_path) -> None:
    """A plugin killed between creating a reservation and writing its owner leaves an empty
    file, which DEL never finds: collected once a minute old, not before."""
    missing = cni_missing()
    if missing:
        pytest.skip(missing)
    h = CniHarness(tmp_path / "cni")
    try:
        pod = h.pod("own")
        ips = await h.network.setup_pod(h.new_netns("own"), pod)
        net_dir = os.path.join(h.config.ipam_dir, h.config.network_name)
        ownerless = os.path.join(net_dir, h.cidr.rsplit(".", 1)[0] + ".200")
        open(ownerless, "w").close()

        async def live() -> set[str]:
            return {pod.sandbox_id}

        assert await h.network.collect_garbage(live) == []
        assert await h.addresses_in_use() == {ips.primary, os.path.basename(ownerless)}
        old = time.time() - 61
        os.utime(ownerless, (old, old))
        await h.network.collect_garbage(live)
        assert await h.addresses_in_use() == {ips.primary}
    finally:
        await h.close()
