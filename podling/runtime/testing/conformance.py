"""The RuntimeService conformance suite (docs/architecture.md §5): every implementation passes it.

A check is ``async def check_x(h: RuntimeHarness)``. The harness supplies the runtime and
builds configs; containers run a POSIX ``sh -c`` script from this small vocabulary, which
fakes must emulate: ``exit N``, ``sleep 1000`` (runs until stopped), ``trap '' TERM; sleep
1000`` (ignores SIGTERM), and ``/nonexistent`` as the command (fails to start).
Streaming checks use ``cat``, ``sh -c 'exit N'``, ``sh -c 'echo out; echo err >&2'``,
``/nonexistent``, ``sleep N``, an interactive ``sh`` (with a tty: ``stty size``, ``echo``,
``exit N``) and a container running ``while true; do echo pong | nc -l -p 8080; done``.
``REAL_CHECKS`` need real processes (namespaces, networking, logs) and run only when
``h.real``. The runner creates one harness per check and tears it down afterwards; a real
harness's teardown must leave nothing behind. Nothing here imports pytest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Awaitable, Callable, Protocol

from ..interface import (REASON_COMPLETED, REASON_ERROR, REASON_START_ERROR, STDERR, STDOUT,
                         ContainerConfig, ExecSession, PortForwardError,
                         ContainerNotFound, ContainerStartError, ContainerState,
                         InvalidState, NamespaceMode, NamespaceOptions, PodSandboxConfig,
                         RuntimeService, SandboxNotFound, SandboxNotReady, SandboxState)

TIMEOUT = 10.0
LONG = "trap 'exit 143' TERM; sleep 1000 & wait"  # PID 1 needs a TERM handler
IGNORE_TERM = "trap '' TERM; sleep 1000"


class RuntimeHarness(Protocol):
    runtime: RuntimeService
    real: bool

    def sandbox_config(self, name: str, *, namespace_options: NamespaceOptions | None = None,
                       labels: dict[str, str] | None = None) -> PodSandboxConfig: ...

    def container_config(self, name: str, script: str, *,
                         labels: dict[str, str] | None = None,
                         annotations: dict[str, str] | None = None,
                         command: list[str] | None = None) -> ContainerConfig: ...

    async def reopen(self) -> RuntimeService:
        """A new runtime object over the same state (an agent restart); becomes ``runtime``."""
        ...

    def exec_leftovers(self, marker: str) -> list[str]:
        """Exec'd processes whose command line contains ``marker`` that still exist, and
        any resources the runtime keeps for execs (e.g. directories); empty = nothing left."""
        ...


Check = Callable[[RuntimeHarness], Awaitable[None]]


async def expect(exc: type[BaseException], call: Awaitable[object]) -> None:
    try:
        await call
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}")


async def wait_exited(h: RuntimeHarness, cid: str) -> None:
    status = await asyncio.wait_for(h.runtime.wait_container(cid), TIMEOUT)
    assert status.state is ContainerState.EXITED, status


async def pod(h: RuntimeHarness, name: str = "p", **kw: object) -> str:
    return await h.runtime.run_pod_sandbox(h.sandbox_config(name, **kw))  # type: ignore[arg-type]


async def running(h: RuntimeHarness, sid: str, name: str, script: str = LONG,
                  **kw: object) -> str:
    cid = await h.runtime.create_container(sid, h.container_config(name, script, **kw))  # type: ignore[arg-type]
    await h.runtime.start_container(cid)
    return cid


# -- checks for every implementation --------------------------------------------------------


async def check_sandbox_lifecycle(h: RuntimeHarness) -> None:
    rt = h.runtime
    sid = await pod(h, "web", labels={"app": "web"})
    st = await rt.pod_sandbox_status(sid)
    assert st.state is SandboxState.READY and st.pid > 0, st
    assert (st.metadata.name, st.metadata.namespace) == ("web", "default")
    assert st.labels == {"app": "web"} and st.network_namespace_path
    await rt.stop_pod_sandbox(sid)
    await rt.stop_pod_sandbox(sid)
    assert (await rt.pod_sandbox_status(sid)).state is SandboxState.NOTREADY
    await rt.remove_pod_sandbox(sid)
    await rt.remove_pod_sandbox(sid)
    await expect(SandboxNotFound, rt.pod_sandbox_status(sid))
    await rt.stop_pod_sandbox(sid)


async def check_list_sandbox_by_labels(h: RuntimeHarness) -> None:
    a = await pod(h, "a", labels={"app": "a", "tier": "x"})
    b = await pod(h, "b", labels={"app": "b", "tier": "x"})
    ids = [s.id for s in await h.runtime.list_pod_sandbox()]
    assert ids == [a, b], ids
    assert [s.id for s in await h.runtime.list_pod_sandbox({"app": "b"})] == [b]
    assert len(await h.runtime.list_pod_sandbox({"tier": "x"})) == 2
    assert await h.runtime.list_pod_sandbox({"app": "zzz"}) == []


async def check_container_lifecycle(h: RuntimeHarness) -> None:
    rt = h.runtime
    sid = await pod(h)
    cid = await rt.create_container(sid, h.container_config("c", LONG))
    st = await rt.container_status(cid)
    assert st.state is ContainerState.CREATED and st.sandbox_id == sid and st.name == "c"
    await rt.start_container(cid)
    st = await rt.container_status(cid)
    assert st.state is ContainerState.RUNNING and st.pid > 0 and st.started_at > 0, st
    await rt.stop_container(cid, 5)
    st = await rt.container_status(cid)
    assert st.state is ContainerState.EXITED and st.finished_at >= st.started_at, st
    await rt.stop_container(cid, 5)
    await rt.remove_container(cid)
    await rt.remove_container(cid)
    await rt.stop_container(cid, 1)
    await expect(ContainerNotFound, rt.container_status(cid))


async def check_exit_codes(h: RuntimeHarness) -> None:
    sid = await pod(h)
    ok = await running(h, sid, "ok", "exit 0")
    bad = await running(h, sid, "bad", "exit 3")
    for cid, code, reason in ((ok, 0, REASON_COMPLETED), (bad, 3, REASON_ERROR)):
        st = await asyncio.wait_for(h.runtime.wait_container(cid), TIMEOUT)
        assert (st.state, st.exit_code, st.reason) == (ContainerState.EXITED, code, reason), st
        assert st.finished_at > 0 and st.pid == 0


async def check_exit_events(h: RuntimeHarness) -> None:
    sid = await pod(h)
    events = h.runtime.exit_events()
    cid = await running(h, sid, "c", "exit 3")
    event = await asyncio.wait_for(events.__anext__(), TIMEOUT)
    assert (event.container_id, event.sandbox_id, event.exit_code) == (cid, sid, 3), event
    await events.aclose()  # type: ignore[attr-defined]


async def check_stop_signal_then_kill(h: RuntimeHarness) -> None:
    sid = await pod(h)
    polite = await running(h, sid, "polite", LONG)
    stubborn = await running(h, sid, "stubborn", IGNORE_TERM)
    await asyncio.sleep(0.2 if h.real else 0)  # let the shell install its trap
    await h.runtime.stop_container(polite, 10)
    assert (await h.runtime.container_status(polite)).exit_code == 143
    started = time.monotonic()
    await h.runtime.stop_container(stubborn, 1.0)
    took = time.monotonic() - started
    st = await h.runtime.container_status(stubborn)
    assert st.state is ContainerState.EXITED and st.exit_code == 137, st
    assert took >= 0.9, took


async def check_not_found(h: RuntimeHarness) -> None:
    rt = h.runtime
    await expect(ContainerNotFound, rt.start_container("missing"))
    await expect(ContainerNotFound, rt.container_status("missing"))
    await expect(ContainerNotFound, rt.exec_sync("missing", ["true"], 1))
    await expect(ContainerNotFound, rt.wait_container("missing"))
    await expect(SandboxNotFound, rt.create_container("missing", h.container_config("c", LONG)))
    await expect(SandboxNotFound, rt.pod_sandbox_status("missing"))


async def check_invalid_states(h: RuntimeHarness) -> None:
    rt = h.runtime
    sid = await pod(h)
    cid = await running(h, sid, "c")
    await expect(InvalidState, rt.start_container(cid))
    await rt.stop_pod_sandbox(sid)
    await expect(SandboxNotReady, rt.create_container(sid, h.container_config("d", LONG)))
    await expect(InvalidState, rt.exec_sync(cid, ["true"], 1))


async def check_stop_created_container(h: RuntimeHarness) -> None:
    sid = await pod(h)
    cid = await h.runtime.create_container(sid, h.container_config("c", LONG))
    await h.runtime.stop_container(cid, 1)
    st = await asyncio.wait_for(h.runtime.wait_container(cid), TIMEOUT)
    assert st.state is ContainerState.EXITED and st.started_at == 0, st
    await expect(InvalidState, h.runtime.start_container(cid))


async def check_start_error(h: RuntimeHarness) -> None:
    sid = await pod(h)
    config = h.container_config("c", "", command=["/nonexistent"])
    cid = await h.runtime.create_container(sid, config)
    await expect(ContainerStartError, h.runtime.start_container(cid))
    st = await h.runtime.container_status(cid)
    assert (st.state, st.reason, st.exit_code) == (ContainerState.EXITED, REASON_START_ERROR,
                                                   128), st
    assert st.message
    await h.runtime.remove_container(cid)


async def check_stop_sandbox_stops_containers(h: RuntimeHarness) -> None:
    sid = await pod(h)
    a, b = await running(h, sid, "a"), await running(h, sid, "b", IGNORE_TERM)
    await h.runtime.stop_pod_sandbox(sid)
    for cid in (a, b):
        assert (await h.runtime.container_status(cid)).state is ContainerState.EXITED
    assert len(await h.runtime.list_containers(sid)) == 2


async def check_remove_sandbox_removes_containers(h: RuntimeHarness) -> None:
    sid = await pod(h)
    cid = await running(h, sid, "a")
    other = await pod(h, "other")
    keep = await running(h, other, "k")
    await h.runtime.remove_pod_sandbox(sid)
    await expect(ContainerNotFound, h.runtime.container_status(cid))
    assert [c.id for c in await h.runtime.list_containers()] == [keep]


async def check_list_containers_filters(h: RuntimeHarness) -> None:
    s1, s2 = await pod(h, "one"), await pod(h, "two")
    a = await running(h, s1, "a", labels={"io.kubernetes.container.name": "a"})
    b = await running(h, s1, "b", labels={"io.kubernetes.container.name": "b"})
    c = await running(h, s2, "a", labels={"io.kubernetes.container.name": "a"})
    rt = h.runtime
    assert [x.id for x in await rt.list_containers()] == [a, b, c]
    assert [x.id for x in await rt.list_containers(s1)] == [a, b]
    assert [x.id for x in await rt.list_containers(
        labels={"io.kubernetes.container.name": "a"})] == [a, c]
    assert [x.id for x in await rt.list_containers(
        s2, {"io.kubernetes.container.name": "a"})] == [c]


async def check_labels_annotations_roundtrip(h: RuntimeHarness) -> None:
    sid = await pod(h)
    labels = {"io.kubernetes.pod.name": "p", "io.kubernetes.container.name": "c"}
    annotations = {"io.kubernetes.container.restartCount": "2", "hash": "abc"}
    cid = await running(h, sid, "c", labels=labels, annotations=annotations)
    st = await h.runtime.container_status(cid)
    assert st.labels == labels and st.annotations == annotations, st


async def check_exec_sync(h: RuntimeHarness) -> None:
    sid = await pod(h)
    cid = await running(h, sid, "c")
    result = await h.runtime.exec_sync(cid, ["echo", "hello"], 5)
    assert (result.exit_code, result.stdout) == (0, b"hello\n"), result


async def check_restart_sees_same_state(h: RuntimeHarness) -> None:
    sid = await pod(h)
    a = await running(h, sid, "a")
    done = await running(h, sid, "done", "exit 3")
    await wait_exited(h, done)
    before = {c.id: c for c in await h.runtime.list_containers()}
    rt = await h.reopen()
    after = {c.id: c for c in await rt.list_containers()}
    assert after.keys() == before.keys()
    assert after[a].state is ContainerState.RUNNING and after[a].pid == before[a].pid
    assert (after[done].state, after[done].exit_code) == (ContainerState.EXITED, 3)
    assert [s.id for s in await rt.list_pod_sandbox()] == [sid]
    assert (await rt.pod_sandbox_status(sid)).state is SandboxState.READY
    await rt.stop_container(a, 5)
    await rt.remove_pod_sandbox(sid)


CHECKS: list[Check] = [
    check_sandbox_lifecycle,
    check_list_sandbox_by_labels,
    check_container_lifecycle,
    check_exit_codes,
    check_exit_events,
    check_stop_signal_then_kill,
    check_not_found,
    check_invalid_states,
    check_stop_created_container,
    check_start_error,
    check_stop_sandbox_stops_containers,
    check_remove_sandbox_removes_containers,
    check_list_containers_filters,
    check_labels_annotations_roundtrip,
    check_exec_sync,
    check_restart_sees_same_state,
]
"""Checks every implementation must pass."""


# -- checks that need real processes --------------------------------------------------------


async def _out(h: RuntimeHarness, cid: str, *argv: str) -> str:
    result = await h.runtime.exec_sync(cid, list(argv), 5)
    assert result.exit_code == 0, result
    return result.stdout.decode()


async def check_real_shared_namespaces(h: RuntimeHarness) -> None:
    sid = await pod(h)
    a, b = await running(h, sid, "a"), await running(h, sid, "b")
    for ns in ("net", "ipc", "uts"):
        la = await _out(h, a, "readlink", f"/proc/self/ns/{ns}")
        lb = await _out(h, b, "readlink", f"/proc/self/ns/{ns}")
        assert la == lb and la.startswith(f"{ns}:["), (ns, la, lb)
    assert (await _out(h, a, "hostname")).strip() == "p"
    assert await _out(h, a, "readlink", "/proc/self/ns/pid") != \
        await _out(h, b, "readlink", "/proc/self/ns/pid")


async def check_real_localhost_between_containers(h: RuntimeHarness) -> None:
    sid = await pod(h)
    await running(h, sid, "server", "while true; do echo pong | nc -l -p 8080; done")
    client = await running(h, sid, "client")
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = await h.runtime.exec_sync(client, ["sh", "-c", "nc 127.0.0.1 8080 </dev/null"], 5)
        if result.stdout.strip() == b"pong":
            return
        assert time.monotonic() < deadline, result
        await asyncio.sleep(0.1)


async def check_real_pid_pod(h: RuntimeHarness) -> None:
    sid = await pod(h, namespace_options=NamespaceOptions(pid=NamespaceMode.POD))
    await running(h, sid, "sleeper", "sleep 1234")
    viewer = await running(h, sid, "viewer")
    ps = await _out(h, viewer, "ps", "-o", "pid,args")
    first = ps.splitlines()[1].split(None, 1)
    assert first[0] == "1" and first[1].startswith("/pause"), ps
    assert "sleep 1234" in ps, ps


async def check_real_pid_container(h: RuntimeHarness) -> None:
    sid = await pod(h)
    await running(h, sid, "sleeper", "sleep 1234")
    viewer = await running(h, sid, "viewer", "exec sleep 999")
    ps = await _out(h, viewer, "ps", "-o", "pid,args")
    lines = [line.split(None, 1) for line in ps.splitlines()[1:]]
    assert lines[0][0] == "1" and "sleep 999" in lines[0][1], ps
    assert "sleep 1234" not in ps and "/pause" not in ps, ps


async def check_pid_target_must_run(h: RuntimeHarness) -> None:
    """``pid_target`` names a running container of the same sandbox, else InvalidState."""
    sid, other = await pod(h), await pod(h, "q")
    created = await h.runtime.create_container(sid, h.container_config("c", LONG))
    elsewhere = await running(h, other, "x")
    for target in (created, elsewhere, "no-such-container"):
        config = dataclasses.replace(h.container_config("d", LONG), pid_target=target)
        await expect(InvalidState, h.runtime.create_container(sid, config))


CHECKS.append(check_pid_target_must_run)


async def check_real_pid_target(h: RuntimeHarness) -> None:
    """A container with ``pid_target`` sees the target's processes (an ephemeral container
    of ``kubectl debug --target``), not the other containers'."""
    sid = await pod(h)
    target = await running(h, sid, "target", "exec sleep 1234")
    await running(h, sid, "other", "exec sleep 4321")
    config = dataclasses.replace(h.container_config("debugger", LONG), pid_target=target)
    debugger = await h.runtime.create_container(sid, config)
    await h.runtime.start_container(debugger)
    ps = await _out(h, debugger, "ps", "-o", "pid,args")
    assert "sleep 1234" in ps and "sleep 4321" not in ps, ps


