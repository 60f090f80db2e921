"""CniNetwork with the real CNI plugins, in network namespaces this test creates (root).

Every test gets its own bridge (``pdt<hex>``), network name, pod CIDR (10.199.<n>.0/24) and
state dir; the fixture's finalizer purges and then asserts that no veth, bridge, iptables
rule or chain, netns or IPAM file of the test is left. Traffic goes only to 127.0.0.1 and to
addresses inside the test's own namespaces.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest
from cni_host import assert_no_leftovers, free_cidr, free_port, sh, veths

from podling.network.cni import CniNetwork
from podling.network.cni_config import CniConfig, default_plugin_dir
from podling.network.interface import PodNetworkInfo, PortMapping

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.access(os.path.join(default_plugin_dir(), "bridge"), os.X_OK),
                       reason="containernetworking-plugins not installed"),
    pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables not installed"),
]

SERVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8); s.settimeout(1.0)
print("ready", flush=True)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.sendall(sys.argv[2].encode()); c.close()
"""

CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(c.recv(100).decode())
"""


def in_ns(ns: str, *argv: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


@dataclass
class Env:
    net: CniNetwork
    cidr: str
    tag: str
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def netns(self, suffix: str) -> tuple[str, str]:
        name = f"podling-t-{self.tag}-{suffix}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        return name, f"/run/netns/{name}"

    def pod(self, suffix: str, *ports: PortMapping) -> PodNetworkInfo:
        return PodNetworkInfo("default", f"pod-{suffix}", f"uid-{self.tag}-{suffix}",
                              f"{self.tag}{suffix}sandbox", tuple(ports))

    def ipam_files(self) -> list[str]:
        d = os.path.join(self.net.config.ipam_dir, self.net.config.network_name)
        return sorted(n for n in os.listdir(d) if n[0].isdigit()) if os.path.isdir(d) else []

    def serve(self, ns: str, port: int, reply: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER,
                                 str(port), reply], stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"


@pytest.fixture
async def env(tmp_path):
    tag = secrets.token_hex(3)
    before = veths()
    cidr = free_cidr(199)
    cfg = CniConfig(state_dir=str(tmp_path / "cni"), pod_cidr=cidr, network_name=f"pdt{tag}",
                    bridge_name=f"pdt{tag}", plugin_timeout=20)
    e = Env(CniNetwork(cfg), cidr, tag)
    try:
        yield e
    finally:
        for proc in e.procs:
            proc.kill()
            proc.wait()
        await e.net.purge()
        for name in e.namespaces:
            sh("ip", "netns", "del", name, check=False)
        await assert_no_leftovers(cfg, tag, cidr, before)


def assert_attached(ns: str, ip: str, cidr: str) -> None:
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
    assert "UP" in in_ns(ns, "ip", "-o", "link", "show", "lo").split("<")[1].split(">")[0]
    eth0 = in_ns(ns, "ip", "-o", "addr", "show", "dev", "eth0")
    assert f"inet {ip}/24" in eth0
    assert "state UP" in in_ns(ns, "ip", "-o", "link", "show", "eth0")
    assert "127.0.0.1/8" in in_ns(ns, "ip", "-o", "addr", "show", "dev", "lo")


async def test_two_pods_talk_hostport_and_teardown(env: Env):
    ns_a, path_a = env.netns("a")
    ns_b, path_b = env.netns("b")
    host_port = free_port()
    pod_a = env.pod("a")
    pod_b = env.pod("b", PortMapping(container_port=8080, host_port=host_port))

    t0 = time.monotonic()
    ips_a = await env.net.setup_pod(path_a, pod_a)
    t1 = time.monotonic()
    ips_b = await env.net.setup_pod(path_b, pod_b)
    t2 = time.monotonic()
    print(f"\nsetup: {1000 * (t1 - t0):.0f} ms (first, creates bridge), "
          f"{1000 * (t2 - t1):.0f} ms (with a hostPort)")

    assert ips_a.primary != ips_b.primary
    assert ips_a.gateway == ips_b.gateway == str(next(ipaddress.ip_network(env.cidr).hosts()))
    assert await env.net.setup_pod(path_a, pod_a) == ips_a  # already attached: same IP
    assert_attached(ns_a, ips_a.primary, env.cidr)
    assert_attached(ns_b, ips_b.primary, env.cidr)
    assert sorted(env.ipam_files()) == sorted([ips_a.primary, ips_b.primary])

    # pod to pod: ICMP and TCP across the bridge
    in_ns(ns_a, "busybox", "ping", "-c", "1", "-W", "2", ips_b.primary)
    env.serve(ns_b, 8080, "hello from b")
    assert in_ns(ns_a, sys.executable, "-c", CLIENT, ips_b.primary, "8080").strip() == \
        "hello from b"
    # hostPort: the host's 127.0.0.1:<hostPort> reaches the listener inside pod b
    assert in_ns_host_client("127.0.0.1", host_port) == "hello from b"

    t3 = time.monotonic()
    await env.net.teardown_pod(path_b, pod_b)
    t4 = time.monotonic()
    await env.net.teardown_pod(path_a, pod_a)
    t5 = time.monotonic()
    print(f"teardown: {1000 * (t4 - t3):.0f} ms (with a hostPort), {1000 * (t5 - t4):.0f} ms")
    assert env.ipam_files() == []
    assert env.net.attached_sandboxes() == []
    assert "eth0" not in in_ns(ns_a, "ip", "-o", "link")
    saved = sh("iptables-save", "-t", "nat")
    assert pod_a.sandbox_id not in saved and pod_b.sandbox_id not in saved
    # what stays is the node's masquerade rule for the pod CIDR (until purge)
    [node_rule] = [r for r in saved.splitlines() if env.net.config.network_name in r]
    assert "MASQUERADE" in saved and f"-s {env.net.config.pod_cidr}" in node_rule
    # a second teardown is a no-op
    await env.net.teardown_pod(path_b, pod_b)
    await env.net.teardown_pod(path_a, pod_a)


def in_ns_host_client(host: str, port: int) -> str:
    """Connect from the host's own namespace (this process) to a loopback address."""
    with socket.create_connection((host, port), timeout=3) as c:
        return c.recv(100).decode()


