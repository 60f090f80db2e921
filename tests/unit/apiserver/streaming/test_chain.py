"""exec / attach / port-forward through the whole chain without root: the API server app
(memory storage) ⟷ the node API (HTTPS) ⟷ FakeRuntime, with aiohttp WebSocket clients
speaking the channel protocols as kubectl and the Python client do."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from podling.agent.kuberuntime import labels
from podling.agent.node.server import NodeServer
from podling.api import remotecommand as rc
from podling.api.resources import NODE_API_ANNOTATION, NODE_API_SOCKET_ANNOTATION
from podling.apiserver.app import build_app, registry_stores
from podling.apiserver.auth import ADMIN, TokenAuthenticator, User
from podling.apiserver.namespaces import ensure_built_in
from podling.runtime.fake import FakeRuntime
from podling.runtime.fake_streams import FakeProcess
from podling.runtime.interface import STDERR, ContainerConfig, PodSandboxConfig
from podling.storage.memory import MemoryStore

ADMIN_TOKEN, NODE_TOKEN, KUBELET_TOKEN = "admin", "node-n1", "kubelet-secret"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
POD = "/api/v1/namespaces/default/pods/web"


class Chain:
    def __init__(self, client: TestClient, runtime: FakeRuntime, sandbox: str,
                 pod: dict[str, Any]) -> None:
        self.client, self.runtime, self.sandbox, self.pod = client, runtime, sandbox, pod

    async def ws(self, path: str, protocols: tuple[str, ...] = (rc.V5,),
                 token: str = ADMIN_TOKEN) -> aiohttp.ClientWebSocketResponse:
        return await self.client.ws_connect(path, protocols=protocols,
                                            headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def chain(tmp_path, request) -> AsyncIterator[Chain]:
    """The chain; ``indirect`` param "socket" makes the node's HTTPS address unreachable so
    that only its local Unix socket works, "stale-socket" announces a socket that is gone."""
    mode = getattr(request, "param", "https")
    stores = registry_stores(MemoryStore())
    await ensure_built_in(stores["namespaces"])
    node_user = User("system:node:n1", ("system:nodes", "system:authenticated"), False)
    app = build_app(stores, TokenAuthenticator({ADMIN_TOKEN: ADMIN, NODE_TOKEN: node_user}),
                    node_token=KUBELET_TOKEN)
    pod = await stores["pods"].create("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [
            {"name": "main", "image": "busybox", "stdin": True, "tty": True},
            {"name": "side", "image": "busybox"}]}})
    runtime = FakeRuntime()
    uid = pod["metadata"]["uid"]
    sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(
        "web", "default", uid, labels={labels.POD_UID: uid}))
    for name, tty in (("main", True), ("side", False)):
        cid = await runtime.create_container(sandbox, ContainerConfig(
            name, "/rootfs", ["sh"], tty=tty, stdin=tty,
            labels={labels.POD_UID: uid, labels.CONTAINER_NAME: name}))
        await runtime.start_container(cid)
    node_api = NodeServer(token=KUBELET_TOKEN, pods_dir=str(tmp_path), runtime=runtime,
                          find_pod=lambda ns, name: pod if (ns, name) == ("default", "web")
                          else None)
    socket_path = str(tmp_path / "node-api.sock")
    port = await node_api.start("127.0.0.1", 0,
                                socket_path=socket_path if mode == "socket" else "")
    annotations = {NODE_API_ANNOTATION: f"https://127.0.0.1:{port}"}
    if mode != "https":
        annotations[NODE_API_SOCKET_ANNOTATION] = socket_path
    if mode == "socket":
        annotations[NODE_API_ANNOTATION] = "https://127.0.0.1:1"  # nothing listens there
    await stores["nodes"].create(None, {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
                                                          "annotations": annotations}})
    async with TestClient(TestServer(app)) as client:
        if mode == "socket":
            assert os.stat(socket_path).st_mode & 0o777 == 0o600
        yield Chain(client, runtime, sandbox, pod)
    await node_api.stop()
    assert not os.path.exists(socket_path)


async def messages_until_close(ws: aiohttp.ClientWebSocketResponse
                               ) -> list[tuple[int, bytes]]:
    out = []
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.BINARY:
            out.append((msg.data[0], msg.data[1:]))
    return out


async def echo_then_exit(process: FakeProcess) -> int:
    """cat, then a word on stderr; the exit code is the number of stdin chunks."""
    chunks = 0
    while data := await process.read_stdin():
        process.output(data)
        chunks += 1
    process.output(b"done\n", STDERR)
    return chunks


@pytest.mark.parametrize("chain", ["https", "socket", "stale-socket"], indirect=True)
async def test_v5_exec_relays_stdin_stdout_stderr_close_and_the_exit_code(chain) -> None:
    chain.runtime.exec_process = echo_then_exit
    ws = await chain.ws(f"{POD}/exec?container=side&command=cat&stdin=true&stdout=true"
                        f"&stderr=true")
    assert ws.protocol == rc.V5
    await ws.send_bytes(b"\x00hello ")
    await ws.send_bytes(b"\x00world")
    await ws.send_bytes(bytes([rc.CLOSE, rc.STDIN]))
    received = await asyncio.wait_for(messages_until_close(ws), 10)
    stdout = b"".join(d for c, d in received if c == rc.STDOUT)
    assert stdout == b"hello world"
    assert (rc.STDERR, b"done\n") in received
    status = json.loads(received[-1][1])
    assert received[-1][0] == rc.ERROR
    assert status == rc.exit_code_status(["cat"], 2)
    assert ws.close_code == 1000


async def test_v4_success_status_and_argv(chain) -> None:
    seen = []

    async def record(process: FakeProcess) -> int:
        seen.append(process.argv)
        process.output(b"x")
        return 0
    chain.runtime.exec_process = record
    ws = await chain.ws(f"{POD}/exec?container=side&command=sh&command=-c&command=echo+a+b"
                        f"&stdout=true", protocols=(rc.V4,))
    received = await asyncio.wait_for(messages_until_close(ws), 10)
    assert seen == [["sh", "-c", "echo a b"]]
    assert received == [(rc.STDOUT, b"x"), (rc.ERROR, rc.encode_status(rc.success_status()))]


async def test_v1_clients_get_the_error_text(chain) -> None:
    async def fail(process: FakeProcess) -> int:
        return 7
    chain.runtime.exec_process = fail
    ws = await chain.ws(f"{POD}/exec?container=side&command=false&stdout=true",
                        protocols=(rc.V1,))
    received = await asyncio.wait_for(messages_until_close(ws), 10)
    assert received == [(rc.ERROR, b"command terminated with non-zero exit code: error "
                                   b"executing command [false], exit code 7")]


async def test_tty_resize_reaches_the_process(chain) -> None:
    async def report_size(process: FakeProcess) -> int:
        await asyncio.wait_for(process.resized.wait(), 10)
        process.output(f"{process.size}".encode())
        return 0
    chain.runtime.exec_process = report_size
    ws = await chain.ws(f"{POD}/exec?container=main&command=sh&stdin=true&stdout=true&tty=true")
    await ws.send_bytes(bytes([rc.RESIZE]) + rc.encode_resize(100, 30))
    received = await asyncio.wait_for(messages_until_close(ws), 10)
    assert (rc.STDOUT, b"(100, 30)") in received


async def test_a_client_gone_mid_stream_kills_the_process(chain) -> None:
    started = asyncio.Event()

    async def forever(process: FakeProcess) -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0
    chain.runtime.exec_process = forever
    ws = await chain.ws(f"{POD}/exec?container=side&command=sleep&stdout=true")
    await asyncio.wait_for(started.wait(), 10)
    await ws.close()
    [session] = chain.runtime.sessions

    async def killed() -> None:
        while not session.process.killed:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(killed(), 10)


async def test_attach_relays_until_detach(chain) -> None:
    async def shell(process: FakeProcess) -> None:
        while data := await process.read_stdin():
            process.output(b"echo:" + data)
    chain.runtime.attach_process = shell
    ws = await chain.ws(f"{POD}/attach?container=main&stdin=true&stdout=true&tty=true")
    await ws.send_bytes(b"\x00ls\r")
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.data == b"\x01echo:ls\r"
    await ws.close()


@pytest.mark.parametrize("path,code,message", [
    ("/api/v1/namespaces/default/pods/nope/exec?command=ls&stdout=true", 404,
     'pods "nope" not found'),
    (f"{POD}/exec?container=nope&command=ls&stdout=true", 400,
     "container nope is not valid for pod web"),
    (f"{POD}/exec?command=ls&stdout=true", 400,
     "a container name must be specified for pod web, choose one of: [main side]"),
    (f"{POD}/exec?container=main&stdout=true", 400,
     "you must specify at least one command for the container"),
    (f"{POD}/exec?container=main&command=ls", 400,
     "you must specify at least 1 of stdin, stdout, stderr"),
])
async def test_refusals_are_statuses(chain, path, code, message) -> None:
    response = await chain.client.get(path, headers={**AUTH, "Connection": "Upgrade",
                                                     "Upgrade": "websocket",
                                                     "Sec-WebSocket-Version": "13",
                                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZQ=="})
    body = await response.json()
    assert (response.status, body["message"], body["kind"]) == (code, message, "Status")


async def test_a_container_that_is_not_running_is_not_found(chain) -> None:
    """The node's refusal is passed on as its plain text, as Kubernetes passes on the
    kubelet's (kubectl: ``error: unable to upgrade connection: container not found ("side")``)."""
    for c in await chain.runtime.list_containers(labels={labels.CONTAINER_NAME: "side"}):
        await chain.runtime.stop_container(c.id, 0)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await chain.ws(f"{POD}/exec?container=side&command=ls&stdout=true")
    assert caught.value.status == 404
    response = await chain.client.post(f"{POD}/exec?container=side&command=ls&stdout=true",
                                       headers={**AUTH, "Connection": "Upgrade",
                                                "Upgrade": "SPDY/3.1",
                                                "X-Stream-Protocol-Version": rc.V4})
    assert (response.status, await response.text()) == (404, 'container not found ("side")')


