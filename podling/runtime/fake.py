"""FakeRuntime: an in-memory RuntimeService for the agent's unit tests (docs/architecture.md §5).

It follows the same state machines and error contracts as the real runtime (the runtime
conformance suite runs against both), and adds test controls:

* ``calls`` — a log of ``(method, args)`` for every protocol call, in order;
* ``fail_next(method, exc)`` — the next call of ``method`` raises ``exc`` before any effect;
* ``exit_container(id, code, oom=False)`` — the "process" of a RUNNING container exits;
* ``on_start`` — an optional hook ``(runtime, container_id, config)`` called after a start,
  e.g. to make a container exit right away;
* ``exit_on_start(name, code, times=None)`` — containers named ``name`` exit with ``code``
  as soon as they start (a crashing program), for the next ``times`` starts or for ever;
* ``fail_start_of(name, message, times=1)`` — the next starts of containers named ``name``
  fail as a real runtime's do: the container is EXITED/StartError (exit code 128) and
  ``start_container`` raises ContainerStartError(message);
* ``await wait_for_calls(method, count, where=…)`` — wait (no polling, no clock) until the
  call log holds ``count`` calls of ``method`` matching ``where``;
* ``exec_handler`` — ``(container_id, argv) -> ExecResult`` for ``exec_sync``;
* ``exec_process`` / ``attach_process`` — handlers playing the program behind ``exec`` /
  ``attach`` sessions (fake_streams.py; default: ``exec_handler``'s result / quiet until the
  container exits); ``sessions`` lists every session opened;
* ``listen(sandbox_id, port, handler)`` — what ``port_forward`` connects to (other ports are
  refused);
* ``ignore_term`` — container ids whose "process" ignores the stop signal (SIGKILL at timeout);
* ``set_stats(id, …)`` — the cgroup figures ``container_stats`` reports.

Nothing sleeps for real except ``stop_container`` of an ``ignore_term`` container, which waits
``timeout`` seconds (use small timeouts in tests) unless the container exits first.
"""

from __future__ import annotations

import asyncio
import itertools
import signal as _signal
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine

from .fake_streams import FakeProcess, FakeSession, Handler
from .interface import (REASON_START_ERROR, START_ERROR_EXIT_CODE, STDERR, STDOUT,
                        ContainerConfig, ContainerExit, ContainerNotFound, ContainerStartError,
                        ContainerState, ContainerStats, ContainerStatus, CreatedCallback,
                        ExecResult, InvalidState, NamespaceMode, NetnsCallback,
                        PodSandboxConfig, PodSandboxStatus, PortForwardError, SandboxNotFound,
                        SandboxNotReady, SandboxState, exit_reason, labels_match)

StartHook = Callable[["FakeRuntime", str, ContainerConfig], Awaitable[None] | None]
ExecHandler = Callable[[str, list[str]], ExecResult]
PortHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


@dataclass
class _Sandbox:
    id: str
    config: PodSandboxConfig
    created_at: float
    pid: int
    state: SandboxState = SandboxState.READY


@dataclass
class _Container:
    id: str
    sandbox_id: str
    config: ContainerConfig
    created_at: float
    state: ContainerState = ContainerState.CREATED
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)


def _signal_number(name: str) -> int:
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(_signal, name, _signal.SIGTERM))


