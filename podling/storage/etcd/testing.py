"""A throw-away etcd member on loopback, for tests and benchmarks.

    with EtcdProcess(tmp_dir) as etcd:        # Debian's etcd-server; ports picked free
        client = EtcdClient([etcd.url])
    with EtcdCluster(tmp_dir, 3) as cluster:  # three members; cluster.members[i].kill()
        client = EtcdClient(cluster.urls)

Members listen on 127.0.0.1 only, keep their data in ``<dir>/data``, and are killed and
their directories removed on exit. :func:`etcd_binary` is None when etcd is not installed.
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
    """One etcd member; alone it is a single-member cluster (see the module docstring).
    :class:`EtcdCluster` makes several that form one cluster."""

    def __init__(self, directory: str, *, name: str = "podling-test",
                 peers: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.extra_args = extra_args  # more etcd flags, e.g. --quota-backend-bytes
        self.name = name
        self.client_port = free_port()
        self.peer_url = f"http://127.0.0.1:{free_port()}"
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.peers = peers  # name -> peer URL of every member, this one included
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Start the process (its data dir is kept from an earlier run, if any)."""
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not installed (Debian: apt-get install etcd-server)")
        os.makedirs(self.directory, exist_ok=True)
        peers = self.peers or {self.name: self.peer_url}
        cluster = ",".join(f"{name}={url}" for name, url in peers.items())
        log = open(os.path.join(self.directory, "etcd.log"), "ab")
        self.process = subprocess.Popen(
            [binary, "--name", self.name, "--data-dir", os.path.join(self.directory, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls",
             self.peer_url, "--initial-cluster", cluster, "--log-level", "warn",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd {self.name} did not become healthy: "
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def start(self, timeout: float = 20.0) -> "EtcdProcess":
        self.spawn()
        try:
            self.wait_healthy(timeout)
        except RuntimeError:
            self.stop()
            raise
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

    def kill(self) -> None:
        """kill -9 the member; its data dir stays (:meth:`spawn` brings it back)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """Kill the member and remove its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "EtcdProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EtcdCluster:
    """``size`` members on loopback forming one cluster; members can be killed and brought
    back. Stopping the cluster kills them all and removes its directory."""

    def __init__(self, directory: str, size: int = 3) -> None:
        self.directory = directory
        peers: dict[str, str] = {}
        self.members = [EtcdProcess(os.path.join(directory, f"m{i}"), name=f"m{i}", peers=peers)
                        for i in range(size)]
        peers.update((m.name, m.peer_url) for m in self.members)

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, timeout: float = 30.0) -> "EtcdCluster":
        try:
            for member in self.members:  # all at once: a member alone has no quorum
                member.spawn()
            for member in self.members:
                member.wait_healthy(timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for member in self.members:
            member.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
