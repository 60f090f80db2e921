"""The runtime conformance suite against FakeRuntime and OciRuntime (runc + conmon).

The OCI variant needs root, runc, conmon, catatonit and busybox-static; it uses a private
runtime root and cgroup root per test and checks after each test that nothing is left:
no runc containers, conmon processes, mounts, cgroups or directories.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

pytest.register_assert_rewrite("podling.runtime.testing.conformance")

from podling.runtime.fake import FakeRuntime  # noqa: E402
from podling.runtime.fake_streams import FakeProcess  # noqa: E402
from podling.runtime.interface import (STDERR, ContainerConfig,  # noqa: E402
                                       ContainerStartError, ContainerStatus, ExecResult, NamespaceOptions,
                                       PodSandboxConfig, RuntimeService, SandboxState)
from podling.runtime.testing.conformance import (CHECKS, IGNORE_TERM, PONG,  # noqa: E402
                                                 REAL_CHECKS, Check)
from podling.runtime.testing.rootfs import build_busybox_rootfs, find_busybox  # noqa: E402


def _sandbox_config(name: str, *, namespace_options: NamespaceOptions | None = None,
                    labels: dict[str, str] | None = None) -> PodSandboxConfig:
    return PodSandboxConfig(name=name, namespace="default", uid=f"uid-{name}", hostname=name,
                            labels=labels or {},
                            namespace_options=namespace_options or NamespaceOptions())


# -- fake ----------------------------------------------------------------------------------


class FakeHarness:
    real = False

    def __init__(self) -> None:
        self.runtime: RuntimeService = FakeRuntime()
        fake = self.fake
        fake.on_start = self._on_start
        fake.exec_handler = _fake_result
        fake.exec_process = self._exec_process
        fake.attach_process = self._attach_process

    @property
    def fake(self) -> FakeRuntime:
        assert isinstance(self.runtime, FakeRuntime)
        return self.runtime

    def sandbox_config(self, name: str, **kw: object) -> PodSandboxConfig:
        return _sandbox_config(name, **kw)  # type: ignore[arg-type]

    def container_config(self, name: str, script: str, *, labels: dict[str, str] | None = None,
                         annotations: dict[str, str] | None = None,
                         command: list[str] | None = None) -> ContainerConfig:
        return ContainerConfig(name=name, rootfs="/nonexistent-rootfs",
                               command=command or ["sh", "-c", script], labels=labels or {},
                               annotations=annotations or {})

    @staticmethod
    async def _on_start(rt: FakeRuntime, cid: str, config: ContainerConfig) -> None:
        """Emulate the conformance script vocabulary."""
        if config.command[0] == "/nonexistent":
            rt.fail_start(cid, 'exec: "/nonexistent": no such file or directory')
            raise ContainerStartError("no such file")
        script = config.command[-1]
        if script == IGNORE_TERM:
            rt.ignore_term.add(cid)
        if script == PONG:
            rt.listen((await rt.container_status(cid)).sandbox_id, 8080, _pong)
        match = re.search(r"(?:^|; )exit (\d+)$", script)
        if match:
            rt.exit_container(cid, int(match.group(1)))

    @staticmethod
    async def _exec_process(p: FakeProcess) -> int:
        """Emulate the streaming vocabulary of the conformance suite."""
        if p.argv == ["cat"]:
            while data := await p.read_stdin():
                p.output(data)
            return 0
        if p.argv[:1] == ["sleep"]:
            await asyncio.Event().wait()
        if p.argv == ["sh"] and p.tty:
            return await _fake_shell(p)
        result = _fake_result(p.container_id, p.argv)
        p.output(result.stdout)
        p.output(result.stderr, STDERR)
        return result.exit_code

    @staticmethod
    async def _attach_process(p: FakeProcess) -> int:
        if p.argv == ["sh"] and p.tty:
            return await _fake_shell(p)
        await asyncio.Event().wait()
        return 0

    def exec_leftovers(self, marker: str) -> list[str]:
        return [" ".join(s.process.argv) for s in self.fake.sessions
                if s.running and marker in " ".join(s.process.argv)]

    async def reopen(self) -> RuntimeService:
        return self.runtime

    async def close(self) -> None:
        await self.runtime.close()


def _fake_result(cid: str, argv: list[str]) -> ExecResult:
    """What the fake "programs" print: echo, /nonexistent, sh -c 'echo …; exit N'."""
    if argv[:1] == ["echo"]:
        return ExecResult(0, (" ".join(argv[1:]) + "\n").encode(), b"")
    if argv[:1] == ["/nonexistent"]:
        return ExecResult(127, b"", b'exec failed: unable to start container process: exec: '
                                    b'"/nonexistent": stat /nonexistent: no such file\n')
    out, err, code = b"", b"", 0
    for part in (argv[2].split("; ") if argv[:2] == ["sh", "-c"] else []):
        if part.startswith("echo ") and part.endswith(" >&2"):
            err += part[5:-4].encode() + b"\n"
        elif part.startswith("echo "):
            out += part[5:].encode() + b"\n"
        elif part.startswith("exit "):
            code = int(part[5:])
    return ExecResult(code, out, err)


async def _fake_shell(p: FakeProcess) -> int:
    """An interactive sh on a terminal: echoes input; stty size, echo and exit."""
    p.output(b"/ # ")
    buffered = b""
    while data := await p.read_stdin():
        buffered += data
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            p.output(line + b"\r\n")
            command = line.decode().strip()
            if command == "stty size":
                width, height = p.size or (80, 24)
                p.output(f"{height} {width}\r\n".encode())
            elif command.startswith("echo "):
                p.output(command[5:].encode() + b"\r\n")
            elif command.startswith("exit"):
                return int(command[4:] or 0)
            p.output(b"/ # ")
    return 0


async def _pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"pong\n")
    await writer.drain()
    writer.close()


# -- oci -----------------------------------------------------------------------------------


def _oci_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("runc", "conmon", "catatonit"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return f"{tool} is not installed"
    if find_busybox() is None:
        return "busybox-static is not installed"
    return None


@pytest.fixture(scope="module")
def busybox_rootfs() -> AsyncIterator[str]:  # type: ignore[misc]
    if _oci_missing():
        pytest.skip(_oci_missing() or "")
    directory = tempfile.mkdtemp(prefix="pdl-rootfs-")
    try:
        yield build_busybox_rootfs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class OciHarness:
    real = True

    def __init__(self, rootfs: str, work: str) -> None:
        from podling.runtime.oci import OciRuntime, OciRuntimeConfig
        self.rootfs = rootfs
        self.work = work
        self.config = OciRuntimeConfig(root=os.path.join(work, "rt"),
                                       cgroup_root=f"/podling-test-{uuid.uuid4().hex[:12]}")
        self._make = lambda: OciRuntime(self.config)
        self.runtime: RuntimeService = self._make()

    def sandbox_config(self, name: str, **kw: object) -> PodSandboxConfig:
        return _sandbox_config(name, **kw)  # type: ignore[arg-type]

    def container_config(self, name: str, script: str, *, labels: dict[str, str] | None = None,
                         annotations: dict[str, str] | None = None,
                         command: list[str] | None = None) -> ContainerConfig:
        return ContainerConfig(
            name=name, rootfs=self.rootfs, command=command or ["sh", "-c", script],
            labels=labels or {}, annotations=annotations or {},
            log_path=os.path.join(self.work, "logs", f"{name}-{uuid.uuid4().hex[:6]}.log"))

    async def reopen(self) -> RuntimeService:
        await self.runtime.close()
        self.runtime = self._make()
        return self.runtime

    def exec_leftovers(self, marker: str) -> list[str]:
        found = [f"exec dir {d}" for d in os.listdir(os.path.join(self.config.root, "execs"))]
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{pid}/stat", "rb") as f:
                    zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            except (OSError, IndexError):
                continue
            if marker in cmdline and not zombie:
                found.append(f"{pid}: {cmdline}")
        return found

    async def close(self) -> None:
        from podling.runtime.oci import purge
        await self.runtime.close()
        problems = await purge(self.config.root)
        assert problems == [], problems
        assert_nothing_left(self.config.root, self.config.cgroup_root)


def assert_nothing_left(root: str, cgroup_root: str) -> None:
    """No directory, mount, process or cgroup mentioning this runtime remains."""
    assert not os.path.exists(root), root
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        assert root.encode() not in cmdline, cmdline
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", hierarchy, cgroup_root.strip("/"))
        assert not os.path.exists(path), path


# -- the parametrised runner ---------------------------------------------------------------


@pytest.fixture(params=["fake", "oci"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "fake":
        h: FakeHarness | OciHarness = FakeHarness()
    else:
        rootfs = request.getfixturevalue("busybox_rootfs")
        work = tempfile.mkdtemp(prefix="pdl-", dir="/tmp")
        h = OciHarness(rootfs, work)
    try:
        yield h
    finally:
        await h.close()
        if isinstance(h, OciHarness):
            shutil.rmtree(h.work, ignore_errors=True)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_runtime_conformance(check: Check, harness: FakeHarness | OciHarness) -> None:
    await check(harness)  # type: ignore[arg-type]


@pytest.mark.parametrize("check", REAL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_runtime_real_processes(check: Check, harness: FakeHarness | OciHarness) -> None:
    if not harness.real:
        pytest.skip("needs real processes")
    await check(harness)  # type: ignore[arg-type]


# -- OCI-only checks -----------------------------------------------------------------------


@pytest.fixture
async def oci(busybox_rootfs: str) -> AsyncIterator[OciHarness]:
    work = tempfile.mkdtemp(prefix="pdl-", dir="/tmp")
    h = OciHarness(busybox_rootfs, work)
    try:
        yield h
    finally:
        await h.close()
        shutil.rmtree(work, ignore_errors=True)


async def test_oci_remove_sandbox_leaves_nothing(oci: OciHarness) -> None:
    from podling.runtime.oci.runc import Runc
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    for name in ("a", "b"):
        cid = await rt.create_container(sid, oci.container_config(name, "sleep 1000"))
        await rt.start_container(cid)
    netns = (await rt.pod_sandbox_status(sid)).network_namespace_path
    await rt.remove_pod_sandbox(sid)
    await rt.remove_pod_sandbox(sid)
    root = oci.config.root
    assert await Runc(shutil.which("runc") or "runc", os.path.join(root, "runc")).list() == []
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()
    assert not os.path.exists(netns)
    assert os.listdir(os.path.join(root, "sandboxes")) == []
    assert os.listdir(os.path.join(root, "containers")) == []
    assert os.listdir(os.path.join(root, "exits")) == []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", hierarchy, oci.config.cgroup_root.strip("/"))
        assert not os.path.isdir(base) or os.listdir(base) == [] or all(
            not os.path.isdir(os.path.join(base, d)) for d in os.listdir(base)), base


async def test_oci_host_namespaces(oci: OciHarness) -> None:
    from podling.runtime.interface import NamespaceMode
    node = NamespaceOptions(network=NamespaceMode.NODE, pid=NamespaceMode.NODE,
                            ipc=NamespaceMode.NODE)
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("h", namespace_options=node))
    assert (await rt.pod_sandbox_status(sid)).network_namespace_path == ""
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    for ns in ("net", "pid", "ipc", "uts"):
        result = await rt.exec_sync(cid, ["readlink", f"/proc/self/ns/{ns}"], 5)
        assert result.stdout.decode().strip() == os.readlink(f"/proc/self/ns/{ns}"), ns
    await rt.remove_pod_sandbox(sid)


async def test_oci_create_runs_runc_create_and_start_only_runc_start(oci: OciHarness) -> None:
    """create_container leaves a runc container in state ``created`` (its conmon up), still
    CREATED to callers; a runc create failure surfaces at start as StartError; a container
    stopped before its start leaves no process and no runc container."""
    from podling.runtime.interface import ContainerState
    from podling.runtime.oci.runc import Runc
    rt = oci.runtime
    runc = Runc(shutil.which("runc") or "runc", os.path.join(oci.config.root, "runc"))
    sid = await rt.run_pod_sandbox(oci.sandbox_config("eager"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    assert {s.id: s.status for s in await runc.list()}.get(cid) == "created"
    assert len(_conmons_naming(cid)) == 1
    status = await rt.container_status(cid)
    assert status.state is ContainerState.CREATED and status.pid == 0
    bad = dataclasses.replace(oci.container_config("bad", "true"), command=["/no/such/binary"])
    broken = await rt.create_container(sid, bad)
    assert (await rt.container_status(broken)).state is ContainerState.CREATED
    with pytest.raises(ContainerStartError):
        await rt.start_container(broken)
    assert (await rt.container_status(broken)).reason == "StartError"
    await rt.stop_container(cid, 0)
    assert (await rt.container_status(cid)).state is ContainerState.EXITED
    assert _conmons_naming(cid) == []
    assert cid not in {s.id for s in await runc.list()}
    await rt.remove_pod_sandbox(sid)


async def test_oci_containers_created_while_the_pause_starts_share_its_namespaces(
        oci: OciHarness) -> None:
    """on_created comes before the pause runs (the IPC and UTS namespaces are pinned): a
    container created then joins the same network, IPC and UTS namespaces as the pause, sees
    the sandbox's hostname, and removing the sandbox leaves no pinned namespace file."""
    rt = oci.runtime
    creating: list[asyncio.Task[str]] = []

    def created(sid: str) -> None:
        assert not creating
        creating.append(asyncio.create_task(
            rt.create_container(sid, oci.container_config("c", "sleep 1000"))))
    sid = await rt.run_pod_sandbox(oci.sandbox_config("early"), on_created=created)
    assert len(creating) == 1
    cid = await creating[0]
    await rt.start_container(cid)
    pause = (await rt.pod_sandbox_status(sid)).pid
    for ns in ("net", "ipc", "uts"):
        result = await rt.exec_sync(cid, ["readlink", f"/proc/self/ns/{ns}"], 5)
        assert result.stdout.decode().strip() == os.readlink(f"/proc/{pause}/ns/{ns}"), ns
    assert (await rt.exec_sync(cid, ["hostname"], 5)).stdout.decode().strip() == "early"
    pinned = os.path.join(oci.config.root, "ns")
    assert sorted(os.listdir(pinned)) == [f"{sid}.ipc", f"{sid}.uts"]
    await rt.remove_pod_sandbox(sid)
    assert os.listdir(pinned) == []


