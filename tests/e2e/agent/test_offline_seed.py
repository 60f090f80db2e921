"""`make up`'s image import, then the seed with no container registry: a fresh data dir gets
busybox and nginx built from Debian packages (``python -m podling.images.offline``, what
scripts/podling-up runs; here with the archives the ``demo_registry`` fixture built), `podling server` starts there with no registries.yaml (the default:
docker.io through ``@nodes``, this node first), and the real kubectl applies examples/seed/.
Every seed pod that needs no other node reaches its state, and nothing is asked of any
registry but this node: the server's log never names docker.io's endpoint.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from kubectl_util import get_json, wait_until
from podling_e2e import node_leftovers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SEED = os.path.join(REPO, "examples", "seed")
# pinned-web (nodeName 172.31.2.11) and selector-web (a 172.31.2.12 selector) need other nodes
ONE_NODE = {"aliases": "Succeeded", "host-hooks": "Running", "shared-pid": "Running"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_seed_runs_offline_after_the_install_time_import(tmp_path, demo_registry,
                                                         e2e_start_server):
    data_dir = str(tmp_path / "data")
    # the archives the demo_registry fixture built from Debian's packages (no second build,
    # no second download); building them is build_demo's tests' job
    archives = os.path.join(os.path.dirname(demo_registry), "demo")
    first = _run("-m", "podling.images.offline", "--data-dir", data_dir,
                 "--archives", archives)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": imported (") == 2, first.stdout
    again = _run("-m", "podling.images.offline", "--data-dir", data_dir)
    assert again.returncode == 0 and again.stdout.count("already in the store") == 2

    node = _LocalNode.start(e2e_start_server, tmp_path, data_dir, "os")
    server, log_path = node.server, node.log_path
    try:
        assert not os.path.exists(os.path.join(data_dir, "registries.yaml"))
        server.kubectl("apply", "-f", SEED)

        def phases() -> dict[str, str]:
            return {p["metadata"]["name"]: p.get("status", {}).get("phase", "")
                    for p in get_json(server, "pods")["items"]}
        try:
            wait_until(lambda: all(phases().get(n) == want for n, want in ONE_NODE.items()),
                       timeout=120, interval=0.5, message="the one-node seed pods")
        except AssertionError:
            with open(log_path) as f:
                print(phases(), f.read()[-5000:])
            raise
        with open(log_path) as f:
            log = f.read()
        assert "registry-1.docker.io" not in log
        # imagePullPolicy Always (the seed's :latest images) resolved by this node's store
        assert "docker.io/library/nginx:latest is up to date" in log
        assert "docker.io/library/busybox:latest is up to date" in log
    finally:
        node.remove()


def test_a_fresh_server_imports_the_offline_images_without_network(tmp_path, monkeypatch,
                                                                   e2e_start_server):
    """`podling server` on a fresh data dir (no `make up`) imports busybox in the background
    from busybox-static, with no network: a busybox pod then runs with no registries.yaml and
    nothing asked of docker.io. nginx needs .debs kept by `make up`: without them the log
    says what is missing, and nothing is downloaded."""
    monkeypatch.setenv("PODLING_DISABLE_OFFLINE_IMAGES", "false")
    data_dir = str(tmp_path / "data")
    node = _LocalNode.start(e2e_start_server, tmp_path, data_dir, "fs")
    server, log_path = node.server, node.log_path

    def log() -> str:
        with open(log_path) as f:
            return f.read()
    try:
        wait_until(lambda: "offline images: docker.io/library/busybox:latest: imported" in log(),
                   timeout=60, interval=0.5, message="busybox imported")
        wait_until(lambda: "offline images: docker.io/library/nginx:latest: no nginx .debs"
                   in log(), timeout=60, interval=0.5, message="the missing nginx .debs")
        assert not os.path.exists(os.path.join(data_dir, "offline", "debs")) or \
            not os.listdir(os.path.join(data_dir, "offline", "debs"))
        server.kubectl("run", "fresh", "--image=busybox", "--restart=Never",
                       "--image-pull-policy=IfNotPresent", "--", "sleep", "3600")
        wait_until(lambda: get_json(server, "pod", "fresh").get("status", {}).get("phase")
                   == "Running", timeout=60, interval=0.5, message="fresh Running")
        assert "registry-1.docker.io" not in log()
    finally:
        node.remove()


@dataclass
class _LocalNode:
    """A `podling server` with its local agent on a node of its own (name, run dir, bridge
    unique to the test run), its output kept in ``log_path``."""

    server: Any
    name: str
    data_dir: str
    run_dir: str
    bridge: str
    log_path: str

    @classmethod
    def start(cls, e2e_start_server, tmp_path, data_dir: str, short: str) -> "_LocalNode":
        tag = secrets.token_hex(2)
        name, run_dir, bridge = f"p{short}-{tag}", f"/run/podling-{short}-{tag}", \
            f"p{short}{tag}"
        log_path = str(tmp_path / "server.log")
        server = e2e_start_server(
            data_dir, str(tmp_path / "home"), "--node-name", name, "--run-dir", run_dir,
            "--bridge-name", bridge,
            "--cluster-cidr", f"10.{100 + secrets.randbelow(100)}.0.0/16",
            with_agent=True, log_path=log_path)
        return cls(server, name, data_dir, run_dir, bridge, log_path)

    def remove(self) -> None:
        """Delete the pods, stop the server, purge the node; assert nothing is left."""
        self.server.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=60s",
                            check=False, timeout=90)
        self.server.kill()
        purge = subprocess.run(
            [sys.executable, "-m", "podling", "purge", "--data-dir", self.data_dir,
             "--run-dir", self.run_dir, "--node-name", self.name, "--bridge-name", self.bridge],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        left = node_leftovers(self.name, data_dir=self.data_dir, run_dir=self.run_dir,
                              bridge=self.bridge)
        assert purge.returncode == 0 and not left, (purge.stderr, left)
