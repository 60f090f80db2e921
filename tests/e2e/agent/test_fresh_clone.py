"""The README's first command on a fresh clone, offline: `git clone` of this repository, then
what `make up` runs once the apt packages and the venv are there (`scripts/podling-up`: the
install-time image import, then `podling server` in the background), then the real kubectl
applies the clone's `examples/seed/`. Every seed pod that needs no other node reaches its
state, and no registry but this node is ever asked (the server's log never names docker.io's
endpoint). `make up`'s apt and pip steps are left out: they need Debian's mirror and PyPI,
which a test must not reach; the venv is this checkout's, running the clone's code.

The images come from the archives the ``demo_registry`` fixture built from Debian's packages
(``PODLING_OFFLINE_ARCHIVES``: what a user who built them on another machine passes). Then a
second node joins with the clone's `podling agent` and the join token, with an empty store and
the default registries (docker.io through the nodes, then upstream): a pod bound to it runs
busybox pulled from the first node's store. test_node_mirror.py covers the mirror in detail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys

import pytest
from kubectl_util import wait_until
from podling_e2e import REPO, node_leftovers, terminate

ONE_NODE = {"aliases": "Succeeded", "host-hooks": "Running", "shared-pid": "Running"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("git"),
                                reason="needs root and git")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_up_on_a_fresh_clone_runs_the_seed_offline_and_a_second_node_pulls_from_it(
        tmp_path, demo_registry):
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
    second = SecondNode(podling, env, tmp_path, tag)
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
        second.join(server_url=f"https://127.0.0.1:{env['PODLING_PORT']}",
                    token_file=os.path.join(data_dir, "server", "node-token"))
        second.runs_busybox_from(node, kubectl)
    finally:
        subprocess.run([*kubectl, "delete", "pods", "--all", "--wait=true", "--timeout=60s"],
                       env=env, capture_output=True, timeout=90)
        second_left = second.leave()
        subprocess.run([os.path.join(clone, "scripts", "podling-down"), data_dir],
                       capture_output=True, timeout=60)
        purge = subprocess.run([sys.executable, "-m", "podling", "purge", "--data-dir", data_dir,
                                "--run-dir", run_dir, "--node-name", node,
                                "--bridge-name", bridge],
                               env=env, capture_output=True, text=True, timeout=120)
        left = node_leftovers(node, data_dir=data_dir, run_dir=run_dir, bridge=bridge)
        assert purge.returncode == 0 and not left and not second_left, \
            (purge.stderr, left, second_left)


class SecondNode:
    """A `podling agent` of the clone joining the first node's server: its own data dir (an
    empty image store, no registries.yaml), run dir and bridge."""

    def __init__(self, podling: str, env: dict, tmp_path, tag: str):
        self.podling, self.tag = podling, tag
        self.env = {k: v for k, v in env.items()
                    if k not in ("PODLING_NODE_NAME", "PODLING_RUN_DIR", "PODLING_BRIDGE_NAME")}
        self.name, self.data_dir = f"pfc-{tag}-2", str(tmp_path / "data-2")
        self.run_dir, self.bridge = f"/run/podling-fc-{tag}-2", f"pfc{tag}2"
        self.log = str(tmp_path / "node-2.log")
        self.process: subprocess.Popen | None = None

    def flags(self) -> list[str]:
        return ["--node-name", self.name, "--data-dir", self.data_dir,
                "--run-dir", self.run_dir, "--bridge-name", self.bridge]

    def join(self, *, server_url: str, token_file: str) -> None:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [self.podling, "agent", "--server", server_url, "--token-file", token_file,
                 "--node-api-address", "127.0.0.1", "--node-api-port", "0", *self.flags()],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def runs_busybox_from(self, first: str, kubectl: list[str]) -> None:
        """A busybox pod bound to this node runs, its image served by the first node."""
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"second-{self.tag}"},
               "spec": {"nodeName": self.name, "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "image": "busybox",
                                        "command": ["sleep", "3600"]}]}}
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(pod), env=self.env,
                       check=True, capture_output=True, text=True, timeout=60)

        def phase() -> str:
            return self.get(kubectl, "pod", pod["metadata"]["name"]).get(
                "status", {}).get("phase", "")
        try:
            wait_until(lambda: phase() == "Running", timeout=120, interval=0.5,
                       message="the second node's pod Running")
        except AssertionError:
            print(self.tail())  # the agent's log at the time of the failure
            raise
        first_url = self.get(kubectl, "node", first)["metadata"]["annotations"][
            "podling.io/node-api"]
        log = self.tail(None)
        assert f"of docker.io/library/busybox:latest served by {first_url}" in log, log[-3000:]
        assert "registry-1.docker.io" not in log

    def get(self, kubectl: list[str], *args: str) -> dict:
        out = subprocess.run([*kubectl, "get", *args, "-o", "json"], env=self.env,
                             capture_output=True, text=True, timeout=60).stdout
        return json.loads(out or "{}")

    def tail(self, size: int | None = 3000) -> str:
        with open(self.log) as f:
            text = f.read()
        return text if size is None else text[-size:]

    def leave(self) -> list[str]:
        """Stop the agent, purge the node; what it left on the host (empty when clean)."""
        terminate(self.process)
        purge = subprocess.run([self.podling, "purge", *self.flags()], env=self.env,
                               capture_output=True, text=True, timeout=120)
        left = node_leftovers(self.name, data_dir=self.data_dir, run_dir=self.run_dir,
                              bridge=self.bridge)
        return left + ([f"purge: {purge.stderr}"] if purge.returncode else [])
