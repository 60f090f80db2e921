"""Coalesced read barriers: many concurrent readers, one check for all that arrived before it
started.

A reader calls :meth:`ReadFence.wait`. If a check is scheduled and has not started yet, the
reader joins it; otherwise it schedules a new one. A check starts one event-loop turn after
it was scheduled, so every reader it serves arrived before it began: what the check sees is
at least as new as what each of them asked for. Under load this turns N concurrent reads
into one round trip to etcd instead of N. A failing check fails the readers that joined it.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


class ReadFence:
    """See the module docstring. Used from one event loop."""

    def __init__(self, check: Callable[[], Awaitable[None]]) -> None:
        self._check = check
        self._scheduled: asyncio.Future[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def wait(self) -> None:
        """Return once a check that started after this call has passed; raise what it
        raised."""
        if self._scheduled is None:
            loop = asyncio.get_running_loop()
            self._scheduled = loop.create_future()
            # retrieved here so that no "never retrieved" warning follows cancelled readers
            self._scheduled.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_soon(self._start, self._scheduled)
        await asyncio.shield(self._scheduled)

    def _start(self, done: asyncio.Future[None]) -> None:
        self._scheduled = None  # later readers wait for the next check
        task = asyncio.ensure_future(self._run(done))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, done: asyncio.Future[None]) -> None:
        try:
            await self._check()
        except BaseException as exc:  # noqa: BLE001 - handed to every reader
            if not done.done():
                done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not done.done():
                done.set_result(None)
