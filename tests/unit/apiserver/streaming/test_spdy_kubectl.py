"""The real kubectl (1.32) against a tiny fake API server speaking podling's SPDY codec.

The fake serves just enough for ``kubectl port-forward`` (raw SPDY upgrade and the
WebSocket tunnel) and ``kubectl exec`` over SPDY: /version, legacy discovery, GET pod,
and the streaming subresources. Skipped when kubectl is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time

import pytest
from aiohttp import web

from podling.apiserver.streaming.spdy import SpdyConnection, SpdyStream
from podling.apiserver.streaming.upgrade import (
    WebSocketTransport, accept_spdy_upgrade, choose_protocol,
)

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

TIMEOUT = 60
EXEC_BYTES = int(os.environ.get("PODLING_SPDY_EXEC_BYTES", 100 << 20))
POD_PATH = "/api/v1/namespaces/default/pods/web"
SEEN = web.AppKey("seen", list)
RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "list"], "shortNames": ["po"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True,
         "kind": "PodExecOptions", "verbs": ["create", "get"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": True,
         "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
    ],
}
POD = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                 "resourceVersion": "1"},
    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    "status": {"phase": "Running"},
}


def json_response(body: dict) -> web.Response:
    return web.json_response(body)


async def version(request: web.Request) -> web.Response:
    return json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                          "platform": "linux/amd64"})


async def api(request: web.Request) -> web.Response:
    host = request.host
    return json_response({"kind": "APIVersions", "versions": ["v1"],
                          "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                          "serverAddress": host}]})


async def apis(request: web.Request) -> web.Response:
    return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})


async def api_v1(request: web.Request) -> web.Response:
    return json_response(RESOURCES)


async def pod(request: web.Request) -> web.Response:
    return json_response(POD)


# -- port-forward: echo every forwarded connection ---------------------------------------


class PortForwardSession:
    """Replies to every stream and echoes each ``data`` stream. When one is done it FINs the
    ``error`` stream of the same ``requestid``: kubectl closes the local connection only
    after reading the error stream to its end."""

    def __init__(self) -> None:
        self.errors: dict[str, SpdyStream] = {}

    async def on_stream(self, stream: SpdyStream) -> None:
        await stream.reply()
        if stream.headers.get("streamtype") == "error":
            self.errors[stream.headers.get("requestid", "")] = stream
        elif stream.headers.get("streamtype") == "data":
            asyncio.create_task(self.echo(stream))

    async def echo(self, stream: SpdyStream) -> None:
        with contextlib.suppress(Exception):
            while data := await stream.read():
                await stream.write(data)
            await stream.close()
            error = self.errors.pop(stream.headers.get("requestid", ""), None)
            if error is not None:
                await error.close()


async def port_forward(request: web.Request) -> web.StreamResponse:
    request.app[SEEN].append(f"{request.method} portforward {request.headers.get('Upgrade')}")
    if request.headers.get("Upgrade", "").lower() == "websocket":
        ws = web.WebSocketResponse(protocols=["SPDY/3.1+portforward.k8s.io"])
        await ws.prepare(request)
        await SpdyConnection(WebSocketTransport(ws), server=True,
                             on_stream=PortForwardSession().on_stream).run()
        return ws
    protocol = choose_protocol(request.headers.getall("X-Stream-Protocol-Version", []),
                               ["portforward.k8s.io"])
    response, transport = await accept_spdy_upgrade(request, protocol)
    await SpdyConnection(transport, server=True, on_stream=PortForwardSession().on_stream).run()
    return response


# -- exec: stdout, then a NonZeroExitCode status ---------------------------------------------


class ExecSession:
    """Collects the client's streams; once stdout, stderr and error are there, runs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.streams: dict[str, SpdyStream] = {}
        self.ready = asyncio.Event()

    async def on_stream(self, stream: SpdyStream) -> None:
        await stream.reply()
        self.streams[stream.headers.get("streamtype", "")] = stream
        if {"error", "stdout", "stderr"} <= self.streams.keys():
            self.ready.set()

    async def run(self) -> None:
        await self.ready.wait()
        block = b"0123456789abcdef" * 4096  # 64 KiB
        left = self.size
        while left > 0:
            await self.streams["stdout"].write(block[:left])
            left -= len(block)
        await self.streams["stdout"].close()
        await self.streams["stderr"].write(b"done\n")
        await self.streams["stderr"].close()
        status = {"metadata": {}, "status": "Failure",
                  "message": "command terminated with non-zero exit code: exit code 3",
                  "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
        await self.streams["error"].write(json.dumps(status).encode())
        await self.streams["error"].close()


async def exec_handler(request: web.Request) -> web.StreamResponse:
    request.app[SEEN].append(f"{request.method} exec {request.headers.get('Upgrade')}")
    if request.headers.get("Upgrade", "").lower() != "spdy/3.1":
        return web.Response(status=400, text="SPDY only")
    offered = request.headers.getall("X-Stream-Protocol-Version", [])
    request.app[SEEN].append(f"offered {offered}")
    protocol = choose_protocol(offered, ["v4.channel.k8s.io"])
    if protocol is None:
        return web.Response(status=403, text="no common protocol")
    response, transport = await accept_spdy_upgrade(request, protocol)
    session = ExecSession(EXEC_BYTES)
    conn = SpdyConnection(transport, server=True, on_stream=session.on_stream)
    runner = asyncio.create_task(session.run())
    try:
        await conn.run()
    finally:
        runner.cancel()
    return response


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def fake_api():
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/version", version)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", api_v1)
    app.router.add_get(POD_PATH, pod)
    app.router.add_route("*", POD_PATH + "/portforward", port_forward)
    app.router.add_route("*", POD_PATH + "/exec", exec_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield app, port
    await runner.cleanup()


def kubectl_env(home, port: int, **extra: str) -> dict[str, str]:
    config = home / "config"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "nobody",
                                                  "namespace": "default"}}],
        "current-context": "fake",
    }))
    env = {"HOME": str(home), "KUBECONFIG": str(config), "PATH": os.environ.get("PATH", ""),
           "KUBECACHEDIR": str(home / "cache")}
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def kubectl(env: dict[str, str], *args: str):
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), TIMEOUT)


