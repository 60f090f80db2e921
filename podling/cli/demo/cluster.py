"""The demo's throw-away cluster: ``podling server`` (its local agent is the first node) and
two ``podling agent`` processes, all on this machine, each node with its own data dir, run
dir, CNI bridge and /24 of a cluster CIDR of its own (so that it never collides with a
podling started by ``make up``). Every node API listens on 127.0.0.1.

    start() ─▶ nodes Ready ─▶ kubectl(...) … ─▶ stop(): pods deleted, processes stopped,
                                                each node purged, the directory removed

:meth:`DemoCluster.stop` is idempotent and safe to call from a signal handler's
``finally``: whatever was started is torn down, whatever was not is skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO

NODE_NAMES = ("172.31.2.11", "172.31.2.12", "172.31.2.13")
CLUSTER_CIDR = "10.44.0.0/16"  # not the default 10.42.0.0/16 of `make up`
READY_TIMEOUT = 60.0
KUBECTL_TIMEOUT = 60.0


class DemoError(Exception):
    """The cluster could not be started or a command failed: a one-line reason."""


@dataclass
class DemoNode:
    """One node's host state and, once started, its process."""

    name: str
    data_dir: str
    run_dir: str
    bridge: str
    log_path: str
    process: subprocess.Popen[str] | None = None

    def flags(self) -> list[str]:
        return ["--node-name", self.name, "--data-dir", self.data_dir,
                "--run-dir", self.run_dir, "--bridge-name", self.bridge]


