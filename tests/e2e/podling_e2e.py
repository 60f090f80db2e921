"""Helpers that run a real `podling server` subprocess and the real kubectl against it.

Each server gets its own data dir, a free port on 127.0.0.1 (``--port 0``; the real URL is read
from the kubeconfig the server writes) and is stopped with SIGTERM after the test. kubectl gets
its own HOME so its discovery cache never leaks between runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml

READY_TIMEOUT = 15.0
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Server:
    """A running podling server and helpers to talk to it."""

    data_dir: str
    home: str
    process: subprocess.Popen
    extra_args: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.data_dir, "kubeconfig")

    def _config(self) -> dict:
        with open(self.kubeconfig) as f:
            return yaml.safe_load(f)

    @property
    def url(self) -> str:
        return self._config()["clusters"][0]["cluster"]["server"]

    @property
    def token(self) -> str:
        return self._config()["users"][0]["user"]["token"]

    @property
    def ca_file(self) -> str:
        return os.path.join(self.data_dir, "server", "ca.crt")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the real kubectl; returns the completed process (text mode)."""
        env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig)
        result = subprocess.run(["kubectl", *args], input=input, capture_output=True,
                                text=True, env=env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def kubectl_popen(self, *args: str) -> subprocess.Popen:
        env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig)
        return subprocess.Popen(["kubectl", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    def api_client(self):
        """An official kubernetes Python ApiClient for this server."""
        import kubernetes
        config = kubernetes.client.Configuration()
        config.host = self.url
        config.ssl_ca_cert = self.ca_file
        config.api_key = {"authorization": "Bearer " + self.token}
        return kubernetes.client.ApiClient(config)

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def start_server(data_dir: str, home: str, *extra: str, with_agent: bool = False,
                 with_scheduler: bool | None = None, log_path: str | None = None) -> Server:
    """Start `podling server` and wait until it prints that it is ready (and, with
    ``with_agent``, that its local agent runs). ``log_path`` keeps the server's output.
    An API-only server gets no scheduler either (tests own their pods' placement) unless
    ``with_scheduler``."""
    os.makedirs(home, exist_ok=True)
    scheduler = with_agent if with_scheduler is None else with_scheduler
    agent_flags = ([] if with_agent else ["--disable-agent"]) + \
        ([] if scheduler else ["--disable-scheduler"])
    process = subprocess.Popen(
        [sys.executable, "-m", "podling", "server", "--data-dir", data_dir, "--port", "0",
         *agent_flags, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + READY_TIMEOUT
    seen = []
    wanted = "local agent running" if with_agent else "API server ready"
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), True)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if wanted in line:
            _drain_in_background(process, log_path, seen)
            return Server(data_dir, home, process, list(extra))
    process.kill()
    process.wait()
    raise AssertionError("podling server did not become ready:\n" + "".join(seen))


def _drain_in_background(process: subprocess.Popen, log_path: str | None = None,
                         seen: list[str] | None = None) -> None:
    """Keep reading the server's output so it never blocks on a full pipe (into
    ``log_path`` when given: the file exists when this returns)."""
    import threading
    log = open(log_path, "a") if log_path else None

    def drain() -> None:
        assert process.stdout is not None
        try:
            if log:
                log.writelines(seen or [])
            for line in process.stdout:
                if log:
                    log.write(line)
                    log.flush()
        finally:
            if log:
                log.close()
    threading.Thread(target=drain, daemon=True).start()


def wait_for(condition, timeout: float = 30.0, interval: float = 0.2, message: str = ""):
    """Poll ``condition()`` until it returns a truthy value; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


def runc_list(run_dir: str) -> list[str]:
    """IDs of the runc containers of a node's runtime (without creating runc's root, which
    `runc list` would do)."""
    root = os.path.join(run_dir, "runtime", "runc")
    if not os.path.isdir(root):
        return []
    out = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True,
                         text=True, timeout=10)
    return out.stdout.split()


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM ``process`` (if it still runs) and wait for it: 30 s, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def node_leftovers(node: str, *, data_dir: str, run_dir: str, bridge: str) -> list[str]:
    """What a purged node left on the host: runc containers, mounts, its run dir, bridge,
    iptables rules tagged with its network, processes; an empty list when clean."""
    problems = []
    if runc_list(run_dir):
        problems.append(f"{node}: runc containers {runc_list(run_dir)}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if data_dir in line or run_dir in line]
    if mounts:
        problems.append(f"{node}: mounts {mounts}")
    if os.path.exists(run_dir):
        problems.append(f"{node}: {run_dir} still exists")
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0:
        problems.append(f"{node}: bridge {bridge}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    tagged = [r for r in rules.splitlines() if f"podling-{bridge}" in r]
    if tagged:
        problems.append(f"{node}: iptables {tagged[:3]}")
    procs = subprocess.run(["pgrep", "-af", run_dir], capture_output=True, text=True)
    alive = [p for p in procs.stdout.splitlines() if "pgrep" not in p]
    if alive:
        problems.append(f"{node}: processes {alive[:3]}")
    return problems