async def check_real_logs_cri_format(h: RuntimeHarness) -> None:
    sid = await pod(h)
    cid = await running(h, sid, "c", "echo out-line; echo err-line >&2; exit 0")
    st = await asyncio.wait_for(h.runtime.wait_container(cid), TIMEOUT)
    with open(st.log_path) as f:
        lines = f.read().splitlines()
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d (stdout|stderr) [FP] ")
    assert all(pattern.match(line) for line in lines), lines
    assert any(line.endswith("stdout F out-line") for line in lines), lines
    assert any(line.endswith("stderr F err-line") for line in lines), lines


REAL_CHECKS: list[Check] = [
    check_real_shared_namespaces,
    check_real_localhost_between_containers,
    check_real_pid_pod,
    check_real_pid_container,
    check_real_pid_target,
    check_real_logs_cri_format,
]
"""Checks that need real processes; skipped for fakes."""


# -- streaming (docs/streaming.md §3) -------------------------------------------------------

PONG = "while true; do echo pong | nc -l -p 8080; done"


async def drain(session: ExecSession) -> dict[int, bytes]:
    """All output of a session by stream (bounded by TIMEOUT)."""
    out: dict[int, bytes] = {STDOUT: b"", STDERR: b""}

    async def run() -> None:
        while (chunk := await session.read()) is not None:
            out[chunk[0]] += chunk[1]
    await asyncio.wait_for(run(), TIMEOUT)
    return out