@dataclass
class DemoCluster:
    """A server and two agents under ``base`` (a fresh temporary directory by default)."""

    base: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="podling-demo-"))
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    nodes: list[DemoNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [DemoNode(name, os.path.join(self.base, f"node{i}"),
                                   f"/run/podling-demo-{self.tag}-{i}", f"pdemo{self.tag}{i}",
                                   os.path.join(self.base, f"node{i}.log"))
                          for i, name in enumerate(NODE_NAMES, 1)]

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.nodes[0].data_dir, "kubeconfig")

    @property
    def env(self) -> dict[str, str]:
        home = os.path.join(self.base, "home")
        return dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=home)

    def podling_env(self) -> dict[str, str]:
        """The environment of the cluster's podling processes: none of the caller's
        ``PODLING_*`` settings and an empty config file, so that nothing configured for the
        machine's own podling (a port, labels, a data dir) leaks into the demo's nodes."""
        config = os.path.join(self.base, "config.yaml")
        if not os.path.exists(config):
            with open(config, "w"):
                pass
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODLING_")}
        return dict(env, PODLING_CONFIG=config)

    # -- start ---------------------------------------------------------------------------

    def prepare(self, images: list[str], *, registries: str) -> None:
        """Create the nodes' data dirs with ``registries`` (a registries.yaml) in each, and
        import the image archives ``images`` into the first node's store only: the others
        pull from it (the node mirror)."""
        for node in self.nodes:
            os.makedirs(node.data_dir, exist_ok=True)
            shutil.copy(registries, os.path.join(node.data_dir, "registries.yaml"))
        for archive in images:
            self._podling("image", "--data-dir", self.nodes[0].data_dir, "import", archive)

    def start(self) -> None:
        """Start the server (node 1) and the agents; return once every node is Ready."""
        first = self.nodes[0]
        first.process = self._spawn(first, "server", "--port", "0",
                                    "--cluster-cidr", CLUSTER_CIDR, *first.flags())
        self._wait_for_line(first, "local agent running")
        url = json.loads(self.kubectl("config", "view", "--raw", "-o", "json"))[
            "clusters"][0]["cluster"]["server"]
        token_file = os.path.join(first.data_dir, "server", "node-token")
        for node in self.nodes[1:]:
            node.process = self._spawn(node, "agent", "--server", url, "--token-file",
                                       token_file, "--node-api-address", "127.0.0.1",
                                       "--node-api-port", "0", *node.flags())
        self._wait_ready()

    def _spawn(self, node: DemoNode, *argv: str) -> subprocess.Popen[str]:
        os.makedirs(node.data_dir, exist_ok=True)
        log = open(node.log_path, "a")
        try:
            return subprocess.Popen([sys.executable, "-m", "podling", *argv],
                                    stdout=subprocess.PIPE if argv[0] == "server" else log,
                                    stderr=subprocess.STDOUT, text=True, env=self.podling_env(),
                                    start_new_session=True)
        finally:
            log.close()

    def _wait_for_line(self, node: DemoNode, wanted: str) -> None:
        """Read the server's output until ``wanted``; then keep copying it to its log."""
        process = node.process
        assert process is not None and process.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if wanted in line:
                _copy_in_background(process.stdout, node.log_path, seen)
                return
        raise DemoError("the demo server did not start:\n" + "".join(seen[-15:]))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        wanted = {n.name for n in self.nodes}
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise DemoError(f"node {node.name} exited; its log: {node.log_path}")
            if self.ready_nodes() >= wanted:
                return
            time.sleep(0.2)
        raise DemoError(f"the nodes were not Ready within {READY_TIMEOUT:g}s")

    def ready_nodes(self) -> set[str]:
        items = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
        return {n["metadata"]["name"] for n in items
                for c in n.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"}

    # -- use -----------------------------------------------------------------------------

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = KUBECTL_TIMEOUT) -> str:
        """Run the real kubectl against the cluster: its stdout (stderr appended when it
        fails and ``check`` is False). DemoError when it fails and ``check`` is True."""
        try:
            done = subprocess.run(["kubectl", *args], env=self.env, input=input, text=True,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DemoError(f"kubectl {' '.join(args)}: no answer in {timeout:g}s") from None
        if done.returncode != 0:
            if check:
                raise DemoError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
            return done.stdout + done.stderr
        return done.stdout

    def attach(self, pod: str, container: str, typed: str, until: str,
               timeout: float = 20.0) -> str:
        """``kubectl attach -i`` to a running container, type ``typed`` into it and return
        the output once ``until`` appeared in it (kubectl is then stopped: an attach ends
        only with the container's stdin or the container). DemoError after ``timeout``."""
        process = subprocess.Popen(["kubectl", "attach", "-i", pod, "-c", container],
                                   env=self.env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdin is not None and process.stdout is not None
        output = b""
        try:
            process.stdin.write(typed.encode())
            process.stdin.flush()
            deadline = time.monotonic() + timeout
            while until.encode() not in output:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([process.stdout], [], [], max(left, 0))
                chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
                if not chunk:
                    raise DemoError(f"kubectl attach {pod} -c {container}: no {until!r} "
                                    f"within {timeout:g}s: {output.decode(errors='replace')}")
                output += chunk
        finally:
            _terminate(process)
        return output.decode(errors="replace").replace("\r\n", "\n")

    def _podling(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "podling", *args], text=True,
                              capture_output=True, timeout=300, env=self.podling_env())
        if done.returncode != 0:
            raise DemoError(f"podling {' '.join(args[:2])}: {done.stderr.strip()}")

    def write_down_script(self) -> str:
        """A shell script that does what :meth:`stop` does, for a cluster left running."""
        path = os.path.join(self.base, "down.sh")
        pids = " ".join(str(n.process.pid) for n in self.nodes if n.process is not None)
        podling = f"{shlex.quote(sys.executable)} -m podling"
        lines = ["#!/bin/sh", "# stop the podling demo cluster and remove everything it made",
                 f"kill {pids} 2>/dev/null",
                 f"for pid in {pids}; do while kill -0 $pid 2>/dev/null; do sleep 0.2; done;"
                 " done"]
        lines += [f"{podling} purge {shlex.join(node.flags())}" for node in self.nodes]
        lines.append(f"rm -rf {shlex.quote(self.base)}")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o755)
        return path

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Delete the pods, stop every process, purge every node, remove the directory."""
        first = self.nodes[0]
        if first.process is not None and first.process.poll() is None:
            self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1",
                         "--wait=true", "--timeout=30s", check=False, timeout=45)
        for node in reversed(self.nodes):
            _terminate(node.process)
            node.process = None
        for node in self.nodes:
            subprocess.run([sys.executable, "-m", "podling", "purge", *node.flags()],
                           capture_output=True, timeout=120, env=self.podling_env())
        shutil.rmtree(self.base, ignore_errors=True)


def _terminate(process: subprocess.Popen | None, timeout: float = 30.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _copy_in_background(stream: IO[str], log_path: str, seen: list[str]) -> None:
    """Keep reading ``stream`` into ``log_path`` so that the process never blocks."""
    def copy() -> None:
        with open(log_path, "a") as log:
            log.writelines(seen)
            for line in stream:
                log.write(line)
                log.flush()
    threading.Thread(target=copy, daemon=True).start()
