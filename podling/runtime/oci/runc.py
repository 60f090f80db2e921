"""An async wrapper of the runc CLI with its own ``--root`` and a deadline on every call.

Only the subcommands podling needs: ``state``, ``kill``, ``delete``, ``list``, and ``run
--detach`` for the pause (no monitor: service.py); ``start`` is done in-process (the exec
fifo), and so is ``delete`` of a container none of whose processes is left. ``create`` of containers is run by
conmon (see conmon.py), ``exec`` by execs.py (a session, not a call).
Errors become RuntimeCommandError; "does not exist" answers become ``None`` / no-ops so
callers can be idempotent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from ..interface import RuntimeCommandError
from . import pidwatch, proc

_MISSING = ("does not exist", "not found", "no such file")
RUNC_INIT_NAME = "runc:[2:INIT]"  # the command name of a created container's waiting init
EXEC_FIFO = "exec.fifo"  # in runc's state directory: the created init blocks writing to it


_LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def clean_message(text: str) -> str:
    """runc's logrus lines (``time=… level=error msg="…"``) reduced to their messages."""
    found = _LOGRUS_MSG.findall(text)
    if not found:
        return text.strip()
    return "; ".join(re.sub(r'\\(.)', r"\1", m) for m in found)


def _is_missing(text: str) -> bool:
    low = text.lower()
    return any(m in low for m in _MISSING)


