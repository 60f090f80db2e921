"""A throw-away etcd member on loopback, for tests and benchmarks.

    with EtcdProcess(tmp_dir) as etcd:        # Debian's etcd-server; ports picked free
        client = EtcdClient([etcd.url])

It listens on 127.0.0.1 only, keeps its data in ``<dir>/data``, and is killed and its
directory removed on exit. :func:`etcd_binary` is None when etcd is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def free_port() -> int:
    """A port that was free a moment ago (etcd takes ports, not port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdProcess:
    """One single-member etcd cluster (see the module docstring)."""

    def __init__(self, directory: str, *, name: str = "podling-test") -> None:
        self.directory = directory
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> "EtcdProcess":
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not installed (Debian: apt-get install etcd-server)")
        os.makedirs(self.directory, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(os.path.join(self.directory, "etcd.log"), "wb")
        self.process = subprocess.Popen(
            [binary, "--name", self.name, "--data-dir", os.path.join(self.directory, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"{self.name}={peer}", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd did not start: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.directory, "etcd.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "EtcdProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
