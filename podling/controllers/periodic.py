"""The loop of a level-triggered controller: one :meth:`PeriodicController.sync` pass every
``period`` seconds of its clock, until stopped.

A failed pass is logged and retried on the next one (never in a tight loop); cancellation
ends the loop. :meth:`start` starts it once; :meth:`stop` cancels and waits, and is
idempotent. Subclasses implement :meth:`sync` (also called directly by tests).
"""

from __future__ import annotations

import asyncio
import logging

from ..util.clock import Clock

log = logging.getLogger(__name__)


class PeriodicController:
    """Runs ``sync`` every ``_period`` seconds of ``_clock``; ``name`` names the task."""

    name = "controller"
    _clock: Clock
    _period: float
    _task: asyncio.Task | None = None

    async def sync(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s pass failed; retrying in %ss", self.name, self._period)
            await self._clock.sleep(self._period)