class FakeRuntime:
    """In-memory RuntimeService with a call log and error injection (see module doc)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.sandbox_ids: list[str] = []  # every sandbox run, in order
        self.on_start: StartHook | None = None
        self.exec_handler: ExecHandler = lambda cid, argv: ExecResult(0, b"", b"")
        self.ignore_term: set[str] = set()
        self._failures: dict[str, list[BaseException]] = {}
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._ids = itertools.count(1)
        self._pids = itertools.count(1000)
        self._subscribers: list[asyncio.Queue[ContainerExit | None]] = []
        self._closed = False
        self.exec_process: Handler = self._default_exec_process
        self.attach_process: Handler | None = None
        self.sessions: list[FakeSession] = []
        self._listeners: dict[tuple[str, int], PortHandler] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._stats: dict[str, tuple[int, int, int]] = {}
        self._exit_on_start: dict[str, tuple[int, int | None]] = {}
        self._start_errors: dict[str, list[str]] = {}
        self._call_waiters: list[asyncio.Future[None]] = []

    # -- test controls -----------------------------------------------------------------------

    def fail_next(self, method: str, exc: BaseException) -> None:
        """Make the next call of ``method`` raise ``exc`` (queued; one per call)."""
        self._failures.setdefault(method, []).append(exc)

    def exit_container(self, container_id: str, code: int, *, oom: bool = False) -> None:
        """The RUNNING container's process exits with ``code`` (no-op if not RUNNING)."""
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            return
        self._finish(c, code, exit_reason(code, oom=oom))

    def exit_on_start(self, name: str, code: int, *, times: int | None = None) -> None:
        """Containers whose config name is ``name`` exit with ``code`` right after each
        start: the next ``times`` starts (None: every start until changed). The start call
        itself succeeds, as with a program that crashes at once."""
        self._exit_on_start[name] = (code, times)

    def fail_start_of(self, name: str, message: str, *, times: int = 1) -> None:
        """The next ``times`` starts of containers named ``name`` fail with StartError."""
        self._start_errors.setdefault(name, []).extend([message] * times)

    def _start_error_if_told(self, c: _Container) -> None:
        queued = self._start_errors.get(c.config.name)
        if queued:
            message = queued.pop(0)
            self._finish(c, START_ERROR_EXIT_CODE, REASON_START_ERROR, message)
            raise ContainerStartError(message)

    def _crash_if_told(self, c: _Container) -> None:
        rule = self._exit_on_start.get(c.config.name)
        if rule is None:
            return
        code, times = rule
        if times is not None:
            if times <= 1:
                del self._exit_on_start[c.config.name]
            else:
                self._exit_on_start[c.config.name] = (code, times - 1)
        self._finish(c, code, exit_reason(code))

    async def wait_for_calls(self, method: str, count: int = 1, *,
                             where: Callable[[tuple[Any, ...]], bool] | None = None,
                             timeout: float = 10.0) -> list[tuple[Any, ...]]:
        """The args of the calls of ``method`` matching ``where``, once there are at least
        ``count`` of them; AssertionError after ``timeout`` seconds. Wakes on each call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [a for a in self.calls_of(method) if where is None or where(a)]
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(found)} of {count} calls of {method} after "
                                     f"{timeout}s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._call_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                if waiter in self._call_waiters:
                    self._call_waiters.remove(waiter)

    def crash_sandbox(self, sandbox_id: str) -> None:
        """The pause process dies: the sandbox becomes NOTREADY."""
        self._sandbox(sandbox_id).state = SandboxState.NOTREADY

    def calls_of(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    # -- helpers -----------------------------------------------------------------------------

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        waiters, self._call_waiters = self._call_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        queued = self._failures.get(method)
        if queued:
            raise queued.pop(0)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _sandbox(self, sandbox_id: str) -> _Sandbox:
        try:
            return self._sandboxes[sandbox_id]
        except KeyError:
            raise SandboxNotFound(sandbox_id) from None

    def _container(self, container_id: str) -> _Container:
        try:
            return self._containers[container_id]
        except KeyError:
            raise ContainerNotFound(container_id) from None

    def _finish(self, c: _Container, code: int, reason: str, message: str = "") -> None:
        c.state = ContainerState.EXITED
        c.exit_code, c.reason, c.message = code, reason, message
        c.finished_at = self.clock()
        c.pid = 0
        c.exited.set()
        event = ContainerExit(c.id, c.sandbox_id, code, c.finished_at)
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _sandbox_status(self, s: _Sandbox) -> PodSandboxStatus:
        cfg = s.config
        netns = "" if cfg.namespace_options.network is NamespaceMode.NODE \
            else f"/var/run/netns/fake-{s.id}"
        return PodSandboxStatus(
            id=s.id, metadata=cfg.metadata, state=s.state, created_at=s.created_at,
            network_namespace_path=netns,
            pid=s.pid if s.state is SandboxState.READY else 0,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations),
            namespace_options=cfg.namespace_options, hostname=cfg.hostname,
            log_directory=cfg.log_directory)

    def _container_status(self, c: _Container) -> ContainerStatus:
        cfg = c.config
        return ContainerStatus(
            id=c.id, sandbox_id=c.sandbox_id, name=cfg.name, attempt=cfg.attempt,
            state=c.state, created_at=c.created_at, started_at=c.started_at,
            finished_at=c.finished_at, exit_code=c.exit_code, reason=c.reason,
            message=c.message, pid=c.pid, labels=dict(cfg.labels),
            annotations=dict(cfg.annotations), log_path=cfg.log_path)

    # -- sandboxes ---------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              on_network_namespace: NetnsCallback | None = None,
                              on_created: CreatedCallback | None = None) -> str:
        self._enter("run_pod_sandbox", config)
        sid = self._new_id("sb")
        sandbox = _Sandbox(sid, config, self.clock(), next(self._pids))
        status = self._sandbox_status(sandbox)
        if on_network_namespace is not None and status.network_namespace_path:
            on_network_namespace(sid, status.network_namespace_path)
            await asyncio.sleep(0)  # the pause starts meanwhile: let the caller's tasks run
        self._sandboxes[sid] = sandbox
        self.sandbox_ids.append(sid)
        if on_created is not None:
            on_created(sid)
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("stop_pod_sandbox", sandbox_id)
        s = self._sandboxes.get(sandbox_id)
        if s is None:
            return
        for c in list(self._containers.values()):
            if c.sandbox_id == sandbox_id:
                self._kill(c, _signal.SIGKILL)
        s.state = SandboxState.NOTREADY

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("remove_pod_sandbox", sandbox_id)
        if sandbox_id not in self._sandboxes:
            return
        for c in list(self._containers.values()):
            if c.sandbox_id == sandbox_id:
                self._kill(c, _signal.SIGKILL)
                del self._containers[c.id]
        del self._sandboxes[sandbox_id]

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        self._enter("pod_sandbox_status", sandbox_id)
        return self._sandbox_status(self._sandbox(sandbox_id))

    async def list_pod_sandbox(self, labels: dict[str, str] | None = None
                               ) -> list[PodSandboxStatus]:
        self._enter("list_pod_sandbox", labels)
        return [self._sandbox_status(s) for s in self._sandboxes.values()
                if labels_match(s.config.labels, labels)]

    # -- containers --------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        self._enter("create_container", sandbox_id, config)
        s = self._sandbox(sandbox_id)
        if s.state is not SandboxState.READY:
            raise SandboxNotReady(sandbox_id)
        target = self._containers.get(config.pid_target) if config.pid_target else None
        if config.pid_target and (target is None or target.sandbox_id != sandbox_id
                                  or target.state is not ContainerState.RUNNING):
            raise InvalidState(f"target container {config.pid_target} is not running")
        cid = self._new_id("ct")
        self._containers[cid] = _Container(cid, sandbox_id, config, self.clock())
        return cid

    async def start_container(self, container_id: str) -> None:
        self._enter("start_container", container_id)
        c = self._container(container_id)
        if c.state is not ContainerState.CREATED:
            raise InvalidState(f"container {container_id} is {c.state.value}, not CREATED")
        self._start_error_if_told(c)
        c.state, c.started_at, c.pid = ContainerState.RUNNING, self.clock(), next(self._pids)
        self._crash_if_told(c)
        if self.on_start is not None:
            result = self.on_start(self, container_id, c.config)
            if result is not None:
                await result

    def fail_start(self, container_id: str, message: str) -> None:
        """Mark a container as failed to start (what a hook may do to simulate StartError)."""
        c = self._container(container_id)
        self._finish(c, START_ERROR_EXIT_CODE, REASON_START_ERROR, message)

    def _kill(self, c: _Container, signum: int) -> bool:
        """Deliver a signal; True if the container is now EXITED."""
        if c.state is ContainerState.CREATED:
            self._finish(c, 0, "")
        elif c.state in (ContainerState.RUNNING, ContainerState.UNKNOWN):
            if signum == _signal.SIGKILL or c.id not in self.ignore_term:
                code = 128 + signum
                self._finish(c, code, exit_reason(code))
        return c.state is ContainerState.EXITED

    async def stop_container(self, container_id: str, timeout: float,
                             signal: str = "SIGTERM") -> None:
        self._enter("stop_container", container_id, timeout, signal)
        c = self._containers.get(container_id)
        if c is None or self._kill(c, _signal_number(signal)):
            return
        try:
            await asyncio.wait_for(c.exited.wait(), max(timeout, 0))
        except asyncio.TimeoutError:
            self._kill(c, _signal.SIGKILL)

    async def remove_container(self, container_id: str) -> None:
        self._enter("remove_container", container_id)
        c = self._containers.pop(container_id, None)
        if c is not None:
            self._kill(c, _signal.SIGKILL)

    async def container_status(self, container_id: str) -> ContainerStatus:
        self._enter("container_status", container_id)
        return self._container_status(self._container(container_id))

    async def list_containers(self, sandbox_id: str | None = None,
                              labels: dict[str, str] | None = None) -> list[ContainerStatus]:
        self._enter("list_containers", sandbox_id, labels)
        return [self._container_status(c) for c in self._containers.values()
                if (sandbox_id is None or c.sandbox_id == sandbox_id)
                and labels_match(c.config.labels, labels)]

    async def exec_sync(self, container_id: str, argv: list[str],
                        timeout: float | None) -> ExecResult:
        self._enter("exec_sync", container_id, list(argv), timeout)
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            raise InvalidState(f"container {container_id} is not running")
        return self.exec_handler(container_id, list(argv))

    async def wait_container(self, container_id: str) -> ContainerStatus:
        self._enter("wait_container", container_id)
        c = self._container(container_id)
        await c.exited.wait()
        return self._container_status(c)

    def exit_events(self) -> AsyncIterator[ContainerExit]:
        queue: asyncio.Queue[ContainerExit | None] = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
        else:
            self._subscribers.append(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[ContainerExit | None]
                     ) -> AsyncIterator[ContainerExit]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            if queue in self._subscribers:
                self._subscribers.remove(queue)

    async def close(self) -> None:
        self._closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)

    # -- inspection for tests ----------------------------------------------------------------

    def container_config(self, container_id: str) -> ContainerConfig:
        return self._container(container_id).config

    def sandbox_config(self, sandbox_id: str) -> PodSandboxConfig:
        return self._sandbox(sandbox_id).config

    def set_state(self, container_id: str, state: ContainerState) -> None:
        """Force a state (e.g. UNKNOWN) to test the agent's handling of odd runtimes."""
        c = self._container(container_id)
        self._containers[container_id] = replace(c, state=state)

    # -- stats -------------------------------------------------------------------------------

    def set_stats(self, container_id: str, *, cpu_usage_core_nanoseconds: int = 0,
                  memory_usage_bytes: int = 0,
                  memory_working_set_bytes: int | None = None) -> None:
        """What ``container_stats`` reports for the container from now on (its timestamp is
        the clock at the call of ``container_stats``). Working set defaults to the usage."""
        self._container(container_id)
        working_set = memory_usage_bytes if memory_working_set_bytes is None \
            else memory_working_set_bytes
        self._stats[container_id] = (cpu_usage_core_nanoseconds, memory_usage_bytes,
                                     working_set)

    async def container_stats(self, container_id: str) -> ContainerStats:
        self._enter("container_stats", container_id)
        self._container(container_id)
        cpu, usage, working_set = self._stats.get(container_id, (0, 0, 0))
        return ContainerStats(container_id, self.clock(), cpu, usage, working_set)

    # -- streaming ---------------------------------------------------------------------------

    def listen(self, sandbox_id: str, port: int, handler: PortHandler) -> None:
        """``port_forward(sandbox_id, port)`` connects to ``handler(reader, writer)`` (called
        once per connection, like an asyncio server callback)."""
        self._listeners[(sandbox_id, port)] = handler

    async def _default_exec_process(self, process: FakeProcess) -> int:
        result = self.exec_handler(process.container_id, process.argv)
        process.output(result.stdout, STDOUT)
        process.output(result.stderr, STDERR)
        return result.exit_code

    def _running(self, container_id: str) -> _Container:
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            raise InvalidState(f"container {container_id} is not running")
        return c

    async def exec(self, container_id: str, argv: list[str], *, stdin: bool,
                   tty: bool) -> FakeSession:
        self._enter("exec", container_id, list(argv), stdin, tty)
        self._running(container_id)
        process = FakeProcess(container_id, argv, tty=tty, stdin=stdin)
        session = FakeSession(process, self.exec_process)
        self.sessions.append(session)
        return session

    async def attach(self, container_id: str, *, stdin: bool) -> FakeSession:
        self._enter("attach", container_id, stdin)
        c = self._running(container_id)

        async def until_exit(process: FakeProcess) -> None:
            await c.exited.wait()
        process = FakeProcess(container_id, c.config.command, tty=c.config.tty,
                              stdin=stdin and c.config.stdin)
        session = FakeSession(process, self.attach_process or until_exit, attach=True)
        self.sessions.append(session)
        return session

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._enter("port_forward", sandbox_id, port)
        s = self._sandbox(sandbox_id)
        handler = self._listeners.get((sandbox_id, port))
        if handler is None or s.state is not SandboxState.READY:
            raise PortForwardError(
                f'failed to connect to localhost:{port} inside namespace "{sandbox_id}", '
                f'IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused '
                f'IPv6 dial tcp6 [::1]:{port}: connect: connection refused')
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=theirs)
        task = asyncio.create_task(handler(reader, writer))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        return await asyncio.open_connection(sock=ours)
