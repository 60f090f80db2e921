"""The pod lifecycle event generator: turns runtime changes into pod syncs.

Exit detection is event-driven: the runtime's exit events (conmon exit files watched with
inotify) name the sandbox, whose pod is looked up by its labels. Exits missed while the agent
was down are found by the pod workers' periodic resync, which lists the runtime.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from podling.agent.kuberuntime import labels
from podling.runtime.interface import RuntimeService, SandboxNotFound

log = logging.getLogger(__name__)


class Pleg:
    def __init__(self, runtime: RuntimeService, notify: Callable[[str], None]) -> None:
        self._runtime = runtime
        self._notify = notify
        self._pods_by_sandbox: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pleg")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async for exit_ in self._runtime.exit_events():
            uid = await self._pod_of(exit_.sandbox_id)
            if uid:
                self._notify(uid)

    async def _pod_of(self, sandbox_id: str) -> str | None:
        uid = self._pods_by_sandbox.get(sandbox_id)
        if uid is None:
            try:
                status = await self._runtime.pod_sandbox_status(sandbox_id)
            except SandboxNotFound:
                return None
            uid = status.labels.get(labels.POD_UID)
            if uid:
                self._pods_by_sandbox[sandbox_id] = uid
        return uid
