"""In-memory exec / attach sessions for FakeRuntime (docs/streaming.md §3).

A fake session is driven by a *handler*, an ``async def handler(process: FakeProcess)`` that
plays the exec'd program (or the container's main process for attach): it reads stdin with
``await process.read_stdin()`` (b"" at end of input), writes output with
``process.output(data, stream)`` and sees the terminal size in ``process.size``; its return
value is the exit code. ``close()`` cancels the handler, which counts as the process being
killed (``process.killed``).

    session.write ──▶ stdin queue ──▶ handler ──▶ output queue ──▶ session.read
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from .interface import STDOUT

Handler = Callable[["FakeProcess"], Awaitable[int | None]]


class FakeProcess:
    """The program side of a fake session (what a handler sees)."""

    def __init__(self, container_id: str, argv: list[str], *, tty: bool, stdin: bool) -> None:
        self.container_id = container_id
        self.argv = list(argv)
        self.tty = tty
        self.stdin = stdin
        self.size: tuple[int, int] | None = None  # (width, height) of the last resize
        self.resized = asyncio.Event()
        self.killed = False
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

    async def read_stdin(self) -> bytes:
        """The next chunk written to stdin; b"" once stdin is closed."""
        data = await self._stdin.get()
        if not data:
            self._stdin.put_nowait(b"")  # stay at end of input
        return data

    def output(self, data: bytes, stream: int = STDOUT) -> None:
        """Emit output (with a tty everything is reported as STDOUT)."""
        if data:
            self._output.put_nowait((STDOUT if self.tty else stream, bytes(data)))


class FakeSession:
    """An ExecSession over a handler task; ``exit_code`` None marks an attach session."""

    def __init__(self, process: FakeProcess, handler: Handler, *, attach: bool = False) -> None:
        self.tty = process.tty
        self.process = process
        self._attach = attach
        self._stdin_open = process.stdin
        self._ended = False
        self._task = asyncio.create_task(self._run(handler))

    async def _run(self, handler: Handler) -> int | None:
        try:
            return await handler(self.process)
        finally:
            self.process._output.put_nowait(None)

    async def read(self) -> tuple[int, bytes] | None:
        if self._ended:
            return None
        item = await self.process._output.get()
        if item is None:
            self._ended = True
        return item

    async def write(self, data: bytes) -> None:
        if self._stdin_open and data and not self._task.done():
            self.process._stdin.put_nowait(bytes(data))

    async def close_stdin(self) -> None:
        if self._stdin_open:
            self._stdin_open = False
            self.process._stdin.put_nowait(b"")

    async def resize(self, width: int, height: int) -> None:
        if self.tty and width > 0 and height > 0:
            self.process.size = (width, height)
            self.process.resized.set()

    async def wait(self) -> int | None:
        try:
            code = await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise
            code = 137
        return None if self._attach else int(code or 0)

    async def close(self) -> None:
        if not self._task.done():
            self.process.killed = True
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._ended = True
        self.process._output.put_nowait(None)

    @property
    def running(self) -> bool:
        return not self._task.done()
