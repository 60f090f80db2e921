"""The README's first command on a fresh clone, offline: `git clone` of this repository, then
what `make up` runs once the apt packages and the venv are there (`scripts/podling-up`: the
install-time image import, then `podling server` in the background), then the real kubectl
applies the clone's `examples/seed/`. Every seed pod that needs no other node reaches its
state, and no registry but this node is ever asked (the server's log never names docker.io's
endpoint). `make up`'s apt and pip steps are left out: they need Debian's mirror and PyPI,
which a test must not reach; the venv is this checkout's, running the clone's code.

The images come from the archives the ``demo_registry`` fixture built from Debian's packages
(``PODLING_OFFLINE_ARCHIVES``: what a user who built them on another machine passes). A second
node joining and pulling from the first is test_node_mirror.py's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest
from kubectl_util import wait_until
from podling_e2e import REPO, node_leftovers

ONE_NODE = {"aliases": "Succeeded", "host-hooks": "Running", "shared-pid": "Running"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("git"),
                                reason="needs root and git")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_up_on_a_fresh_clone_runs_the_seed_offline(tmp_path, demo_registry):
    clone, data_dir = str(tmp_path / "clone"), str(tmp_path / "data")
    subprocess.run(["git", "clone", "-q", REPO, clone], check=True, timeout=120)
    tag = secrets.token_hex(2)
    node, run_dir, bridge = f"pfc-{tag}", f"/run/podling-fc-{tag}", f"pfc{tag}"
    config = tmp_path / "config.yaml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODLING_", "KUBECONFIG"))}
    env.update(PYTHONPATH=clone, PODLING_CONFIG=str(config), PODLING_PORT=str(free_port()),
               PODLING_NODE_NAME=node, PODLING_RUN_DIR=run_dir, PODLING_BRIDGE_NAME=bridge,
               PODLING_CLUSTER_CIDR=f"10.{100 + secrets.randbelow(100)}.0.0/16",
               PODLING_OFFLINE_ARCHIVES=os.path.join(os.path.dirname(demo_registry), "demo"),
               HOME=str(tmp_path / "home"))
    podling = os.path.join(os.path.dirname(sys.executable), "podling")
    kubectl = ["kubectl", "--kubeconfig", os.path.join(data_dir, "kubeconfig")]
    try:
        up = subprocess.run([os.path.join(clone, "scripts", "podling-up"), podling, data_dir],
                            env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "podling is up" in up.stdout
        assert not os.path.exists(os.path.join(data_dir, "registries.yaml"))
        subprocess.run([*kubectl, "apply", "-f", os.path.join(clone, "examples", "seed")],
                       env=env, check=True, capture_output=True, timeout=60)

        def phases() -> dict[str, str]:
            out = subprocess.run([*kubectl, "get", "pods", "-o",
                                  "jsonpath={range .items[*]}{.metadata.name}={.status.phase}"
                                  "{\"\\n\"}{end}"],
                                 env=env, capture_output=True, text=True, timeout=60).stdout
            return dict(line.split("=", 1) for line in out.split())
        wait_until(lambda: all(phases().get(n) == want for n, want in ONE_NODE.items()),
                   timeout=120, interval=0.5, message=f"the one-node seed pods: {phases()}")
        with open(os.path.join(data_dir, "server.log")) as f:
            assert "registry-1.docker.io" not in f.read()
    finally:
        subprocess.run([*kubectl, "delete", "pods", "--all", "--wait=true", "--timeout=60s"],
                       env=env, capture_output=True, timeout=90)
        subprocess.run([os.path.join(clone, "scripts", "podling-down"), data_dir],
                       capture_output=True, timeout=60)
        purge = subprocess.run([sys.executable, "-m", "podling", "purge", "--data-dir", data_dir,
                                "--run-dir", run_dir, "--node-name", node,
                                "--bridge-name", bridge],
                               env=env, capture_output=True, text=True, timeout=120)
        left = node_leftovers(node, data_dir=data_dir, run_dir=run_dir, bridge=bridge)
        assert purge.returncode == 0 and not left, (purge.stderr, left)
