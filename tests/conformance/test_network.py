"""The NetworkPlugin conformance suite against FakeNetwork and CniNetwork.

The CNI variant needs root, the containernetworking plugins and iptables. Each test gets its
own bridge and network name (``pdc<hex>``), a free 10.198.<n>.0/24, a state dir and its own
network namespaces (``podling-c-<hex>-…``); afterwards the plugin is purged, the namespaces
deleted, and the test fails if any namespace, veth, the bridge, an iptables rule or chain
mentioning it, or its state dir is left.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

pytest.register_assert_rewrite("podling.network.testing.conformance")

from podling.network.cni import CniNetwork  # noqa: E402
from podling.network.cni_config import CniConfig, default_plugin_dir  # noqa: E402
from podling.network.fake import FakeNetwork  # noqa: E402
from podling.network.interface import NetworkPlugin, PodNetworkInfo, PortMapping  # noqa: E402
from podling.network.testing.conformance import CHECKS, Check  # noqa: E402

NETNS_CLEANUP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def sh(*argv: str, check: bool = True) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} failed: {res.stderr}")
    return res.stdout


def veths() -> set[str]:
    return {line.split(":")[1].strip().split("@")[0]
            for line in sh("ip", "-o", "link", "show", "type", "veth").splitlines()}


def free_cidr() -> str:
    routes = sh("ip", "-4", "route", "show", "table", "all")
    for _ in range(50):
        cidr = f"10.198.{secrets.randbelow(250) + 1}.0/24"
        if cidr.split("/")[0][:-1] not in routes:
            return cidr
    raise AssertionError("no free 10.198.x.0/24")


def _cni_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(os.path.join(default_plugin_dir(), "bridge"), os.X_OK):
        return "containernetworking-plugins not installed"
    if shutil.which("iptables") is None:
        return "iptables not installed"
    return None


class CniHarness:
    def __init__(self, state_dir: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.cidr = free_cidr()
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

    def leftovers(self) -> list[str]:
        cfg, out = self.config, []
        if os.path.exists(f"/sys/class/net/{cfg.bridge_name}"):
            out.append(f"bridge {cfg.bridge_name}")
        if veths() - self.veths_before:
            out.append(f"veths {veths() - self.veths_before}")
        subnet = self.cidr.rsplit(".", 1)[0] + "."
        rules = [line for line in sh("iptables-save").splitlines()
                 if cfg.network_name in line or self.tag in line or subnet in line]
        if rules:
            out.append(f"iptables {rules}")
        namespaces = [n for n in sh("ip", "netns", "list").split() if self.tag in n]
        if namespaces:
            out.append(f"netns {namespaces}")
        if os.path.exists(cfg.state_dir):
            out.append(f"state dir {os.listdir(cfg.state_dir)}")
        return out

    async def close(self) -> None:
        assert isinstance(self.network, CniNetwork)
        try:
            await self.network.purge()
        finally:
            for name in self.namespaces:
                sh("ip", "netns", "del", name, check=False)
        # the kernel destroys a deleted namespace (and its veth ends) asynchronously
        deadline = time.monotonic() + NETNS_CLEANUP_TIMEOUT
        while (left := self.leftovers()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not left, f"leftovers after the test: {left}"


@pytest.fixture(params=["fake", "cni"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "fake":
        yield FakeHarness()
        return
    missing = _cni_missing()
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