async def read_until(session: ExecSession, needle: bytes, *, count: int = 1) -> bytes:
    """Output (all streams) up to ``count`` occurrences of ``needle``; fails at TIMEOUT."""
    seen = b""

    async def run() -> None:
        nonlocal seen
        while seen.count(needle) < count:
            chunk = await session.read()
            assert chunk is not None, seen
            seen += chunk[1]
    try:
        await asyncio.wait_for(run(), TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"{needle!r} not seen in {seen!r}") from None
    return seen


async def run_exec(h: RuntimeHarness, cid: str, argv: list[str]) -> tuple[int | None,
                                                                          dict[int, bytes]]:
    session = await h.runtime.exec(cid, argv, stdin=False, tty=False)
    try:
        out = await drain(session)
        return await asyncio.wait_for(session.wait(), TIMEOUT), out
    finally:
        await session.close()


async def check_exec_stdin_echo(h: RuntimeHarness) -> None:
    cid = await running(h, await pod(h), "c")
    session = await h.runtime.exec(cid, ["cat"], stdin=True, tty=False)
    try:
        assert session.tty is False
        await session.write(b"hello ")
        await session.write(b"world\n")
        await session.close_stdin()
        assert await drain(session) == {STDOUT: b"hello world\n", STDERR: b""}
        assert await asyncio.wait_for(session.wait(), TIMEOUT) == 0
    finally:
        await session.close()
    await session.close()
    assert await session.read() is None


