"""A real one-node cluster for agent tests: `podling server` with its local agent.

Images come from an offline registry: the demo busybox and nginx images (built from Debian
packages) are pushed to Debian's docker-registry on 127.0.0.1, and the node's
``registries.yaml`` mirrors docker.io to it, so unmodified manifests (``image: nginx``) work.
Every cluster uses its own node name, runtime dir, bridge and data dir, and is purged after
its tests; the teardown asserts that nothing is left on the host.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest

from manifests import POD_MAX_PIDS
from podling_e2e import node_leftovers, runc_list


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
        return runc_list(self.run_dir)

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()


@contextlib.contextmanager
def one_node_cluster(tmp_path_factory, demo_registry, e2e_start_server, *flags: str):
    """A one-node cluster (server flags ``flags`` added), purged afterwards; the teardown
    asserts that nothing is left on the host."""
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
                              "--cluster-cidr", cidr, "--pod-max-pids", str(POD_MAX_PIDS),
                              *flags, with_agent=True, log_path=log_path)
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
        left = node_leftovers(node, data_dir=data_dir, run_dir=run_dir, bridge=bridge)
        assert purge.returncode == 0 and not left, (purge.stderr, left)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, demo_registry, e2e_start_server):
    """A one-node cluster for a module of tests (unique names per test please)."""
    with one_node_cluster(tmp_path_factory, demo_registry, e2e_start_server) as made:
        yield made


@pytest.fixture(scope="session")
def make_cluster():
    """:func:`one_node_cluster`, for a module that needs other server flags."""
    return one_node_cluster