async def test_oci_a_pause_that_fails_takes_the_containers_created_early(
        oci: OciHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the pause does not start after on_created, run_pod_sandbox removes the containers
    created meanwhile (also one whose create was still running) before it raises, and a
    create after that is refused."""
    from podling.runtime.interface import RuntimeCommandError, SandboxNotFound
    from podling.runtime.oci.runc import Runc
    rt = oci.runtime
    started = asyncio.Event()
    creating: list[asyncio.Task[str]] = []

    async def failing_run(*args: object, **kw: object) -> None:
        await started.wait()  # a container create is under way
        await asyncio.sleep(0)
        raise RuntimeCommandError("pause: injected failure")
    monkeypatch.setattr(rt.runc, "run_detached", failing_run)

    def created(sid: str) -> None:
        async def create() -> str:
            started.set()
            return await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
        creating.append(asyncio.create_task(create()))
    with pytest.raises(RuntimeCommandError, match="injected"):
        await rt.run_pod_sandbox(oci.sandbox_config("doomed"), on_created=created)
    await asyncio.gather(*creating, return_exceptions=True)
    assert await rt.list_containers() == [] and await rt.list_pod_sandbox() == []
    with pytest.raises(SandboxNotFound):
        await rt.create_container("gone", oci.container_config("d", "true"))
    root = oci.config.root
    assert await Runc(shutil.which("runc") or "runc", os.path.join(root, "runc")).list() == []
    assert os.listdir(os.path.join(root, "ns")) == []
    assert os.listdir(os.path.join(root, "containers")) == []
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()


async def test_oci_stopping_a_sandbox_finds_a_pause_nobody_recorded(oci: OciHarness) -> None:
    """An agent killed while runc started the pause leaves a record without its pid; the
    sandbox's stop asks runc and stops the pause all the same."""
    from podling.runtime.oci.proc import pid_alive
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("unrecorded"))
    record = rt.store.sandboxes[sid]  # type: ignore[attr-defined]
    pid = record.pause_pid
    record.pause_pid, record.pause_start_time = 0, 0  # as if killed before it was saved
    rt.store.save_sandbox(record)  # type: ignore[attr-defined]
    rt = await oci.reopen()
    await rt.stop_pod_sandbox(sid)
    assert not pid_alive(pid) or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    await rt.remove_pod_sandbox(sid)


