"""Host plumbing shared by the tests that run the real CNI plugins (root): shell commands,
free addresses, and the leftover check every such test ends with.

A test owns a tag (random hex) that is part of its bridge, network and namespace names, and
a pod CIDR of its own; :func:`leftovers` lists what of it remains on the host (bridge,
veths created since the test began, iptables rules mentioning it, namespaces, state dir).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import time

from podling.network.cni_config import CniConfig, default_plugin_dir

NETNS_CLEANUP_TIMEOUT = 10.0


def sh(*argv: str, check: bool = True) -> str:
    """Run a command (30 s at most); its stdout. AssertionError when it fails and ``check``."""
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} failed: {res.stderr}")
    return res.stdout


def veths() -> set[str]:
    """The names of the host's veth interfaces."""
    return {line.split(":")[1].strip().split("@")[0]
            for line in sh("ip", "-o", "link", "show", "type", "veth").splitlines()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cidr(second_octet: int) -> str:
    """A 10.<second_octet>.<n>.0/24 no host route mentions."""
    routes = sh("ip", "-4", "route", "show", "table", "all")
    for _ in range(50):
        cidr = f"10.{second_octet}.{secrets.randbelow(250) + 1}.0/24"
        if cidr.split("/")[0][:-1] not in routes:
            return cidr
    raise AssertionError(f"no free 10.{second_octet}.x.0/24")


def cni_missing() -> str | None:
    """Why the real CNI plugins cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(os.path.join(default_plugin_dir(), "bridge"), os.X_OK):
        return "containernetworking-plugins not installed"
    if shutil.which("iptables") is None:
        return "iptables not installed"
    return None


def leftovers(config: CniConfig, tag: str, cidr: str, veths_before: set[str]) -> list[str]:
    """What of a test's network is still on the host (empty: nothing)."""
    out = []
    if os.path.exists(f"/sys/class/net/{config.bridge_name}"):
        out.append(f"bridge {config.bridge_name}")
    if veths() - veths_before:
        out.append(f"veths {veths() - veths_before}")
    subnet = cidr.rsplit(".", 1)[0] + "."
    rules = [line for line in sh("iptables-save").splitlines()
             if config.network_name in line or tag in line or subnet in line]
    if rules:
        out.append(f"iptables {rules}")
    namespaces = [n for n in sh("ip", "netns", "list").split() if tag in n]
    if namespaces:
        out.append(f"netns {namespaces}")
    if os.path.exists(config.state_dir):
        out.append(f"state dir {os.listdir(config.state_dir)}")
    return out


async def assert_no_leftovers(config: CniConfig, tag: str, cidr: str,
                              veths_before: set[str]) -> None:
    """Fail unless :func:`leftovers` becomes empty within NETNS_CLEANUP_TIMEOUT: the kernel
    destroys a deleted namespace (and the veth ends in it) asynchronously."""
    deadline = time.monotonic() + NETNS_CLEANUP_TIMEOUT
    while (left := leftovers(config, tag, cidr, veths_before)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not left, f"leftovers after the test: {left}"
