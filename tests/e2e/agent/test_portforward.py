"""``kubectl port-forward`` through the API server to the pod's network namespace.

kubectl chooses the local ports (``0:R``); the test reads them from ``Forwarding from
127.0.0.1:L -> R``. Each test runs over kubectl 1.32's default (SPDY/3.1 tunnelled in a
WebSocket) and over plain SPDY (``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``).
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading

import pytest

from streams_util import (SPDY_PORT_FORWARD, WEBSOCKET, PortForward, Pods, busybox, http_get,
                          kubectl, parse_http, pod, recv_all, tag)

TRANSPORTS = [pytest.param(WEBSOCKET, id="websocket"),
              pytest.param(SPDY_PORT_FORWARD, id="spdy")]
NGINX_TITLE = re.compile(rb"<title>[^<]*nginx[^<]*</title>", re.I)
BLOB = 4 * 1024 * 1024
CONNECTIONS = 20


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    name = f"pf-web-{t}"
    side = (f"mkdir -p /www && echo side-{t} > /www/index.html && "
            f"head -c {BLOB} /dev/urandom > /www/blob && "
            "md5sum /www/blob | cut -d' ' -f1 > /www/blob.md5 && "
            "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")
    manifests = [pod(name, cluster.node, [
        {"name": "web", "image": "nginx"},
        busybox("side", side),
    ])]
    p = Pods(cluster, manifests)
    p.name = name
    p.tag = t
    return p


def ready(pods) -> None:
    """Running, and busybox httpd answering inside the pod (asked with exec once)."""
    if getattr(pods, "serving", False):
        return
    pods.wait_running(pods.name)

    def answers():
        out = kubectl(pods.cluster, "exec", pods.name, "-c", "side", "--", "wget", "-q",
                      "-O", "-", "http://127.0.0.1:8080/blob.md5", timeout=30)
        return out.returncode == 0 and len(out.stdout.strip()) == 32
    pods.wait(answers, 60, "busybox httpd does not answer on 8080", pods.name)
    pods.serving = True


@pytest.mark.parametrize("env", TRANSPORTS)
def test_forward_nginx(pods, env):
    ready(pods)
    with PortForward(pods.cluster, f"pod/{pods.name}", 80, extra_env=env) as pf:
        for _ in range(3):  # one forward, several connections
            status, body = http_get(pf.local[80])
            assert status == 200 and NGINX_TITLE.search(body), body[:500]
        local = pf.local[80]
        pf.wait_output(lambda: sum(f"Handling connection for {local}" in line
                                   for line in pf.stdout) >= 3, 10,
                       "'Handling connection' lines")


def test_forward_uses_websocket_without_fallback(pods):
    """kubectl 1.32 falls back to SPDY silently; at -v=4 it logs 'fallback to secondary
    dialer'."""
    ready(pods)
    with PortForward(pods.cluster, f"pod/{pods.name}", 80, extra_args=("-v=4",)) as pf:
        status, body = http_get(pf.local[80])
        assert status == 200 and NGINX_TITLE.search(body), body[:500]
        assert not any("fallback" in line.lower() for line in pf.stderr), pf.stderr[-20:]


@pytest.mark.parametrize("env", TRANSPORTS)
def test_two_ports_at_once(pods, env):
    ready(pods)
    with PortForward(pods.cluster, f"pod/{pods.name}", 80, 8080, extra_env=env) as pf:
        assert pf.local[80] != pf.local[8080]
        status, body = http_get(pf.local[8080])
        assert (status, body) == (200, f"side-{pods.tag}\n".encode()), body[:500]
        status, body = http_get(pf.local[80])
        assert status == 200 and NGINX_TITLE.search(body), body[:500]
        # 4 MiB of random bytes intact (md5 computed in the container)
        status, md5 = http_get(pf.local[8080], "/blob.md5")
        assert status == 200, md5
        with socket.create_connection(("127.0.0.1", pf.local[8080]), timeout=30) as s:
            s.sendall(b"GET /blob HTTP/1.0\r\nHost: localhost\r\n\r\n")
            status, blob = parse_http(recv_all(s, 60))
        assert status == 200 and len(blob) == BLOB, (status, len(blob))
        assert hashlib.md5(blob).hexdigest() == md5.decode().strip()


@pytest.mark.parametrize("env", TRANSPORTS)
def test_twenty_concurrent_connections(pods, env):
    """20 connections open at the same time, each answered on its own."""
    ready(pods)
    with PortForward(pods.cluster, f"pod/{pods.name}", 80, 8080, extra_env=env) as pf:
        sockets = [socket.create_connection(("127.0.0.1", pf.local[80 if i % 2 else 8080]),
                                            timeout=30) for i in range(CONNECTIONS)]
        results: list = [None] * CONNECTIONS

        def fetch(i: int) -> None:
            try:
                sockets[i].sendall(f"GET /?c={i} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                results[i] = parse_http(recv_all(sockets[i], 60))
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e
            finally:
                sockets[i].close()
        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(CONNECTIONS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(90)
        for i, result in enumerate(results):
            assert isinstance(result, tuple), (i, result, pf.stderr[-10:])
            status, body = result
            if i % 2:
                assert status == 200 and NGINX_TITLE.search(body), (i, body[:300])
            else:
                assert (status, body) == (200, f"side-{pods.tag}\n".encode()), (i, body[:300])
        # and the forward still serves afterwards
        assert http_get(pf.local[80])[0] == 200


@pytest.mark.parametrize("env", TRANSPORTS)
def test_port_nothing_listens_on(pods, env):
    """A connection to a pod port nobody listens on gets an error for that connection
    (kubectl prints it). kubectl 1.32 then drops the whole forward ("lost connection to
    pod", as against a real cluster); the server keeps serving new forwards."""
    ready(pods)
    with PortForward(pods.cluster, f"pod/{pods.name}", 80, 9, extra_env=env) as pf:
        assert http_get(pf.local[80])[0] == 200  # before: fine
        local9 = pf.local[9]
        with socket.create_connection(("127.0.0.1", local9), timeout=30) as s:
            try:  # kubectl may have closed it already, on the error
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = recv_all(s, 30)
            except (BrokenPipeError, ConnectionResetError):
                data = b""
        assert data == b"", data[:300]
        pf.wait_output(lambda: any(f"an error occurred forwarding {local9} -> 9" in line
                                   for line in pf.stderr), 20, "the forwarding error")
        # client-go closes the connection after an error stream message (as with a kubelet)
        assert pf.wait_exit(20) != 0
        pf.wait_output(lambda: any("lost connection to pod" in line for line in pf.stderr),
                       10, "'lost connection to pod'")
    with PortForward(pods.cluster, f"pod/{pods.name}", 80, extra_env=env) as pf:
        status, body = http_get(pf.local[80])
        assert status == 200 and NGINX_TITLE.search(body), body[:500]


def test_forward_to_missing_pod_fails(pods):
    missing = f"pod/no-such-pod-{pods.tag}"
    out = pods.cluster.kubectl("port-forward", missing, "0:80", check=False, timeout=30)
    assert out.returncode != 0
    assert f'pods "no-such-pod-{pods.tag}" not found' in out.stderr, out.stderr