async def _killed_mid_start(oci: OciHarness, name: str, script: str, *,
                            released: str) -> tuple[RuntimeService, str, str]:
    """A container whose start the runtime began and never recorded, as a process killed
    then leaves it, then the runtime opened again as the restarted process does: (runtime,
    sandbox id, container id). ``released``: how far runc's start got: "no" (the init
    still waits), "fifo" (the fifo was opened, so the init exec'd, and left in place),
    "start" (the whole of runc's start)."""
    from podling.runtime.oci.core import RELEASING
    from podling.runtime.oci.runc import EXEC_FIFO, RUNC_INIT_NAME
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config(name))
    cid = await rt.create_container(sid, oci.container_config("c", script))
    record = rt.store.containers[cid]  # type: ignore[attr-defined]
    record.extra[RELEASING] = time.time()
    rt.store.save_container(record)  # type: ignore[attr-defined]
    if released == "start":
        await rt.runc.start(cid, pid=record.pid,  # type: ignore[attr-defined]
                            start_time=record.pid_start_time)
    elif released == "fifo":
        fd = os.open(os.path.join(rt.runc.root, cid, EXEC_FIFO),  # type: ignore[attr-defined]
                     os.O_RDWR | os.O_NONBLOCK)
        try:
            await _until(lambda: _comm(record.pid) != RUNC_INIT_NAME, "the init's exec")
        finally:
            os.close(fd)
    return await oci.reopen(), sid, cid


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