async def test_teardown_after_netns_deleted_releases_everything(env: Env):
    ns_c, path_c = env.netns("c")
    pod_c = env.pod("c", PortMapping(container_port=80, host_port=free_port()))
    ips = await env.net.setup_pod(path_c, pod_c)
    assert env.ipam_files() == [ips.primary]
    assert pod_c.sandbox_id in sh("iptables-save", "-t", "nat")
    sh("ip", "netns", "del", ns_c)
    env.namespaces.remove(ns_c)

    restarted = CniNetwork(env.net.config)  # an agent restart: only the cache survives
    await restarted.teardown_pod(path_c, env.pod("c"))
    assert env.ipam_files() == []
    assert pod_c.sandbox_id not in sh("iptables-save", "-t", "nat")
    await restarted.teardown_pod(None, env.pod("c"))


async def test_never_set_up_and_concurrent_pods(env: Env):
    await env.net.teardown_pod(None, env.pod("never"))
    names = [env.netns(f"p{i}") for i in range(4)]
    pods = [env.pod(f"p{i}") for i in range(4)]
    start = time.monotonic()
    results = await asyncio.gather(*(env.net.setup_pod(path, pod)
                                     for (_, path), pod in zip(names, pods)))
    mid = time.monotonic()
    assert len({r.primary for r in results}) == 4
    await asyncio.gather(*(env.net.teardown_pod(path, pod)
                           for (_, path), pod in zip(names, pods)))
    print(f"\n4 pods concurrently: setup {1000 * (mid - start):.0f} ms, "
          f"teardown {1000 * (time.monotonic() - mid):.0f} ms")
    assert env.ipam_files() == []


async def test_ready_and_purge_of_attached_pods(env: Env):
    assert await env.net.ready()
    _, path = env.netns("d")
    pod = env.pod("d", PortMapping(container_port=80, host_port=free_port()))
    await env.net.setup_pod(path, pod)
    await env.net.purge()  # with a pod still attached: everything goes
    assert not os.path.exists(f"/sys/class/net/{env.net.config.bridge_name}")
    assert pod.sandbox_id not in sh("iptables-save", "-t", "nat")
