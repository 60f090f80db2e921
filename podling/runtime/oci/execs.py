"""exec: a process started in a running container by ``runc exec`` in the foreground.

runc stays the exec'd process's parent and exits with its status (128+n for a signal), so
the runc child *is* the session. Each exec has a directory under the runtime root::

    <root>/execs/<exec id>/exec.json   {"container_id", "runc_pid", "runc_start_time"}
    <root>/execs/<exec id>/pid         runc --pid-file: the exec'd process (written once
                                       it was started)

Stdio. Without a tty runc hands its own stdin/stdout/stderr to the process: we give it pipes
(stdin: /dev/null unless asked) and read them directly. With a tty, foreground runc needs its
stdin to be a terminal: it gets the slave of a pty we open and copies between it and the
container's console; a resize is TIOCSWINSZ on our master then SIGWINCH to runc, which reads
its terminal's new size and resizes the console. runc's stderr stays
a pipe (only runc's own messages arrive there).

A program that cannot be started: runc exits 255 without writing the pid file and logs
``exec failed: unable to start container process: exec: "x": executable file not found in
$PATH``. Output on stderr before the pid file exists is held back; if runc then fails that
way the session reports exit code 127 (126 for "permission denied") and runc's cleaned
message (on STDERR; on STDOUT with a tty), as CRI-O does.

    start ──▶ running ──runc exits──▶ ended: read() → None, wait() → code ──close()──▶ gone
                 └──── close(): the process tree and runc SIGKILLed, runc reaped ────┘

Crash safety: runc gets PR_SET_PDEATHSIG (through setpriv), so it dies with the agent; the exec'd process may
survive it. ``cleanup_leftovers`` (run when an OciRuntime is constructed) kills the process in
each leftover pid file — only if its start time lies between runc's start and the pid file's
mtime, so a reused pid is never killed — and removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import struct
import termios
import tty
from dataclasses import dataclass

from ...util.children import dies_with_parent
from ..interface import STDERR, STDOUT
from . import proc, stdio
from .runc import Runc, clean_message

EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126
RUNC_FAILED = 255
EOF_CHAR = b"\x04"
START_SETTLE = 5.0  # seconds close() lets a starting runc write its pid file
OUTPUT_READ = 1024 * 1024  # the largest stdout chunk: the pipe's size, one read per fill
OUTPUT_DEPTH = 4  # chunks a session buffers before it stops reading (back-pressure)


@dataclass(frozen=True)
class ExecRequest:
    """One exec: ``directory`` must not exist yet (it is created and owned by the session)."""

    runc: Runc
    container_id: str
    argv: list[str]
    stdin: bool
    tty: bool
    directory: str


async def start_exec(req: ExecRequest) -> "RuncExec":
    """Spawn ``runc exec`` and return its session. On failure nothing is left behind."""
    os.makedirs(req.directory, mode=0o700)
    pid_file = os.path.join(req.directory, "pid")
    argv = req.runc.argv("exec", "--pid-file", pid_file, *(["--tty"] if req.tty else []),
                         req.container_id, *req.argv)
    child: list[int] = []
    ours: dict[str, int] = {}
    try:
        _open_stdio(req, child, ours)
        process = await asyncio.create_subprocess_exec(
            *dies_with_parent(argv), stdin=child[0], stdout=child[1], stderr=child[2],
            start_new_session=True)
    except BaseException:
        for fd in ours.values():
            os.close(fd)
        shutil.rmtree(req.directory, ignore_errors=True)
        raise
    finally:
        for fd in set(child):
            os.close(fd)
    session = RuncExec(process, tty=req.tty, directory=req.directory, fds=ours)
    try:
        _write_record(os.path.join(req.directory, "exec.json"), {
            "container_id": req.container_id, "runc_pid": process.pid,
            "runc_start_time": session.runc_start_time})
    except BaseException:
        await session.close()
        raise
    return session


def _write_record(path: str, record: dict[str, object]) -> None:
    """Write exec.json, without a temporary file or fsync: the record matters only while its
    processes live, and a machine crash ends them too. It is one write(2) of ~100 bytes, so a
    killed agent leaves all of it or an empty file, which ``cleanup_leftovers`` reads like no
    record at all (as it did before the record was renamed into place)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(record).encode())
    finally:
        os.close(fd)


def _open_stdio(req: ExecRequest, child: list[int], ours: dict[str, int]) -> None:
    """Fill ``child`` with runc's fds 0, 1, 2 and ``ours`` with our ends (all non-blocking)."""
    err_r, err_w = stdio.make_pipe()
    ours["err"] = err_r
    if req.tty:
        master, slave = os.openpty()
        ours["master"] = master
        tty.setraw(slave)  # runc makes it raw too, but input written before that would echo
        child += [slave, slave, err_w]
    else:
        out_r, out_w = stdio.make_pipe()
        ours["out"] = out_r
        if req.stdin:
            in_r, in_w = stdio.make_pipe()
            ours["in"] = in_w
        else:
            in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        child += [in_r, out_w, err_w]
    for fd in ours.values():
        os.set_blocking(fd, False)