async def test_oci_a_start_killed_after_runc_let_the_container_go_counts(
        oci: OciHarness) -> None:
    """Killed between runc's start and its record: the container ran, once; after the
    restart it is reported exited with its own code, and it is not started again."""
    from podling.runtime.interface import InvalidState
    rt, sid, cid = await _killed_mid_start(oci, "released", "echo ran; exit 3", released="start")
    status = await _exited(rt, cid)
    assert (status.exit_code, status.started_at > 0) == (3, True), status
    with pytest.raises(InvalidState):
        await rt.start_container(cid)
    with open(status.log_path or os.path.join(rt.store.container_dir(cid),  # type: ignore[attr-defined]
                                              "container.log")) as f:
        assert f.read().count("ran") == 1
    await rt.remove_pod_sandbox(sid)


async def test_oci_a_start_killed_before_it_removed_the_fifo_counts(oci: OciHarness) -> None:
    """Killed after opening the fifo released the init and before the fifo was removed:
    the init exec'd the container's process; after the restart it is running."""
    from podling.runtime.interface import ContainerState
    rt, sid, cid = await _killed_mid_start(oci, "fifo", "sleep 1000", released="fifo")
    status = await rt.container_status(cid)
    assert (status.state, status.started_at > 0) == (ContainerState.RUNNING, True), status
    await rt.remove_pod_sandbox(sid)