async def check_exec_exit_codes(h: RuntimeHarness) -> None:
    cid = await running(h, await pod(h), "c")
    for argv, want in ((["sh", "-c", "exit 0"], 0), (["sh", "-c", "exit 3"], 3)):
        assert (await run_exec(h, cid, argv))[0] == want, argv
    code, out = await run_exec(h, cid, ["/nonexistent"])
    assert code == 127 and b"/nonexistent" in out[STDERR] and out[STDOUT] == b"", (code, out)
    result = await h.runtime.exec_sync(cid, ["/nonexistent"], 5)
    assert result.exit_code == 127 and b"/nonexistent" in result.stderr, result


async def check_exec_stdout_stderr(h: RuntimeHarness) -> None:
    cid = await running(h, await pod(h), "c")
    code, out = await run_exec(h, cid, ["sh", "-c", "echo out; echo err >&2"])
    assert (code, out) == (0, {STDOUT: b"out\n", STDERR: b"err\n"}), (code, out)
    result = await h.runtime.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], 5)
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n"), result


async def check_exec_tty_resize(h: RuntimeHarness) -> None:
    cid = await running(h, await pod(h), "c")
    session = await h.runtime.exec(cid, ["sh"], stdin=True, tty=True)
    try:
        assert session.tty is True
        await session.resize(123, 45)
        await read_until(session, b"# ")  # the prompt: input typed earlier may be flushed
        await session.write(b"stty size\n")
        await read_until(session, b"45 123")
        await session.resize(100, 30)
        await session.write(b"stty size\n")
        await read_until(session, b"30 100")
        await session.write(b"exit 4\n")
        out = await drain(session)
        assert STDERR not in out or out[STDERR] == b"", out
        assert await asyncio.wait_for(session.wait(), TIMEOUT) == 4
    finally:
        await session.close()