async def forwarded_port(proc: asyncio.subprocess.Process) -> int:
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        if not line:
            err = await proc.stderr.read()
            raise AssertionError(f"kubectl port-forward ended: {err.decode()}")
        if line.startswith(b"Forwarding from 127.0.0.1:"):
            return int(line.split(b":")[1].split()[0])


async def echo_over(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return data


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["ws-tunnel", "raw-upgrade"])
async def test_kubectl_port_forward(fake_api, tmp_path, websockets):
    app, port = fake_api
    env = kubectl_env(tmp_path, port, KUBECTL_PORT_FORWARD_WEBSOCKETS=websockets)
    async with kubectl(env, "port-forward", "pod/web", ":80", "--address", "127.0.0.1") as proc:
        local = await forwarded_port(proc)
        assert await echo_over(local, b"hello") == b"hello"
        big = os.urandom(8 << 20)
        assert await echo_over(local, big) == big
        assert await echo_over(local, b"again") == b"again"
    upgrade = "websocket" if websockets == "true" else "SPDY/3.1"
    assert f"{'GET' if websockets == 'true' else 'POST'} portforward {upgrade}" in app[SEEN]


@pytest.mark.parametrize("websockets", ["false", "true"], ids=["spdy-only", "fallback"])
async def test_kubectl_exec_over_spdy(fake_api, tmp_path, websockets):
    """Only SPDY, or WebSocket first: the fake's 400 makes kubectl fall back to SPDY."""
    app, port = fake_api
    env = kubectl_env(tmp_path, port, KUBECTL_REMOTE_COMMAND_WEBSOCKETS=websockets)
    async with kubectl(env, "exec", "web", "-c", "main", "--", "sh", "-c", "x") as proc:
        start = time.monotonic()
        received = 0
        while chunk := await asyncio.wait_for(proc.stdout.read(1 << 20), TIMEOUT):
            received += len(chunk)
        elapsed = time.monotonic() - start
        stderr = (await asyncio.wait_for(proc.stderr.read(), TIMEOUT)).decode()
        rc = await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert received == EXEC_BYTES, stderr
    assert "done" in stderr and "command terminated with exit code 3" in stderr, stderr
    assert rc == 3, stderr
    assert "POST exec SPDY/3.1" in app[SEEN]
    assert ("GET exec websocket" in app[SEEN]) == (websockets == "true")
    print(f"\nSPDY exec stdout through kubectl: {received / (1 << 20):.0f} MiB in "
          f"{elapsed:.2f} s = {received / (1 << 20) / elapsed:.0f} MiB/s")
