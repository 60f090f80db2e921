"""Streams under abuse: credentials that must not exec, a raw WebSocket client that sends
garbage and vanishes mid-stream, and 200 exec sessions whose kubectl is SIGKILLed.

After each, nothing may be left: no exec'd process in the container's PID namespace, no
``runc exec`` or extra conmon of this node, no new files under the node's runtime dir, no
growth of the server's open descriptors — and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import time
import urllib.parse

import pytest

from streams_util import (SLEEPER, Pods, busybox, kubectl, kubectl_env, open_fds, pid_ns, pod,
                          processes_in_pid_ns, processes_matching, tag, tree)

aiohttp = pytest.importorskip("aiohttp")

SESSIONS = 200
BATCH = 20
FD_SLACK = 16


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    name = f"abuse-{t}"
    p = Pods(cluster, [pod(name, cluster.node, [busybox("main", SLEEPER)])])
    p.name = name
    p.tag = t
    p.wait_running(name)
    p.ns = pid_ns(p.container_pid(name, "main"))
    assert p.ns
    p.baseline = snapshot(cluster)
    return p


# -- leftovers ------------------------------------------------------------------------------


def snapshot(cluster) -> dict:
    run_dir = cluster.run_dir
    return {
        "conmon": sorted(processes_matching(run_dir, comm="conmon")),
        "tree": tree(os.path.join(run_dir, "runtime"), skip=("pause",)),
        "fds": open_fds(cluster.server.process.pid),
    }


def leftovers(pods, needle: str) -> list[str]:
    cluster = pods.cluster
    problems = []
    exec_procs = {pid: cmd for pid, cmd in processes_in_pid_ns(pods.ns).items()
                  if needle in cmd}
    if exec_procs:
        problems.append(f"exec'd processes in the container: {exec_procs}")
    runc_execs = {pid: cmd for pid, cmd in processes_matching(cluster.run_dir).items()
                  if " exec " in f" {cmd} " and "runc" in cmd}
    if runc_execs:
        problems.append(f"runc exec processes: {runc_execs}")
    now = snapshot(cluster)
    base = pods.baseline
    if now["conmon"] != base["conmon"]:
        problems.append(f"conmons {now['conmon']} != {base['conmon']}: "
                        f"{processes_matching(cluster.run_dir, comm='conmon')}")
    if now["tree"] != base["tree"]:
        problems.append(f"runtime dir: new {sorted(now['tree'] - base['tree'])[:20]}, "
                        f"gone {sorted(base['tree'] - now['tree'])[:20]}")
    if now["fds"] > base["fds"] + FD_SLACK:
        problems.append(f"server open fds {now['fds']} (baseline {base['fds']})")
    return problems


def wait_clean(pods, needle: str, timeout: float, context: object = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        problems = leftovers(pods, needle)
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s: {problems}\ncontext: {context}\n"
                                 f"server log tail:\n{pods.cluster.log()[-3000:]}")
        time.sleep(0.25)


def assert_clean_and_serving(pods, needle: str, timeout: float = 60.0,
                             context: object = None) -> None:
    wait_clean(pods, needle, timeout, context)
    assert pods.cluster.kubectl("get", "pods").returncode == 0
    out = kubectl(pods.cluster, "exec", pods.name, "--", "echo", "still-serving")
    assert (out.returncode, out.stdout) == (0, b"still-serving\n"), out
    # and clean again after that round trip: the round trip's own exec directory goes away
    # a moment after kubectl exits, but a session that was merely late to start would leave
    # its long sleep running for good
    wait_clean(pods, needle, 15.0, context)


def marker_absent(pods, marker: str) -> None:
    out = kubectl(pods.cluster, "exec", pods.name, "--", "sh", "-c",
                  f"[ -e {marker} ] && echo PRESENT || echo absent")
    assert (out.returncode, out.stdout) == (0, b"absent\n"), out


# -- credentials ----------------------------------------------------------------------------


def node_token(cluster) -> str:
    path = os.path.join(cluster.data_dir, "agent", "credentials", f"{cluster.node}.token")
    with open(path) as f:
        return f.read().strip()


def exec_url(cluster, name: str, command: list[str], **flags: str) -> str:
    query = [("command", c) for c in command] + list(flags.items())
    base = cluster.server.url.replace("https://", "wss://", 1)
    return (f"{base}/api/v1/namespaces/default/pods/{name}/exec?"
            + urllib.parse.urlencode(query))


def tls(cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cluster.server.ca_file)


async def ws_handshake_status(cluster, url: str, token: str) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, protocols=("v5.channel.k8s.io",),
                                          headers={"Authorization": f"Bearer {token}"},
                                          ssl=tls(cluster), timeout=aiohttp.ClientWSTimeout(
                                              ws_receive=10, ws_close=5))
        except aiohttp.WSServerHandshakeError as e:
            return e.status
        await ws.close()
        return 101


def test_bogus_token_cannot_exec(pods):
    cluster = pods.cluster
    marker = f"/tmp/pwned-bogus-{pods.tag}"
    out = kubectl(cluster, "--token", "bogus-" + pods.tag, "exec", pods.name, "--",
                  "touch", marker)
    assert out.returncode != 0
    assert b"Unauthorized" in out.stderr, out.stderr
    url = exec_url(cluster, pods.name, ["touch", marker], stdout="true", stderr="true")
    assert asyncio.run(ws_handshake_status(cluster, url, "bogus")) == 401
    marker_absent(pods, marker)


def test_node_token_cannot_exec(pods):
    """A node's own credentials read the pods bound to it but may not exec into them."""
    cluster = pods.cluster
    token = node_token(cluster)
    marker = f"/tmp/pwned-node-{pods.tag}"
    assert kubectl(cluster, "--token", token, "get", "pod", pods.name).returncode == 0
    out = kubectl(cluster, "--token", token, "exec", pods.name, "--", "touch", marker)
    assert out.returncode != 0
    assert b"forbidden" in out.stderr.lower(), out.stderr
    assert f"system:node:{cluster.node}".encode() in out.stderr, out.stderr
    url = exec_url(cluster, pods.name, ["touch", marker], stdout="true", stderr="true")
    assert asyncio.run(ws_handshake_status(cluster, url, token)) == 403
    pf = kubectl(cluster, "--token", token, "port-forward", f"pod/{pods.name}", "0:80",
                 timeout=30)
    assert pf.returncode != 0 and b"forbidden" in pf.stderr.lower(), pf.stderr
    marker_absent(pods, marker)