async def test_completed_pods_are_refused(chain) -> None:
    response = await chain.client.patch(f"{POD}/status", json={"status": {"phase": "Succeeded"}},
                                        headers={**AUTH, "Content-Type":
                                                 "application/merge-patch+json"})
    assert response.status == 200, await response.text()
    response = await chain.client.get(f"{POD}/exec?container=side&command=ls&stdout=true",
                                      headers={**AUTH, "Upgrade": "websocket",
                                               "Connection": "Upgrade"})
    body = await response.json()
    assert body["message"] == ("cannot exec into a container in a completed pod; current "
                               "phase is Succeeded")


async def test_a_node_token_may_not_exec(chain) -> None:
    response = await chain.client.post(f"{POD}/exec?container=side&command=ls&stdout=true",
                                       headers={"Authorization": f"Bearer {NODE_TOKEN}"})
    assert response.status == 403
    assert 'cannot create resource "pods/exec"' in (await response.json())["message"]


async def test_no_upgrade_is_a_bad_request(chain) -> None:
    response = await chain.client.post(f"{POD}/exec?container=side&command=ls&stdout=true",
                                       headers=AUTH)
    assert (response.status, (await response.json())["message"]) == \
        (400, "Upgrade request required")


async def test_python_client_port_forward_channels(chain) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()
    chain.runtime.listen(chain.sandbox, 80, echo)
    ws = await chain.ws(f"{POD}/portforward?ports=80&ports=81", protocols=(rc.V4,))
    first = [await asyncio.wait_for(ws.receive(), 10) for _ in range(4)]
    assert [m.data for m in first] == [b"\x00\x50\x00", b"\x01\x50\x00", b"\x02\x51\x00",
                                       b"\x03\x51\x00"]
    await ws.send_bytes(b"\x00hello")
    error = await asyncio.wait_for(ws.receive(), 10)  # port 81 has no listener
    reply = await asyncio.wait_for(ws.receive(), 10)
    if error.data[:1] == b"\x00":
        error, reply = reply, error
    assert reply.data == b"\x00HELLO"
    assert error.data[:1] == b"\x03"
    assert b"error forwarding port 81 to pod web_default" in error.data
    assert b"connect: connection refused" in error.data
    await ws.close()


async def test_text_stdin_of_the_python_client(chain) -> None:
    """kubernetes.stream sends str stdin as a TEXT message: chr(0) + the text."""
    chain.runtime.exec_process = echo_then_exit
    ws = await chain.ws(f"{POD}/exec?container=side&command=cat&stdin=true&stdout=true",
                        protocols=(rc.V4,))
    await ws.send_str("\x00typed\n")
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.data == b"\x01typed\n"
    await ws.close()
