"""Exits of processes that have no monitor (the pause), seen through pidfds.

The pause process runs without conmon (service.py): ``runc run --detach`` leaves it a child
of the host's init, which reaps it as it reaps any orphan. A pidfd (``pidfd_open``) refers to
that one process, never to a later one with a reused pid, becomes readable when it exits
(zombie or reaped: the same), and takes a signal (``pidfd_send_signal``) without the pid
race. The watcher keeps one pidfd per watched id as an asyncio reader: no thread, no poll.

    watch(id, pid, start_time, on_exit) ──exit──▶ on_exit(id) once, pidfd closed
                                        ──unwatch(id) / close()──▶ pidfd closed, no call

``open_pidfd`` returns None when the process is gone or ``pid`` now names another process
(its start time differs): for the caller, "it has exited".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Callable

from . import proc


def open_pidfd(pid: int, start_time: int) -> int | None:
    """A pidfd for ``pid`` if it is still the process that started at ``start_time``."""
    if pid <= 0:
        return None
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None
    # Opened first, checked second: if the check passes, the fd names the right process.
    if not proc.same_process(pid, start_time):
        os.close(fd)
        return None
    return fd


def kill(pidfd: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process behind ``pidfd``; one that has exited already is fine."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)


async def wait_readable(pidfd: int, timeout: float) -> bool:
    """True once the process behind ``pidfd`` has exited, False after ``timeout``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await asyncio.wait_for(done, timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)


class PidWatcher:
    """One pidfd reader per watched id on the running loop; see the module doc."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, oid: str, pid: int, start_time: int,
              on_exit: Callable[[str], None]) -> bool:
        """Call ``on_exit(oid)`` when the process exits. False (and no call) when it has
        exited already; watching an id twice replaces the first watch."""
        self.unwatch(oid)
        fd = open_pidfd(pid, start_time)
        if fd is None:
            return False
        loop = self._loop = asyncio.get_running_loop()

        def fired() -> None:
            if self._fds.get(oid) == fd:
                self.unwatch(oid)
                on_exit(oid)

        self._fds[oid] = fd
        loop.add_reader(fd, fired)
        return True

    def unwatch(self, oid: str) -> None:
        fd = self._fds.pop(oid, None)
        if fd is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
        os.close(fd)

    def watching(self, oid: str) -> bool:
        return oid in self._fds

    def close(self) -> None:
        for oid in list(self._fds):
            self.unwatch(oid)
