"""Event-driven exit detection: inotify on conmon's exit directory.

conmon writes ``<exit dir>/<container id>`` (the exit status as decimal text) when the
container's init process ends; it creates the file atomically (temp file + rename), so a
rename into the directory (IN_MOVED_TO) or a closed write (IN_CLOSE_WRITE) means "exited".
Nothing polls: the inotify fd is an asyncio reader.

    ExitWatcher.start() ──▶ watching ──close()──▶ closed (waiters cancelled, streams end)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct
from dataclasses import dataclass
from typing import AsyncIterator

from podling.util.libc import libc

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class ExitRecord:
    """What an exit file says: the id, the exit status and when it was written."""

    id: str
    exit_code: int
    finished_at: float


def read_exit_file(exit_dir: str, cid: str) -> ExitRecord | None:
    """The exit record for ``cid``, or None if conmon has not written it (yet)."""
    path = os.path.join(exit_dir, cid)
    try:
        with open(path) as f:
            text = f.read().strip()
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    try:
        code = int(text)
    except ValueError:
        return None  # being written; the rename event follows
    return ExitRecord(cid, code, mtime)


def write_exit_file(exit_dir: str, cid: str, code: int) -> None:
    """Record an exit ourselves (when the monitor died without doing it); atomic."""
    tmp = os.path.join(exit_dir, f".{cid}.tmp")
    with open(tmp, "w") as f:
        f.write(str(code))
    os.replace(tmp, os.path.join(exit_dir, cid))


def parse_events(data: bytes) -> list[str]:
    """File names from a buffer of ``struct inotify_event`` records."""
    names, offset = [], 0
    while offset + _EVENT.size <= len(data):
        _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        raw = data[offset:offset + length]
        offset += length
        name = raw.split(b"\0", 1)[0].decode(errors="replace")
        if name:
            names.append(name)
    return names


class ExitWatcher:
    """Watches one exit directory; ``wait(id)`` futures and ``subscribe()`` streams.

    Must be started and used from one event loop."""

    def __init__(self, exit_dir: str) -> None:
        self.exit_dir = exit_dir
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop our reader is on
        self._waiters: dict[str, list[asyncio.Future[ExitRecord]]] = {}
        self._streams: list[asyncio.Queue[ExitRecord | None]] = []

    def start(self) -> None:
        fd = libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc().inotify_add_watch(fd, self.exit_dir.encode(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {self.exit_dir}")
        try:
            loop = asyncio.get_running_loop()
            loop.add_reader(fd, self._on_readable)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._loop = fd, loop

    @property
    def started(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1  # forget it first: never closed twice
        loop, self._loop = self._loop, None
        if fd >= 0:
            # Unregister from the loop it was added to (even when close() runs outside it):
            # a closed fd left in the selector would clash with whatever reuses the number.
            if loop is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(fd)
            os.close(fd)
        for futures in self._waiters.values():
            for fut in futures:
                fut.cancel()
        self._waiters.clear()
        for queue in self._streams:
            queue.put_nowait(None)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        for name in parse_events(data):
            if name.startswith("."):
                continue
            record = read_exit_file(self.exit_dir, name)
            if record is not None:
                self._deliver(record)

    def _deliver(self, record: ExitRecord) -> None:
        for fut in self._waiters.pop(record.id, []):
            if not fut.done():
                fut.set_result(record)
        for queue in self._streams:
            queue.put_nowait(record)

    async def wait(self, cid: str, timeout: float | None = None) -> ExitRecord | None:
        """The exit record of ``cid`` once it exists; None if ``timeout`` passes first.
        Registers before checking the file, so an exit is never missed."""
        fut: asyncio.Future[ExitRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(cid, []).append(fut)
        try:
            existing = read_exit_file(self.exit_dir, cid)
            if existing is not None:
                return existing
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(cid, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._waiters.pop(cid, None)
            fut.cancel()

    def subscribe(self) -> AsyncIterator[ExitRecord]:
        """Every exit from now on, until ``close()``."""
        queue: asyncio.Queue[ExitRecord | None] = asyncio.Queue()
        if self.started:
            self._streams.append(queue)
        else:
            queue.put_nowait(None)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[ExitRecord | None]) -> AsyncIterator[ExitRecord]:
        try:
            while (record := await queue.get()) is not None:
                yield record
        finally:
            if queue in self._streams:
                self._streams.remove(queue)
