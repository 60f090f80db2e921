"""The scheduler's Events (``Scheduled`` / ``FailedScheduling``, source default-scheduler).

``record`` never blocks or raises: it queues, and ``lanes`` background tasks write; the
events of one pod always go through the same lane, so they are written in order.
Repeats are aggregated as Kubernetes shows them: an event with the same involved pod (uid),
type, reason and message within ``window`` seconds PATCHes the first one's ``count`` and
``lastTimestamp`` instead of creating another. Failures are logged and dropped (events are
best effort).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..api.errors import ApiError
from ..api.resources import EVENTS
from ..client import ApiClient, ApiConnectionError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_REMEMBERED = 4096


@dataclass
class _Series:
    name: str
    namespace: str
    first: str
    count: int
    last_at: float


def _rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_reference(pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    ref = {"kind": "Pod", "namespace": meta.get("namespace") or "", "name": meta.get("name"),
           "uid": meta.get("uid") or "", "apiVersion": "v1",
           "resourceVersion": meta.get("resourceVersion") or ""}
    return {k: v for k, v in ref.items() if v}


class EventWriter:
    """Writes core/v1 Events about pods for one component."""

    def __init__(self, client: ApiClient, component: str = "default-scheduler", *,
                 clock: Callable[[], float] = time.time, window: float = 600.0,
                 max_queue: int = 10_000, lanes: int = 4) -> None:
        self.client = client
        self.component = component
        self.clock = clock
        self.window = window
        self._lanes: list[collections.deque[tuple[Obj, str, str, str, float]]] = [
            collections.deque(maxlen=max_queue // lanes) for _ in range(lanes)]
        self._wakes = [asyncio.Event() for _ in range(lanes)]
        self._series: collections.OrderedDict[tuple, _Series] = collections.OrderedDict()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._seq = 0

    def record(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Queue one event about ``pod`` (needs a running loop)."""
        ref = pod_reference(pod)
        lane = hash(ref.get("uid") or ref.get("name")) % len(self._lanes)
        queue = self._lanes[lane]
        if len(queue) == queue.maxlen:
            self._pending -= 1  # the oldest is dropped by the bounded deque
        queue.append((ref, type_, reason, message, self.clock()))
        self._pending += 1
        self._idle.clear()
        self._wakes[lane].set()
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(i), name=f"scheduler-events-{i}")
                           for i in range(len(self._lanes))]

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or dropped)."""
        if self._tasks:
            await self._idle.wait()

    async def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (at most ``timeout`` s), then stop. Idempotent."""
        if not self._tasks:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            log.warning("scheduler events: %d unsent at shutdown", self._pending)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _run(self, lane: int) -> None:
        queue, wake = self._lanes[lane], self._wakes[lane]
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            item = queue.popleft()
            try:
                await self._send(*item)
            except (ApiError, ApiConnectionError) as exc:
                log.warning("scheduler event %s not recorded: %s", item[2], exc)
            except Exception:  # noqa: BLE001 - the writer must survive anything
                log.exception("scheduler event %s not recorded", item[2])
            finally:
                self._pending -= 1
                if self._pending <= 0:
                    self._pending = 0
                    self._idle.set()

    def _correlate(self, ref: Obj, type_: str, reason: str, message: str, at: float
                   ) -> _Series:
        key = (ref.get("namespace"), ref.get("name"), ref.get("uid"), type_, reason, message)
        series = self._series.get(key)
        if series is not None and at - series.last_at <= self.window:
            series.count += 1
            series.last_at = at
            self._series.move_to_end(key)
            return series
        self._seq += 1
        name = f"{ref.get('name')}.{int(at * 1e9) + self._seq:x}"
        series = _Series(name, ref.get("namespace") or "default", _rfc3339(at), 1, at)
        self._series[key] = series
        while len(self._series) > MAX_REMEMBERED:
            self._series.popitem(last=False)
        return series

    async def _send(self, ref: Obj, type_: str, reason: str, message: str, at: float) -> None:
        series = self._correlate(ref, type_, reason, message, at)
        if series.count > 1:
            patch = {"count": series.count, "lastTimestamp": _rfc3339(at)}
            try:
                await self.client.patch(EVENTS, series.name, patch, series.namespace)
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": series.name, "namespace": series.namespace},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": self.component}, "count": series.count,
                "firstTimestamp": series.first, "lastTimestamp": _rfc3339(at),
                "reportingComponent": self.component, "reportingInstance": self.component}
        await self.client.create(EVENTS, body, series.namespace)