# -- a raw WebSocket client -----------------------------------------------------------------


async def garbage_session(cluster, name: str, needle: str, ns: str) -> list[str]:
    """Open an exec of ``sleep``, wait for the process, send garbage, vanish without a close
    frame. Returns what the server sent back (diagnostics)."""
    url = exec_url(cluster, name, ["sh", "-c", f"exec {needle}"], stdin="true",
                   stdout="true", stderr="true")
    seen = []
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, protocols=("v5.channel.k8s.io",),
                                      headers={"Authorization": f"Bearer {cluster.server.token}"},
                                      ssl=tls(cluster), autoping=True)
        assert ws.protocol == "v5.channel.k8s.io"
        deadline = time.monotonic() + 30
        while not any(needle == cmd for cmd in processes_in_pid_ns(ns).values()):
            assert time.monotonic() < deadline, "the exec'd process never appeared"
            await asyncio.sleep(0.05)
        garbage = [
            lambda: ws.send_str("a text frame where binary is expected"),
            lambda: ws.send_bytes(b""),                       # no channel byte at all
            lambda: ws.send_bytes(b"\x07unknown channel"),
            lambda: ws.send_bytes(b"\x04{not json"),          # broken resize
            lambda: ws.send_bytes(b"\x04" + b"{\"Width\":-1,\"Height\":99999999999}"),
            lambda: ws.send_bytes(b"\xff"),                   # close signal without a channel
            lambda: ws.send_bytes(b"\xff\x09"),               # close of a non-stdin channel
            lambda: ws.send_bytes(b"\x00" + os.urandom(256 * 1024)),  # stdin to a sleeper
            lambda: ws.send_bytes(os.urandom(64 * 1024)),
        ]
        for send in garbage:
            if ws.closed:
                break
            try:
                await send()
            except (ConnectionError, aiohttp.ClientError):
                break
        # whatever the server answered so far
        try:
            while True:
                msg = await asyncio.wait_for(ws.receive(), 0.5)
                seen.append(f"{msg.type.name}:{str(msg.data)[:100]}")
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                    break
        except asyncio.TimeoutError:
            pass
        # vanish mid-stream: drop the TCP connection, no close frame
        transport = ws._conn.transport if ws._conn is not None else None  # noqa: SLF001
        if transport is not None:
            transport.abort()
    return seen


def test_raw_websocket_garbage_and_abrupt_disconnect(pods):
    needle = f"sleep 7{int(pods.tag, 16) % 100000:05d}"
    answered = asyncio.run(garbage_session(pods.cluster, pods.name, needle, pods.ns))
    assert_clean_and_serving(pods, needle, context=answered)


def test_raw_websocket_disconnect_right_after_upgrade(pods):
    """10 clients that upgrade and drop the connection at once (before any frame)."""
    needle = f"sleep 8{int(pods.tag, 16) % 100000:05d}"

    async def drop_once() -> None:
        url = exec_url(pods.cluster, pods.name, ["sh", "-c", f"exec {needle}"],
                       stdin="true", stdout="true", stderr="true")
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(
                url, protocols=("v5.channel.k8s.io",),
                headers={"Authorization": f"Bearer {pods.cluster.server.token}"},
                ssl=tls(pods.cluster))
            ws._conn.transport.abort()  # noqa: SLF001

    async def main() -> None:
        await asyncio.gather(*[drop_once() for _ in range(10)])
    asyncio.run(main())
    assert_clean_and_serving(pods, needle)


# -- many killed sessions -------------------------------------------------------------------


def test_200_exec_sessions_killed_leave_nothing(pods):
    cluster = pods.cluster
    needle = "sleep 100"
    env = kubectl_env(cluster)
    started = 0
    seen_pids: set[int] = {p for p, c in processes_in_pid_ns(pods.ns).items() if c == needle}
    while started < SESSIONS:
        batch = [subprocess.Popen(["kubectl", "exec", pods.name, "--", "sleep", "100"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env)
                 for _ in range(min(BATCH, SESSIONS - started))]
        try:
            deadline = time.monotonic() + 60
            while True:
                now = {p for p, c in processes_in_pid_ns(pods.ns).items() if c == needle}
                new = now - seen_pids
                if len(new) >= len(batch):
                    break
                failed = [b for b in batch if b.poll() is not None]
                if failed:
                    raise AssertionError(f"kubectl exec ended early ({failed[0].returncode}): "
                                         f"{failed[0].stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"only {len(new)} of {len(batch)} exec'd sleeps "
                                         f"appeared (batch from {started})")
                time.sleep(0.05)
            seen_pids |= new
        finally:
            for b in batch:
                if b.poll() is None:
                    b.send_signal(signal.SIGKILL)
            for b in batch:
                b.wait(10)
                b.stderr.close()
        started += len(batch)
    assert_clean_and_serving(pods, needle, timeout=90)
