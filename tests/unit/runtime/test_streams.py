"""Streaming pieces without containers: FakeRuntime's sessions and port-forward, and the pure
or host-only parts of the OCI exec / attach / port-forward modules."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest

from podling.runtime.fake import FakeRuntime
from podling.runtime.fake_streams import FakeProcess
from podling.runtime.interface import (STDERR, STDOUT, ContainerConfig, ExecResult,
                                       ExecSession, InvalidState, PodSandboxConfig,
                                       PortForwardError)
from podling.runtime.oci import attach, execs, portforward, proc, stdio


async def running(rt: FakeRuntime, **kw: object) -> tuple[str, str]:
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="p", namespace="ns", uid="u"))
    config = ContainerConfig(name="c", rootfs="/r", command=["sh"], **kw)  # type: ignore[arg-type]
    cid = await rt.create_container(sid, config)
    await rt.start_container(cid)
    return sid, cid


# -- FakeRuntime ----------------------------------------------------------------------------


async def test_fake_exec_default_uses_exec_handler() -> None:
    rt = FakeRuntime()
    rt.exec_handler = lambda cid, argv: ExecResult(2, b"o", b"e")
    _, cid = await running(rt)
    session = await rt.exec(cid, ["x", "y"], stdin=False, tty=False)
    assert isinstance(session, ExecSession)
    assert [await session.read(), await session.read(), await session.read()] == [
        (STDOUT, b"o"), (STDERR, b"e"), None]
    assert await session.wait() == 2
    assert rt.calls_of("exec") == [(cid, ["x", "y"], False, False)]
    assert rt.sessions == [session]


async def test_fake_exec_handler_sees_stdin_resize_and_kill() -> None:
    rt = FakeRuntime()
    seen: list[FakeProcess] = []

    async def program(p: FakeProcess) -> int:
        seen.append(p)
        p.output(await p.read_stdin(), STDERR)  # with a tty: reported as STDOUT
        await p.resized.wait()
        p.output(repr(p.size).encode())
        await asyncio.Event().wait()
        return 0
    rt.exec_process = program
    _, cid = await running(rt)
    session = await rt.exec(cid, ["top"], stdin=True, tty=True)
    await session.write(b"q")
    await session.resize(100, 40)
    assert await session.read() == (STDOUT, b"q")
    assert await session.read() == (STDOUT, b"(100, 40)")
    await session.close()
    await session.close()
    assert seen[0].killed and await session.read() is None and await session.wait() == 137


async def test_fake_attach_ends_with_the_container() -> None:
    rt = FakeRuntime()
    _, cid = await running(rt, tty=True, stdin=True)
    session = await rt.attach(cid, stdin=True)
    assert session.tty and session.process.stdin
    rt.exit_container(cid, 0)
    assert await asyncio.wait_for(session.read(), 1) is None
    assert await session.wait() is None
    with pytest.raises(InvalidState):
        await rt.attach(cid, stdin=False)
    with pytest.raises(InvalidState):
        await rt.exec(cid, ["true"], stdin=False, tty=False)


async def test_fake_port_forward() -> None:
    rt = FakeRuntime()
    sid, _ = await running(rt)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        writer.close()
    rt.listen(sid, 80, echo)
    reader, writer = await rt.port_forward(sid, 80)
    writer.write(b"ping\n")
    assert await asyncio.wait_for(reader.read(), 1) == b"ping\n"
    writer.close()
    with pytest.raises(PortForwardError, match=f'localhost:81 inside namespace "{sid}"'):
        await rt.port_forward(sid, 81)
    assert rt.calls_of("port_forward") == [(sid, 80), (sid, 81)]


# -- OCI parts ------------------------------------------------------------------------------


def test_exit_code_for_start_failures() -> None:
    assert execs.exit_code_for('exec: "x": executable file not found in $PATH') == 127
    assert execs.exit_code_for('exec: "/x": stat /x: no such file or directory') == 127
    assert execs.exit_code_for('exec: "/etc/passwd": permission denied') == 126


def test_attach_resize_message() -> None:
    assert attach.resize_message(120, 40) == b"1 40 120\n"


def _exec_dir(tmp_path: Path, pid: int, *, mtime: float | None = None) -> str:
    directory = tmp_path / "e1"
    directory.mkdir()
    (directory / "pid").write_text(str(pid))
    if mtime is not None:
        os.utime(directory / "pid", (mtime, mtime))
    return str(directory)


async def test_exec_pid_is_verified_by_start_time(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        start = proc.pid_start_time(child.pid)
        directory = _exec_dir(tmp_path, child.pid)
        assert execs.exec_pid(directory, start) == (child.pid, start)
        assert execs.exec_pid(directory, start + 1) is None  # started before "runc"
        os.utime(os.path.join(directory, "pid"), (1, 1))
        assert execs.exec_pid(directory, start) is None  # started after the pid file
        assert execs.exec_pid(str(tmp_path / "missing"), start) is None
    finally:
        await proc.kill_and_reap(child)
    assert execs.exec_pid(directory, start) is None  # gone


def test_cleanup_leftovers_removes_directories_without_killing_strangers(
        tmp_path: Path) -> None:
    directory = _exec_dir(tmp_path, os.getpid(), mtime=time.time())
    with open(os.path.join(directory, "exec.json"), "w") as f:
        # "runc" started after us: we cannot be its exec'd process
        json.dump({"runc_pid": os.getpid(),
                   "runc_start_time": proc.pid_start_time(os.getpid()) + 1}, f)
    (tmp_path / "half-made").mkdir()
    execs.cleanup_leftovers(str(tmp_path))
    assert os.listdir(tmp_path) == []  # and we are still alive


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_port_forward_error_reads_like_containerd() -> None:
    port = _closed_port()
    with pytest.raises(PortForwardError) as info:
        await portforward.connect("", port, namespace="sb1", timeout=2)
    text = str(info.value)
    assert text.startswith(f'failed to connect to localhost:{port} inside namespace "sb1", '
                           f'IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused '
                           f'IPv6 dial tcp6 [::1]:{port}: '), text


async def test_port_forward_bad_namespace_path(tmp_path: Path) -> None:
    with pytest.raises(PortForwardError, match="failed to enter network namespace"):
        await portforward.connect(str(tmp_path / "nope"), 80, namespace="sb1", timeout=1)


async def test_run_in_thread_returns_and_raises() -> None:
    assert await portforward.run_in_thread(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        await portforward.run_in_thread(lambda: 1 // 0)


async def test_output_merges_sources_and_stops() -> None:
    out = stdio.Output(depth=2)
    gate = asyncio.Event()

    async def first(emit: stdio.Emit) -> None:
        await emit(STDOUT, b"a")
        await emit(STDOUT, b"")  # empty chunks are dropped
        await emit(STDOUT, b"b")

    async def second(emit: stdio.Emit) -> None:
        await gate.wait()
        await emit(STDERR, b"c")
    out.add(first)
    out.add(second)
    assert [await out.get(), await out.get()] == [(STDOUT, b"a"), (STDOUT, b"b")]
    gate.set()
    assert [await out.get(), await out.get(), await out.get()] == [(STDERR, b"c"), None, None]
    stopped = stdio.Output()
    stopped.add(lambda emit: asyncio.Event().wait())
    waiting = asyncio.ensure_future(stopped.get())
    await asyncio.sleep(0)
    await stopped.stop()
    assert await waiting is None


async def test_read_fd_and_write_fd_on_a_pipe() -> None:
    r, w = stdio.make_pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    try:
        payload = os.urandom(3 * stdio.READ_SIZE)
        writer = asyncio.ensure_future(stdio.write_fd(w, payload))
        got = bytearray()
        while len(got) < len(payload):
            got += await stdio.read_fd(r)
        await writer
        assert got == payload
    finally:
        os.close(w)
    try:
        assert await stdio.read_fd(r) == b""
    finally:
        os.close(r)


async def test_read_available_takes_what_is_ready() -> None:
    r, w = stdio.make_pipe()
    os.set_blocking(r, False)
    try:
        for part in (b"a" * 4096, b"b" * 4096, b"c"):
            os.write(w, part)
        assert await stdio.read_available(r, 10000) == b"a" * 4096 + b"b" * 4096 + b"c"
        os.write(w, b"x" * 100)
        assert await stdio.read_available(r, 10) == b"x" * 10
    finally:
        os.close(w)
        os.close(r)