async def test_oci_a_start_killed_before_runc_let_the_container_go_did_not_run(
        oci: OciHarness) -> None:
    """Killed after the start was marked and before runc let the container go: it did not
    run; after the restart it is still created and starts normally."""
    from podling.runtime.interface import ContainerState
    rt, sid, cid = await _killed_mid_start(oci, "held", "exit 3", released="no")
    assert (await rt.container_status(cid)).state is ContainerState.CREATED
    await rt.start_container(cid)
    assert (await _exited(rt, cid)).exit_code == 3
    await rt.remove_pod_sandbox(sid)


async def _exited(rt: RuntimeService, cid: str) -> ContainerStatus:
    """The container's status once it has exited (10 s at most)."""
    from podling.runtime.interface import ContainerState
    for _ in range(500):
        status = await rt.container_status(cid)
        if status.state is ContainerState.EXITED:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"container {cid} did not exit: {status}")


async def test_oci_stopping_a_created_container_nobody_recorded_removes_its_init(
        oci: OciHarness) -> None:
    """Killed after conmon created the container and before its pid was recorded: stopping
    it (it never ran) deletes runc's container, whose init would wait in the fifo for good."""
    from podling.runtime.oci.runc import RUNC_INIT_NAME
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("unrecorded-init"))
    cid = await rt.create_container(sid, oci.container_config("c", "exit 3"))
    record = rt.store.containers[cid]  # type: ignore[attr-defined]
    init = record.pid
    record.pid = record.conmon_pid = 0
    rt.store.save_container(record)  # type: ignore[attr-defined]
    rt = await oci.reopen()
    await rt.stop_container(cid, 5)
    assert cid not in runc_ids(oci) and _comm_or_none(init) != RUNC_INIT_NAME
    await rt.remove_pod_sandbox(sid)


