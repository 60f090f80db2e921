"""A real one-node cluster for agent tests: `podling server` with its local agent.

Images come from an offline registry: the demo busybox and nginx images (built from Debian
packages) are pushed to Debian's docker-registry on 127.0.0.1, and the node's
``registries.yaml`` mirrors docker.io to it, so unmodified manifests (``image: nginx``) work.
Every cluster uses its own node name, runtime dir, bridge and data dir, and is purged after
its tests; the teardown asserts that nothing is left on the host.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("agent tests need root")


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory):
    """A running registry-demo: returns the registries.yaml path mirroring docker.io."""
    _need_root()
    base = tmp_path_factory.mktemp("registry")
    registries = base / "registries.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "podling", "image", "--registries", str(registries),
         "registry-demo", str(base / "demo"), "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + 180
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "mirrored in" in line:
            break
    else:
        process.kill()
    if not registries.exists():
        process.kill()
        process.wait()
        raise AssertionError("registry-demo did not start:\n" + "".join(seen))
    yield str(registries)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Cluster:
    """One server + local agent; ``kubectl`` runs the real kubectl against it."""

    def __init__(self, server, *, node: str, run_dir: str, bridge: str, log_path: str):
        self.server = server
        self.node = node
        self.run_dir = run_dir
        self.bridge = bridge
        self.log_path = log_path

    @property
    def data_dir(self) -> str:
        return self.server.data_dir

    def kubectl(self, *args, **kw):
        return self.server.kubectl(*args, **kw)

    def apply(self, manifest: str):
        return self.kubectl("apply", "-f", "-", input=manifest)

    def runc_list(self) -> list[str]:
        out = subprocess.run(["runc", "--root", os.path.join(self.run_dir, "runtime", "runc"),
                              "list", "-q"], capture_output=True, text=True, timeout=10)
        return out.stdout.split()

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()


def _leftovers(cluster: Cluster) -> list[str]:
    problems = []
    if cluster.runc_list():
        problems.append(f"runc containers: {cluster.runc_list()}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if cluster.data_dir in line
                  or cluster.run_dir in line]
    if mounts:
        problems.append(f"mounts: {mounts}")
    if subprocess.run(["ip", "link", "show", cluster.bridge], capture_output=True).returncode == 0:
        problems.append(f"bridge {cluster.bridge}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    tagged = [r for r in rules.splitlines() if f"podling-{cluster.node}" in r]
    if tagged:
        problems.append(f"iptables: {tagged[:3]}")
    procs = subprocess.run(["pgrep", "-af", cluster.run_dir], capture_output=True, text=True)
    alive = [p for p in procs.stdout.splitlines() if "pgrep" not in p]
    if alive:
        problems.append(f"processes: {alive[:3]}")
    return problems


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, demo_registry, e2e_start_server):
    """A one-node cluster for a module of tests (unique names per test please)."""
    _need_root()
    tag = secrets.token_hex(3)
    base = tmp_path_factory.mktemp("cluster")
    data_dir = str(base / "data")
    os.makedirs(data_dir)
    shutil.copy(demo_registry, os.path.join(data_dir, "registries.yaml"))
    node, run_dir, bridge = f"pdl-{tag}", f"/run/podling-test-{tag}", f"pdt{tag}"
    cidr = f"10.{100 + secrets.randbelow(100)}.0.0/16"  # never the routes of another cluster
    log_path = str(base / "server.log")
    server = e2e_start_server(data_dir, str(base / "home"), "--node-name", node,
                              "--run-dir", run_dir, "--bridge-name", bridge,
                              "--cluster-cidr", cidr, with_agent=True, log_path=log_path)
    cluster = Cluster(server, node=node, run_dir=run_dir, bridge=bridge, log_path=log_path)
    cluster.cidr = cidr
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "pods", "--all", "--all-namespaces", "--wait=true",
                        "--timeout=60s", check=False, timeout=90)
        server.kill()
        purge = subprocess.run(
            [sys.executable, "-m", "podling", "server", "--purge", "--data-dir", data_dir,
             "--run-dir", run_dir, "--node-name", node, "--bridge-name", bridge],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        left = _leftovers(cluster)
        assert purge.returncode == 0 and not left, (purge.stderr, left)