async def check_exec_close_kills(h: RuntimeHarness) -> None:
    cid = await running(h, await pod(h), "c")
    session = await h.runtime.exec(cid, ["sleep", "4321"], stdin=True, tty=False)
    deadline = time.monotonic() + TIMEOUT
    while not any("4321" in p for p in h.exec_leftovers("4321")):
        assert time.monotonic() < deadline, "the exec'd process never appeared"
        await asyncio.sleep(0.02)
    reader = asyncio.ensure_future(session.read())
    await session.close()
    assert await asyncio.wait_for(reader, TIMEOUT) is None
    assert h.exec_leftovers("4321") == []
    await session.close()
    await session.write(b"ignored")
    other = await h.runtime.exec(cid, ["sleep", "4322"], stdin=False, tty=True)
    await other.close()
    assert h.exec_leftovers("4322") == []


async def check_streaming_errors(h: RuntimeHarness) -> None:
    rt = h.runtime
    await expect(ContainerNotFound, rt.exec("missing", ["true"], stdin=False, tty=False))
    await expect(ContainerNotFound, rt.attach("missing", stdin=False))
    await expect(SandboxNotFound, rt.port_forward("missing", 80))
    sid = await pod(h)
    done = await running(h, sid, "done", "exit 0")
    await wait_exited(h, done)
    await expect(InvalidState, rt.exec(done, ["true"], stdin=False, tty=False))
    await expect(InvalidState, rt.attach(done, stdin=True))