class RuncExec:
    """The ExecSession of one ``runc exec`` (see the module doc)."""

    def __init__(self, process: asyncio.subprocess.Process, *, tty: bool, directory: str,
                 fds: dict[str, int]) -> None:
        self.tty = tty
        self._process = process
        self._directory = directory
        self._pid_file = os.path.join(directory, "pid")
        self._fds = fds
        self.runc_start_time = proc.pid_start_time(process.pid)
        self._stdin_lock = asyncio.Lock()
        self._stdin_open = "in" in fds or "master" in fds
        self._start_error: str | None = None
        self._errors_read = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self._output = stdio.Output(depth=OUTPUT_DEPTH)
        self._output.add(self._pump_errors)
        self._output.add(self._pump_output)

    # -- output ------------------------------------------------------------------------------

    async def _pump_output(self, emit: stdio.Emit) -> None:
        fd = self._fds.get("master", self._fds.get("out"))
        assert fd is not None
        while data := await stdio.read_available(fd, OUTPUT_READ):
            await emit(STDOUT, data)

    async def _pump_errors(self, emit: stdio.Emit) -> None:
        """stderr (runc's own with a tty); held back until the process has started."""
        try:
            held = bytearray()
            started = False
            while data := await stdio.read_fd(self._fds["err"]):
                if not started and not os.path.exists(self._pid_file):
                    held += data
                    continue
                started = True
                if held:
                    await emit(STDERR, bytes(held))
                    held.clear()
                await emit(STDERR, data)
            code = await self._process.wait()
            if held and code == RUNC_FAILED and not os.path.exists(self._pid_file):
                self._start_error = clean_message(held.decode(errors="replace"))
                line = self._start_error + ("\r\n" if self.tty else "\n")
                await emit(STDOUT if self.tty else STDERR, line.encode())
            elif held:
                await emit(STDERR, bytes(held))
        finally:
            self._errors_read.set()

    async def read(self) -> tuple[int, bytes] | None:
        return await self._output.get()

    # -- input -------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        async with self._stdin_lock:
            if not self._stdin_open or self._closing is not None:
                return
            try:
                await stdio.write_fd(self._fds.get("in", self._fds.get("master", -1)), data)
            except OSError:
                self._stdin_open = False  # the process is gone or closed its stdin

    async def close_stdin(self) -> None:
        if self.tty:
            await self.write(EOF_CHAR)
            return
        async with self._stdin_lock:
            if self._stdin_open:
                self._stdin_open = False
                os.close(self._fds.pop("in"))

    async def resize(self, width: int, height: int) -> None:
        if self.tty and self._closing is None and width > 0 and height > 0:
            fcntl.ioctl(self._fds["master"], termios.TIOCSWINSZ,
                        struct.pack("HHHH", height, width, 0, 0))
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGWINCH)  # runc re-reads its terminal's size

    # -- end ---------------------------------------------------------------------------------

    async def wait(self) -> int:
        code = await self._process.wait()
        if code == RUNC_FAILED and not os.path.exists(self._pid_file):
            await self._errors_read.wait()
            if self._start_error is not None:
                return exit_code_for(self._start_error)
        return 128 - code if code < 0 else code

    async def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        # Killing runc between its start of the process and its write of the pid file would
        # orphan the process, out of our sight: let runc finish starting it (it takes
        # milliseconds), then kill what the pid file names — again once runc is gone.
        await self._settle_start()
        self._kill_exec_tree()
        await proc.kill_and_reap(self._process)
        self._kill_exec_tree()
        await self._output.stop()
        self._errors_read.set()
        async with self._stdin_lock:
            self._stdin_open = False
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
        shutil.rmtree(self._directory, ignore_errors=True)


    async def _settle_start(self) -> None:
        """Wait (up to START_SETTLE seconds) until runc has written the pid file or exited."""
        deadline = asyncio.get_running_loop().time() + START_SETTLE
        while (self._process.returncode is None and not os.path.exists(self._pid_file)
               and asyncio.get_running_loop().time() < deadline):
            await asyncio.sleep(0.01)

    def _kill_exec_tree(self) -> None:
        found = exec_pid(self._directory, self.runc_start_time)
        if found:
            proc.kill_tree(*found)


def exit_code_for(message: str) -> int:
    """The exit code reported for a program runc could not start (as CRI-O / Docker)."""
    return EXIT_CANNOT_RUN if "permission denied" in message.lower() else EXIT_NOT_FOUND


def exec_pid(directory: str, runc_start_time: int) -> tuple[int, int] | None:
    """(pid, start time) of the exec'd process named in ``directory``'s pid file, if that pid
    is still the process runc started: alive, started after runc and no later than the pid
    file was written (2 s of slack for /proc's whole-second boot time)."""
    path = os.path.join(directory, "pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
        written = os.stat(path).st_mtime
    except (OSError, ValueError):
        return None
    start = proc.pid_start_time(pid)
    latest = (written - proc.boot_time() + 2) * proc.CLOCK_TICKS
    if pid <= 0 or pid == os.getpid() or not start or not runc_start_time \
            or not runc_start_time <= start <= latest:
        return None
    return pid, start


def cleanup_leftovers(execs_dir: str) -> None:
    """Kill what earlier processes' execs left (runc, the exec'd process tree) and remove
    their directories. For a runtime that is starting: no session of its own exists yet."""
    for name in os.listdir(execs_dir) if os.path.isdir(execs_dir) else []:
        directory = os.path.join(execs_dir, name)
        try:
            with open(os.path.join(directory, "exec.json")) as f:
                record = json.load(f)
            runc_pid, runc_start = int(record["runc_pid"]), int(record["runc_start_time"])
        except (OSError, ValueError, KeyError, TypeError):
            runc_pid = runc_start = 0
        if runc_pid and runc_start and proc.same_process(runc_pid, runc_start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(runc_pid, signal.SIGKILL)
        found = exec_pid(directory, runc_start)
        if found:
            proc.kill_tree(*found)
        shutil.rmtree(directory, ignore_errors=True)