def runc_ids(oci: OciHarness) -> set[str]:
    root = os.path.join(oci.config.root, "runc")
    return {d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))}


def _comm_or_none(pid: int) -> str | None:
    try:
        return _comm(pid)
    except OSError:
        return None


async def test_oci_a_container_whose_monitor_dies_is_finished(oci: OciHarness) -> None:
    """conmon killed: the container is killed and finished (137) with the reason why."""
    from podling.runtime.interface import ContainerState
    from podling.runtime.oci.core import MONITOR_LOST
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("monitor"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    os.kill(rt.store.containers[cid].conmon_pid, signal.SIGKILL)  # type: ignore[attr-defined]
    for _ in range(100):
        status = await rt.container_status(cid)
        if status.state is ContainerState.EXITED:
            break
        await asyncio.sleep(0.05)
    assert (status.state, status.exit_code, status.message) == (
        ContainerState.EXITED, 137, MONITOR_LOST)
    await rt.remove_pod_sandbox(sid)


async def test_oci_exec_timeout_kills_process(oci: OciHarness) -> None:
    from podling.runtime.interface import ExecTimeout
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    with pytest.raises(ExecTimeout):
        await rt.exec_sync(cid, ["sleep", "777"], 0.5)
    ps = (await rt.exec_sync(cid, ["ps", "-o", "args"], 5)).stdout.decode()
    assert "sleep 777" not in ps, ps


SURVIVOR = """
import asyncio, json, sys
from podling.runtime.oci import OciRuntime, OciRuntimeConfig
from podling.runtime.interface import ContainerConfig, PodSandboxConfig

async def main():
    rt = OciRuntime(OciRuntimeConfig(root=sys.argv[1], cgroup_root=sys.argv[2]))
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="s", namespace="default", uid="u"))
    cid = await rt.create_container(sid, ContainerConfig(
        name="c", rootfs=sys.argv[3], command=["sleep", "1000"], log_path=sys.argv[4]))
    await rt.start_container(cid)
    status = await rt.container_status(cid)
    print(json.dumps({"sid": sid, "cid": cid, "pid": status.pid}))
    await rt.close()

asyncio.run(main())
"""


async def test_oci_containers_outlive_the_python_process(oci: OciHarness) -> None:
    import asyncio
    import json
    import sys
    from podling.runtime.interface import ContainerState, SandboxState
    await oci.runtime.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SURVIVOR, oci.config.root, oci.config.cgroup_root, oci.rootfs,
        os.path.join(oci.work, "survivor.log"), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    info = json.loads(out)
    rt = await oci.reopen()
    [status] = await rt.list_containers()
    assert (status.id, status.state, status.pid) == (info["cid"], ContainerState.RUNNING,
                                                     info["pid"])
    assert os.path.exists(f"/proc/{info['pid']}")
    assert (await rt.pod_sandbox_status(info["sid"])).state is SandboxState.READY
    await rt.stop_container(info["cid"], 0)
    assert (await rt.wait_container(info["cid"])).exit_code == 137
    await rt.remove_pod_sandbox(info["sid"])


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(what)


async def test_oci_restart_kills_leftover_exec(oci: OciHarness) -> None:
    """A crashed agent (runc SIGKILLed, the session never closed) leaves the exec'd process;
    the next OciRuntime over the root kills it and removes the exec's directory."""
    import json
    import signal
    from podling.runtime.oci import proc
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    session = await rt.exec(cid, ["sh", "-c", "sleep 5555 & sleep 5556"], stdin=False,
                            tty=False)
    execs = os.path.join(oci.config.root, "execs")
    [name] = os.listdir(execs)
    pid_file = os.path.join(execs, name, "pid")
    await _until(lambda: os.path.exists(pid_file) and len(oci.exec_leftovers("sleep 555")) >= 3,
                 "the exec never started")
    with open(os.path.join(execs, name, "exec.json")) as f:
        runc_pid = json.load(f)["runc_pid"]
    with open(pid_file) as f:
        pid = int(f.read())
    os.kill(runc_pid, signal.SIGKILL)
    await _until(lambda: not proc.pid_alive(runc_pid), "runc did not die")
    assert proc.pid_alive(pid)  # the exec'd process outlives runc
    rt = await oci.reopen()
    await _until(lambda: oci.exec_leftovers("sleep 555") == [], "leftover exec not killed")
    assert os.listdir(execs) == []
    await session.close()  # the dropped session's own tasks end; nothing else to do
    assert (await rt.container_status(cid)).state.value == "RUNNING"
    await rt.remove_pod_sandbox(sid)


async def test_oci_port_forward_host_network(oci: OciHarness) -> None:
    import asyncio
    from podling.runtime.interface import NamespaceMode, PortForwardError

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"from the host\n")
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sid = await oci.runtime.run_pod_sandbox(oci.sandbox_config(
            "h", namespace_options=NamespaceOptions(network=NamespaceMode.NODE)))
        reader, writer = await oci.runtime.port_forward(sid, port)
        assert await asyncio.wait_for(reader.read(100), 10) == b"from the host\n"
        writer.close()
        other = await oci.runtime.run_pod_sandbox(oci.sandbox_config("p"))
        with pytest.raises(PortForwardError, match="connection refused"):
            await oci.runtime.port_forward(other, port)  # the pod's own loopback
        await oci.runtime.stop_pod_sandbox(other)
        with pytest.raises(PortForwardError, match="is not running"):
            await oci.runtime.port_forward(other, port)
    finally:
        server.close()
        await server.wait_closed()


