"""Non-blocking descriptor I/O on the event loop, and the output queue of a session.

``read_fd`` / ``write_fd`` work on raw descriptors (pipes, a pty master, a socket) in
O_NONBLOCK mode: they try the system call first and wait for readiness only when it would
block, so a busy stream costs one system call per chunk. ``Output`` merges several sources
(stdout, stderr, a socket) into the ``(stream, data)`` chunks an ExecSession's ``read``
returns, with back-pressure: a source stops reading while the queue is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from typing import Awaitable, Callable

READ_SIZE = 256 * 1024
MORE_SIZE = 64 * 1024
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031

Emit = Callable[[int, bytes], Awaitable[None]]
Source = Callable[[Emit], Awaitable[None]]


async def _ready(fd: int, *, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writable else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writable else loop.remove_reader)(fd)


async def read_fd(fd: int, size: int = READ_SIZE) -> bytes:
    """Up to ``size`` bytes; b"" at end of file (EIO from a pty master whose other side is
    closed counts as end of file)."""
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise
        await _ready(fd, writable=False)


async def read_available(fd: int, size: int = READ_SIZE) -> bytes:
    """Like ``read_fd``, then whatever more is ready at once (up to ``size`` in all): a
    writer of small chunks (a pty gives at most 4 KiB a read) costs one wake-up per batch.
    The pieces are joined once, and each further read asks for at most :data:`MORE_SIZE`
    bytes (``os.read`` allocates what it asks for before it knows what it gets)."""
    data = await read_fd(fd, size)
    if not data or len(data) >= size:
        return data
    parts, total = [data], len(data)
    while total < size:
        try:
            more = os.read(fd, min(size - total, MORE_SIZE))
        except OSError:  # would block, or EIO of a closed pty: the next read_fd tells
            break
        if not more:
            break
        parts.append(more)
        total += len(more)
    return data if len(parts) == 1 else b"".join(parts)


async def write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data``. Raises BrokenPipeError when the reader is gone."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        await _ready(fd, writable=True)


def make_pipe() -> tuple[int, int]:
    """A close-on-exec pipe (read end, write end) enlarged to PIPE_SIZE where allowed."""
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


class Output:
    """Chunks from several sources, in arrival order per source; ``get`` returns None once
    every source has ended or after ``stop``. One consumer at a time."""

    def __init__(self, *, depth: int = 16) -> None:
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(depth)
        self._tasks: list[asyncio.Task[None]] = []
        self._live = 0
        self._ended = False

    def add(self, source: Source) -> None:
        """Run ``source(emit)`` as a task; its return (or failure) ends that source."""
        self._live += 1
        self._tasks.append(asyncio.create_task(self._run(source)))

    async def _run(self, source: Source) -> None:
        try:
            await source(self._emit)
        except OSError:
            pass  # a broken descriptor ends the source like end of file
        finally:
            self._live -= 1
            if self._live == 0 and not self._ended:
                await self._queue.put(None)

    async def _emit(self, stream: int, data: bytes) -> None:
        if data:
            await self._queue.put((stream, data))

    async def get(self) -> tuple[int, bytes] | None:
        if self._ended:
            return None
        item = await self._queue.get()
        if item is None:
            self._ended = True
        return item

    async def wait_sources(self) -> None:
        """Return once every source has ended (the consumer may not have read everything)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the sources and wake a waiting ``get`` (it returns None). Idempotent."""
        self._ended = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