async def check_attach_tty_shell(h: RuntimeHarness) -> None:
    sid = await pod(h)
    config = dataclasses.replace(h.container_config("sh", "", command=["sh"]), stdin=True,
                                 tty=True)
    cid = await h.runtime.create_container(sid, config)
    await h.runtime.start_container(cid)
    session = await h.runtime.attach(cid, stdin=True)
    try:
        assert session.tty is True
        reading = asyncio.ensure_future(read_until(session, b"attached-ok", count=2))
        for _ in range(int(TIMEOUT)):  # the shell may not be reading its terminal yet
            await session.write(b"echo attached-ok\n")
            done, _pending = await asyncio.wait({reading}, timeout=1.0)
            if done:
                break
        await reading  # the echoed command line, then its output
        # kubectl attach resizes twice at once (w+1 x h+1, then w x h): the last one wins
        await session.resize(101, 31)
        await session.resize(100, 30)
        reading = asyncio.ensure_future(read_until(session, b"30 100"))
        await session.write(b"stty size\n")
        await asyncio.wait_for(reading, TIMEOUT)
    finally:
        await session.close()
    await session.close()
    assert (await h.runtime.container_status(cid)).state is ContainerState.RUNNING


async def check_port_forward(h: RuntimeHarness) -> None:
    sid = await pod(h)
    await running(h, sid, "server", PONG)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            reader, writer = await h.runtime.port_forward(sid, 8080)
        except PortForwardError:
            assert time.monotonic() < deadline, "nothing listened on 8080"
            await asyncio.sleep(0.05)
            continue
        try:
            data = await asyncio.wait_for(reader.read(100), TIMEOUT)
        finally:
            writer.close()
        if data == b"pong\n":
            break
    try:
        await h.runtime.port_forward(sid, 8081)
    except PortForwardError as exc:
        text = str(exc)
        assert text.startswith("failed to connect to localhost:8081 inside namespace") \
            and sid in text and "connection refused" in text, text
    else:
        raise AssertionError("expected PortForwardError")


STREAMING_CHECKS: list[Check] = [
    check_exec_stdin_echo,
    check_exec_exit_codes,
    check_exec_stdout_stderr,
    check_exec_tty_resize,
    check_exec_close_kills,
    check_streaming_errors,
    check_attach_tty_shell,
    check_port_forward,
]
CHECKS += STREAMING_CHECKS


async def check_real_attach_separates_streams(h: RuntimeHarness) -> None:
    sid = await pod(h)
    cid = await running(h, sid, "c", "while true; do echo o; echo e >&2; sleep 0.1; done")
    session = await h.runtime.attach(cid, stdin=False)
    seen: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    try:
        async def run() -> None:
            while b"o\n" not in seen[STDOUT] or b"e\n" not in seen[STDERR]:
                chunk = await session.read()
                assert chunk is not None, seen
                seen[chunk[0]] += chunk[1]
        await asyncio.wait_for(run(), TIMEOUT)
    finally:
        await session.close()
    assert b"e" not in seen[STDOUT] and b"o" not in seen[STDERR], seen
    assert await asyncio.wait_for(session.wait(), TIMEOUT) is None


REAL_CHECKS.append(check_real_attach_separates_streams)