async def test_oci_exec_missing_binary_with_tty(oci: OciHarness) -> None:
    import asyncio
    from podling.runtime.interface import STDOUT
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    session = await rt.exec(cid, ["nosuchcmd"], stdin=True, tty=True)
    try:
        chunks = []
        while (chunk := await asyncio.wait_for(session.read(), 10)) is not None:
            chunks.append(chunk)
        assert await session.wait() == 127
        assert chunks == [(STDOUT, b'exec failed: unable to start container process: exec: '
                                   b'"nosuchcmd": executable file not found in $PATH\r\n')]
    finally:
        await session.close()


EXEC_AND_HANG = """
import asyncio, json, sys
from podling.runtime.oci import OciRuntime, OciRuntimeConfig

async def main():
    rt = OciRuntime(OciRuntimeConfig(root=sys.argv[1], cgroup_root=sys.argv[2]))
    session = await rt.exec(sys.argv[3], ["sleep", "6666"], stdin=True, tty=False)
    print(json.dumps({"ok": True}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_oci_agent_kill_9_runc_dies_and_restart_cleans(oci: OciHarness) -> None:
    """kill -9 of the agent: runc dies with it (PR_SET_PDEATHSIG); the exec'd process is
    left (without a tty nothing hangs it up), and the next OciRuntime kills it."""
    import asyncio
    import json
    import sys
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("p"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", EXEC_AND_HANG, oci.config.root, oci.config.cgroup_root, cid,
        stdout=asyncio.subprocess.PIPE)
    def processes(program: str) -> list[str]:
        return [p for p in oci.exec_leftovers("sleep 6666")
                if not p.startswith("exec dir") and p.split()[1].endswith(program)]
    try:
        assert json.loads(await asyncio.wait_for(agent.stdout.readline(), 30))["ok"]
        await _until(lambda: processes("sleep"), "no exec'd process")
    finally:
        agent.kill()
        await agent.wait()
    await _until(lambda: not processes("runc"), "runc outlived the agent")
    assert processes("sleep")
    await oci.reopen()
    await _until(lambda: oci.exec_leftovers("sleep 6666") == [], "leftover exec not killed")
    await oci.runtime.remove_pod_sandbox(sid)


def _conmons_naming(sid: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"conmon" and sid.encode() in argv:
            found.append(int(pid))
    return found


async def _exit_file(root: str, sid: str) -> str:
    path = os.path.join(root, "exits", sid)
    for _ in range(100):
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no exit file for {sid}")


async def test_oci_pause_runs_without_a_monitor(oci: OciHarness) -> None:
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("lean"))
    status = await rt.pod_sandbox_status(sid)
    assert status.state is SandboxState.READY and status.pid > 0
    assert _conmons_naming(sid) == []  # the pause has no conmon
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    assert len(_conmons_naming(cid)) == 1  # containers keep theirs
    await rt.stop_pod_sandbox(sid)
    assert await _exit_file(oci.config.root, sid) == "137"
    assert (await rt.pod_sandbox_status(sid)).state is SandboxState.NOTREADY


async def test_oci_pause_death_noticed_and_adopted_after_restart(oci: OciHarness) -> None:
    rt = oci.runtime
    sid = await rt.run_pod_sandbox(oci.sandbox_config("adopt"))
    died_while_down = await rt.run_pod_sandbox(oci.sandbox_config("down"))
    pid_down = (await rt.pod_sandbox_status(died_while_down)).pid
    await rt.close()  # the agent goes away; the pauses keep running
    os.kill(pid_down, signal.SIGKILL)
    rt = await oci.reopen()
    events = rt.exit_events()  # starts the watchers: adoption
    assert await _exit_file(oci.config.root, died_while_down) == "-1"
    event = await asyncio.wait_for(events.__anext__(), 10)  # the agent hears of it too
    assert (event.container_id, event.sandbox_id, event.exit_code) == (
        died_while_down, died_while_down, -1)
    assert (await rt.pod_sandbox_status(died_while_down)).state is SandboxState.NOTREADY
    status = await rt.pod_sandbox_status(sid)
    assert status.state is SandboxState.READY  # found again, alive
    os.kill(status.pid, signal.SIGKILL)  # dies under the new process: noticed at once
    event = await asyncio.wait_for(events.__anext__(), 10)
    assert (event.container_id, event.sandbox_id, event.exit_code) == (sid, sid, -1)
    assert await _exit_file(oci.config.root, sid) == "-1"
    assert (await rt.pod_sandbox_status(sid)).state is SandboxState.NOTREADY
    await events.aclose()  # type: ignore[attr-defined]
    for gone in (sid, died_while_down):
        await rt.remove_pod_sandbox(gone)
    assert os.listdir(os.path.join(oci.config.root, "exits")) == []


async def test_oci_delete_without_runc_only_when_nothing_runs(oci: OciHarness) -> None:
    from podling.runtime.oci.runc import Runc
    rt = oci.runtime
    runc = Runc(shutil.which("runc") or "runc", os.path.join(oci.config.root, "runc"))
    sid = await rt.run_pod_sandbox(oci.sandbox_config("forget"))
    cid = await rt.create_container(sid, oci.container_config("c", "sleep 1000"))
    await rt.start_container(cid)
    assert runc.forget_stopped(cid) is False  # running: left to runc delete --force
    assert (await runc.state(cid)).status == "running"  # type: ignore[union-attr]
    await rt.stop_container(cid, 0)
    assert runc.forget_stopped(cid) is True  # stopped: cgroups and state gone in-process
    assert await runc.state(cid) is None
    assert runc.forget_stopped(cid) is True  # idempotent
    await rt.remove_pod_sandbox(sid)


def _processes_with(marker: bytes) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except (OSError, IndexError):
            continue
        if marker in argv and not zombie:
            found.append(int(pid))
    return found


@pytest.mark.parametrize("pid_mode", ["CONTAINER", "POD"])
async def test_oci_kill_reaches_every_process_of_the_container(oci: OciHarness,
                                                               pid_mode: str) -> None:
    """SIGKILL of a container in a PID namespace of its own goes to its init only (the
    kernel takes the rest); in the pod's namespace ``runc kill --all`` is still used."""
    from podling.runtime.interface import NamespaceMode
    rt = oci.runtime
    options = NamespaceOptions(pid=NamespaceMode(pid_mode))
    sid = await rt.run_pod_sandbox(oci.sandbox_config("k", namespace_options=options))
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"
    cid = await rt.create_container(sid, oci.container_config(
        "c", f"trap '' TERM; sleep {marker} & sleep {marker} & wait"))
    await rt.start_container(cid)
    for _ in range(100):
        if len(_processes_with(marker.encode())) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(_processes_with(marker.encode())) == 2
    await rt.stop_container(cid, 0)
    assert (await rt.container_status(cid)).exit_code == 137
    for _ in range(100):
        if not _processes_with(marker.encode()):
            break
        await asyncio.sleep(0.05)
    assert _processes_with(marker.encode()) == []
    await rt.remove_pod_sandbox(sid)
