"""10,000 idle connections to the API server do not exhaust its file descriptors: it raises
its own soft open-file limit to the hard one at start (a systemd service starts at 1,024),
takes a burst of them without making clients wait for SYN retransmits (listen backlog
4096), holds them all (each with a 32 KiB TLS read buffer, not asyncio's 256 KiB), and
still answers kubectl at once."""

from __future__ import annotations

import resource
import socket
import urllib.parse

import pytest
from podling_e2e import start_server

CONNECTIONS = 10_000


def limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def test_ten_thousand_idle_connections(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < CONNECTIONS + 1000:
        pytest.skip(f"the hard open-file limit ({hard}) is below {CONNECTIONS + 1000}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # what the server inherits
    try:
        server = start_server(str(tmp_path / "data"), str(tmp_path / "home"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this side holds them too
    sockets: list[socket.socket] = []
    try:
        pid = server.process.pid
        assert limits(pid) == (hard, hard)
        before = rss_kib(pid)
        url = urllib.parse.urlparse(server.url)
        for _ in range(CONNECTIONS):  # a burst: the listen backlog takes it (no SYN retries)
            sockets.append(socket.create_connection((url.hostname, url.port), timeout=10))
        names = server.kubectl("get", "namespaces", "-o", "name", timeout=60).stdout.split()
        assert "namespace/default" in names
        grown = rss_kib(pid) - before
        print(f"{CONNECTIONS} idle connections: server RSS +{grown // 1024} MiB")
        assert grown < CONNECTIONS * 150  # KiB: ~82 each now; asyncio's default held ~280
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        server.kill()
    assert server.process.returncode == 0
