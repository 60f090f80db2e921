"""A controller's queue of keys and the worker that handles them one at a time.

Each key is in the queue at most once however often it is added (what a controller must
look at, not how often it changed). The worker waits for its informers to sync, then calls
``handle(key)`` for each key in turn: an ApiError or a lost connection puts the key back
after ``retry_seconds``; any other exception is a bug, logged, and the key comes back with
the informers' next periodic SYNC.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Sequence

from ..api.errors import ApiError
from ..client import ApiConnectionError, Informer

log = logging.getLogger(__name__)


class WorkQueue:
    """``start()`` from a running loop; ``await stop()`` is idempotent."""

    def __init__(self, name: str, handle: Callable[[str], Awaitable[None]], *,
                 retry_seconds: float, waits_for: Sequence[Informer] = (),
                 describe: Callable[[str], str] = str) -> None:
        self.name = name
        self._handle = handle
        self._retry_seconds = retry_seconds
        self._waits_for = tuple(waits_for)
        self._describe = describe
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, key: str) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _work(self) -> None:
        for informer in self._waits_for:
            await informer.wait_synced()
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self._handle(key)
            except (ApiError, ApiConnectionError) as exc:
                log.warning("%s: %s failed (retrying): %s", self.name, self._describe(key), exc)
                asyncio.get_running_loop().call_later(self._retry_seconds, self.add, key)
            except Exception:  # a bug: logged; the next resync tries again
                log.exception("%s: %s", self.name, self._describe(key))
