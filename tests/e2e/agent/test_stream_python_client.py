"""The official Python client's streaming calls: ``kubernetes.stream.stream`` for exec
(WebSocket ``v4.channel.k8s.io``: stdin written, stdout and stderr read, the exit code from
the status channel) and ``kubernetes.stream.portforward`` (``?ports=``, two channels per
port, the port number first on each)."""

from __future__ import annotations

import re
import time

import pytest

from streams_util import SLEEPER, Pods, busybox, pod, recv_all, parse_http, tag

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.stream import portforward, stream  # noqa: E402

NGINX_TITLE = re.compile(rb"<title>[^<]*nginx[^<]*</title>", re.I)


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    name = f"pyclient-{t}"
    p = Pods(cluster, [pod(name, cluster.node, [
        {"name": "web", "image": "nginx"},
        busybox("main", SLEEPER),
    ])])
    p.name = name
    p.tag = t
    return p


@pytest.fixture(scope="module")
def core(cluster):
    client = cluster.server.api_client()
    yield kubernetes.client.CoreV1Api(client)
    client.close()


def read_until_closed(ws, timeout: float = 30.0) -> tuple[str, str]:
    stdout, stderr = [], []
    deadline = time.monotonic() + timeout
    while ws.is_open():
        if time.monotonic() > deadline:
            raise AssertionError(f"exec still open after {timeout}s: {stdout} {stderr}")
        ws.update(timeout=1)
        if ws.peek_stdout():
            stdout.append(ws.read_stdout())
        if ws.peek_stderr():
            stderr.append(ws.read_stderr())
    stdout.append(ws.read_stdout(timeout=0) if ws.peek_stdout() else "")
    stderr.append(ws.read_stderr(timeout=0) if ws.peek_stderr() else "")
    return "".join(stdout), "".join(stderr)


def test_exec_preloaded_output(pods, core):
    pods.wait_running(pods.name)
    out = stream(core.connect_get_namespaced_pod_exec, pods.name, "default", container="main",
                 command=["sh", "-c", "echo py-$((20+3))"], stdin=False, stdout=True,
                 stderr=True, tty=False)
    assert out == "py-23\n"


def kind_of(text: str, kind: type):
    return text if kind is str else text.encode()


SCRIPT = 'read a; echo "1:$a"; read b; echo "2:$b"; echo err-$((2*3)) >&2; exit 7'


@pytest.mark.parametrize("kind", [str, bytes], ids=["text", "binary"])
def test_exec_stdin_stdout_stderr_and_returncode(pods, core, kind):
    """write_stdin(str) sends a WebSocket text frame, write_stdin(bytes) a binary one; the
    Kubernetes API server takes both as channel data."""
    pods.wait_running(pods.name)
    ws = stream(core.connect_get_namespaced_pod_exec, pods.name, "default", container="main",
                command=["sh", "-c", SCRIPT], stdin=True, stdout=True, stderr=True, tty=False,
                _preload_content=False)
    try:
        ws.write_stdin(kind_of("alpha\n", kind))
        first = ws.readline_stdout(timeout=20)
        assert first == "1:alpha", first
        ws.write_stdin(kind_of("beta\n", kind))
        stdout, stderr = read_until_closed(ws)
    finally:
        ws.close()
    assert stdout == "2:beta\n", stdout
    assert stderr == "err-6\n", stderr
    assert ws.returncode == 7


def test_exec_returncode_zero(pods, core):
    pods.wait_running(pods.name)
    ws = stream(core.connect_get_namespaced_pod_exec, pods.name, "default", container="main",
                command=["true"], stdin=False, stdout=True, stderr=True, tty=False,
                _preload_content=False)
    try:
        read_until_closed(ws)
    finally:
        ws.close()
    assert ws.returncode == 0


def http_over(sock, timeout: float = 30.0) -> tuple[int, bytes]:
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    return parse_http(recv_all(sock, timeout))


def test_port_forward(pods, core):
    pods.wait_running(pods.name)
    pf = portforward(core.connect_get_namespaced_pod_portforward, pods.name, "default",
                     ports="80")
    try:
        status, body = http_over(pf.socket(80))
    finally:
        pf.close()
    assert status == 200 and NGINX_TITLE.search(body), body[:300]
    assert pf.error(80) is None


def test_port_forward_bad_port_does_not_stop_the_others(pods, core):
    """Port 9 has no listener: its error channel says so and its socket closes; port 80 of
    the same forward keeps working afterwards."""
    pods.wait_running(pods.name)
    pf = portforward(core.connect_get_namespaced_pod_portforward, pods.name, "default",
                     ports="9,80")
    try:
        bad = pf.socket(9)
        bad.setblocking(True)
        try:  # the error may already have closed it (the node dials at once)
            bad.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert recv_all(bad, 30) == b""
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + 10
        while not pf.error(9) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pf.error(9), "no error text on port 9's error channel"
        status, body = http_over(pf.socket(80))
        assert status == 200 and NGINX_TITLE.search(body), body[:300]
    finally:
        pf.close()