async def _wait_fifo_byte(fd: int, pid: int, start_time: int, timeout: float) -> bool:
    """Wait until the exec fifo ``fd`` holds the init's byte and take it: True; False when
    the init exited without writing it. CommandTimeout after ``timeout``."""
    pidfd = pidwatch.open_pidfd(pid, start_time)
    if pidfd is None:  # the init is gone: what it wrote, if anything, is in the fifo
        return _read_byte(fd)
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    loop.add_reader(pidfd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
        return _read_byte(fd)
    except asyncio.TimeoutError:
        raise proc.CommandTimeout(f"runc start timed out after {timeout:g}s") from None
    finally:
        loop.remove_reader(fd)
        loop.remove_reader(pidfd)
        os.close(pidfd)


def _read_byte(fd: int) -> bool:
    try:
        return bool(os.read(fd, 1))
    except BlockingIOError:  # woken by the init's exit, nothing written
        return False


@dataclass(frozen=True)
class RuncState:
    """``runc state`` output: status is created | running | paused | stopped."""

    id: str
    status: str
    pid: int
    bundle: str


class Runc:
    """runc at ``binary`` keeping its state under ``root``; every call bounded by ``timeout``."""

    def __init__(self, binary: str, root: str, *, timeout: float = 10.0) -> None:
        self.binary = binary
        self.root = root
        self.timeout = timeout

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    async def _run(self, *args: str, timeout: float | None = None) -> proc.Completed:
        return await proc.run(self.argv(*args), timeout=timeout or self.timeout)

    async def state(self, cid: str) -> RuncState | None:
        """The container's state, or None if runc does not know it."""
        done = await self._run("state", cid)
        if not done.ok:
            if _is_missing(done.error_text()):
                return None
            raise RuntimeCommandError(f"runc state {cid}: {done.error_text()}")
        data: dict[str, Any] = json.loads(done.stdout)
        return RuncState(data["id"], data["status"], int(data.get("pid") or 0),
                         data.get("bundle", ""))

    async def start(self, cid: str, *, pid: int, start_time: int) -> None:
        """What ``runc start`` does, without running runc: read the byte the container's
        init (``pid``, started at ``start_time``) writes into the state directory's
        ``exec.fifo``, which lets it exec the container's process, then remove the fifo
        (runc then reports the container ``running``). The fifo is opened read-write so
        that the open never blocks: the init's blocking write-open succeeds as soon as it
        gets there. RuntimeCommandError when the container was started already (no fifo)
        or its init died before it was released; bounded by the deadline."""
        path = os.path.join(self.root, cid, EXEC_FIFO)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RuntimeCommandError(f"runc start {cid}: cannot start an already running "
                                      "container") from None
        try:
            if not await _wait_fifo_byte(fd, pid, start_time, self.timeout):
                raise RuntimeCommandError(f"runc start {cid}: container process is already dead")
            os.unlink(path)
        finally:
            os.close(fd)

    def released(self, cid: str, *, pid: int, start_time: int) -> bool:
        """Whether a :meth:`start` of the created container let its init (``pid``, started
        at ``start_time``) go on to exec the container's process: runc's state is there
        and its ``exec.fifo`` is gone (the process may have exited since), or the init
        still runs but no longer as runc's init (opening the fifo releases it, even when
        the start never read its byte or removed the fifo). False while the init waits,
        when it died at the fifo (whether it got to exec cannot be told) and when runc has
        no state for it (it was deleted: nothing of it is left to report)."""
        state_dir = os.path.join(self.root, cid)
        if not os.path.isdir(state_dir):
            return False
        if not os.path.exists(os.path.join(state_dir, EXEC_FIFO)):
            return True
        return proc.same_process(pid, start_time) and \
            proc.command_name(pid) not in ("", RUNC_INIT_NAME)

    async def run_detached(self, cid: str, bundle: str, *, pid_file: str,
                           log_path: str) -> None:
        """``runc run --detach``: create and start in one call, without a monitor. The
        container's stdio (inherited from runc: stdin /dev/null, stdout and stderr appended
        to ``log_path``) and runc's own messages go to ``log_path``; the container runs in
        a session of its own and, once runc exits, is the host init's child. On failure or
        deadline runc is killed and reaped, and RuntimeCommandError carries its message."""
        with open(log_path, "ab") as log:
            offset = log.tell()
            child = await asyncio.create_subprocess_exec(
                *self.argv("run", "--detach", "--bundle", bundle, "--pid-file", pid_file, cid),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=bundle,
                start_new_session=True)
        try:
            await asyncio.wait_for(child.wait(), self.timeout)
        except asyncio.TimeoutError:
            await proc.kill_and_reap(child)
            raise proc.CommandTimeout(f"runc run {cid} timed out after {self.timeout:g}s") from None
        except BaseException:
            await proc.kill_and_reap(child)
            raise
        if child.returncode != 0:
            with open(log_path, "rb") as f:
                f.seek(offset)
                text = f.read(4000).decode(errors="replace")
            raise RuntimeCommandError(clean_message(text) or f"runc run exited {child.returncode}")

    async def kill(self, cid: str, signal: str | int, *, all_processes: bool = False) -> bool:
        """Send a signal; False if the container is gone or already stopped."""
        sig = str(int(signal)) if isinstance(signal, int) else signal.upper().removeprefix("SIG")
        args = ["kill", *(["--all"] if all_processes else []), cid, sig]
        done = await self._run(*args)
        if done.ok:
            return True
        text = done.error_text()
        if _is_missing(text) or "not running" in text or "process already finished" in text:
            return False
        raise RuntimeCommandError(f"runc kill {cid} {sig}: {text}")

    async def delete(self, cid: str, *, force: bool = True) -> None:
        """Delete the container (forcibly by default). A missing container is success."""
        done = await self._run("delete", *(["--force"] if force else []), cid)
        if not done.ok and not _is_missing(done.error_text()):
            raise RuntimeCommandError(f"runc delete {cid}: {done.error_text()}")

    def forget_stopped(self, cid: str) -> bool:
        """Do what ``runc delete`` does for a container none of whose processes is left,
        without running runc: remove its cgroups (from runc's ``state.json``) and its state
        directory. True when done (or nothing was there); False, having changed nothing
        but maybe some empty cgroups, when the init process may still run, the state is
        unreadable or a cgroup is busy (a process is left in it): then call delete()."""
        state_dir = os.path.join(self.root, cid)
        try:
            with open(os.path.join(state_dir, "state.json"), "rb") as f:
                data: dict[str, Any] = json.load(f)
            pid, start = int(data.get("init_process_pid") or 0), \
                int(data.get("init_process_start") or 0)
            paths = sorted({str(p) for p in (data.get("cgroup_paths") or {}).values()})
        except FileNotFoundError:
            return not os.path.exists(state_dir)
        except (OSError, ValueError, TypeError, AttributeError):
            return False
        if not start or proc.same_process(pid, start):
            return False
        for path in paths:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                return False
        shutil.rmtree(state_dir, ignore_errors=True)
        return not os.path.exists(state_dir)

    async def list(self) -> list[RuncState]:
        """Every container under the root (an absent root lists nothing)."""
        if not os.path.isdir(self.root):
            return []
        done = await self._run("list", "--format", "json")
        if not done.ok:
            raise RuntimeCommandError(f"runc list: {done.error_text()}")
        rows = json.loads(done.stdout or b"null") or []
        return [RuncState(r["id"], r["status"], int(r.get("pid") or 0), r.get("bundle", ""))
                for r in rows]
