"""Launch conmon to create (not start) one OCI container.

conmon double-forks: the process we spawn exits at once, and its daemonised grandchild runs
``runc create``, then stays as the container's monitor (log writer, exit-file writer, attach
socket) after the Python process exits. We learn the outcome through conmon's sync pipe
(``_OCI_SYNCPIPE``): one JSON line ``{"data": <pid>}`` (success: the container's init pid) or
``{"data": <negative>, "message": "..."}`` (failure). Then the caller starts it (Runc.start).

    launch() ── spawn conmon ── parent exits ── read sync pipe ──▶ pid (container "created")
                     │ any failure or deadline: kill conmon, runc delete --force, raise
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass

from ..interface import RuntimeCommandError
from . import proc
from .runc import clean_message


@dataclass(frozen=True)
class ConmonLaunch:
    """Everything one conmon invocation needs (paths absolute)."""

    conmon: str
    runtime: str
    runtime_root: str
    cid: str
    name: str
    bundle: str
    pid_file: str
    conmon_pid_file: str
    log_path: str
    exit_dir: str
    socket_dir: str
    persist_dir: str
    terminal: bool = False
    stdin: bool = False
    leave_stdin_open: bool = False
    timeout: float = 10.0
    log_size_max: int = 10 * 1024 * 1024  # conmon starts the file afresh past this size


@dataclass(frozen=True)
class Launched:
    pid: int
    conmon_pid: int


def conmon_argv(spec: ConmonLaunch) -> list[str]:
    """The conmon command line (docs/host-notes.md §4)."""
    argv = [spec.conmon, "--api-version", "1", "-c", spec.cid, "-u", spec.cid,
            "-n", spec.name, "-r", spec.runtime, "-b", spec.bundle, "-p", spec.pid_file,
            "-P", spec.conmon_pid_file, "-l", f"k8s-file:{spec.log_path}",
            "--exit-dir", spec.exit_dir, "--socket-dir-path", spec.socket_dir,
            "--persist-dir", spec.persist_dir, "--runtime-arg", f"--root={spec.runtime_root}",
            "--log-level", "error"]
    if spec.log_size_max > 0:
        argv += ["--log-size-max", str(spec.log_size_max)]
    if spec.terminal:
        argv.append("-t")
    if spec.stdin:
        argv.append("-i")
        if spec.leave_stdin_open:
            argv.append("--leave-stdin-open")
    return argv


def parse_sync_message(line: bytes) -> tuple[int, str]:
    """(data, message) of one sync-pipe JSON line."""
    try:
        data = json.loads(line)
        return int(data.get("data", -1)), str(data.get("message", ""))
    except (ValueError, AttributeError, TypeError):
        return -1, f"unreadable message from conmon: {line[:200]!r}"


async def _read_line(fd: int, timeout: float) -> bytes:
    """Read one line (or to EOF) from a non-blocking fd with a deadline."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        buf.extend(chunk)
        if (not chunk or b"\n" in buf) and not done.done():
            done.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(fd)
    return bytes(buf.split(b"\n", 1)[0])


def read_pid_file(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


async def launch(spec: ConmonLaunch) -> Launched:
    """Run conmon to create the container; returns the init pid and conmon's pid.

    On failure everything started is killed and reaped (conmon) or deleted (runc's container)
    before RuntimeCommandError is raised with conmon's / runc's message."""
    os.makedirs(os.path.dirname(spec.log_path) or "/", exist_ok=True)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = await _spawn_and_sync(spec, read_fd, write_fd)
    except BaseException:
        await _undo(spec)
        raise
    finally:
        os.close(read_fd)
    return Launched(pid, read_pid_file(spec.conmon_pid_file))


async def _spawn_and_sync(spec: ConmonLaunch, read_fd: int, write_fd: int) -> int:
    """Spawn conmon and read its sync message. Closes ``write_fd`` exactly once (a second
    close could hit a descriptor number that another task has been given meanwhile)."""
    env = {**os.environ, "_OCI_SYNCPIPE": str(write_fd)}
    try:
        with open(os.path.join(spec.persist_dir, "conmon.stderr"), "ab") as errlog:
            child = await asyncio.create_subprocess_exec(
                *conmon_argv(spec), stdin=asyncio.subprocess.DEVNULL, stdout=errlog,
                stderr=errlog, env=env, pass_fds=(write_fd,), cwd=spec.bundle)
    finally:
        os.close(write_fd)  # only conmon holds the write end now: EOF means it is gone
    try:
        await asyncio.wait_for(child.wait(), spec.timeout)
    except BaseException:
        await proc.kill_and_reap(child)
        raise
    if child.returncode != 0:
        raise RuntimeCommandError(f"conmon exited with {child.returncode}: {_stderr(spec)}")
    os.set_blocking(read_fd, False)
    try:
        line = await _read_line(read_fd, spec.timeout)
    except asyncio.TimeoutError:
        raise proc.CommandTimeout(f"conmon did not report within {spec.timeout:g}s") from None
    pid, message = parse_sync_message(line) if line else (-1, "conmon exited early")
    if pid <= 0:
        raise RuntimeCommandError(clean_message(message or _stderr(spec))
                                  or "runc create failed")
    return pid


def _stderr(spec: ConmonLaunch) -> str:
    with contextlib.suppress(OSError):
        with open(os.path.join(spec.persist_dir, "conmon.stderr"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace").strip()
    return ""


async def _undo(spec: ConmonLaunch) -> None:
    """Kill conmon (if it got that far) and what it runs (a runc that hangs), and
    force-delete runc's container."""
    conmon_pid = read_pid_file(spec.conmon_pid_file)
    if conmon_pid and proc.pid_alive(conmon_pid):
        proc.kill_tree(conmon_pid, proc.pid_start_time(conmon_pid))
    with contextlib.suppress(Exception):
        await proc.run([spec.runtime, "--root", spec.runtime_root, "delete", "--force",
                        spec.cid], timeout=spec.timeout)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(spec.exit_dir, spec.cid))
