"""Record core/v1 Events, aggregated the way Kubernetes does it: the one recorder for every
component (the agent as ``kubelet``, the scheduler as ``default-scheduler``, controllers).

Contract of :class:`EventRecorder`:

* ``event(obj, type, reason, message, field_path=None)`` never blocks and never raises for
  API trouble: it queues and returns. Background sender tasks write the queue. Who may call:
  code on the event loop (the first call starts the senders, so it needs a running loop).
* Order: the events of one object (by uid, else name) always go through the same lane, so
  they are written in the order they were recorded. With ``lanes > 1`` events of different
  objects are written concurrently.
* Aggregation, as client-go's EventCorrelator / eventLogger does it for identical events::

      key = (involvedObject kind/namespace/name/uid/apiVersion/fieldPath,
             type, reason, message, source component/host)
      key seen within `window_seconds` ─yes─▶ PATCH that event: count+1, lastTimestamp=now
                                       └─no──▶ POST a new event <objname>.<16 hex>, count 1

  Names are ``<involved object name>.<epoch nanoseconds in hex>``, unique per recorder.
  ``firstTimestamp`` stays the first occurrence's time. A PATCH that finds the event gone
  (404, e.g. expired by the server's TTL) creates it again; a POST answered 409 counts as
  written (a retry after a lost answer). The last LRU ``CACHE_SIZE`` keys are remembered.
* ``source`` is ``{"component": component, "host": host}`` (no ``host`` when it is '');
  ``reportingComponent`` is the component, ``reportingInstance`` the host (else the component).
  Events about cluster-scoped objects (Nodes) go to the ``default`` namespace.
* Best effort: each lane's queue is bounded (``max_queue // lanes``); when full its oldest
  event is dropped (and logged). 5xx, 429 and connection errors are retried ``retries``
  times; other rejections are logged and dropped.
* ``flush()`` waits until everything queued so far is written or given up on;
  ``close(timeout)`` stops accepting events (later ones are ignored), flushes for at most
  ``timeout`` seconds, then stops the senders. Idempotent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..api.errors import ApiError
from ..api.resources import EVENTS
from ..api.types import Obj, ObjMap
from ..util.timefmt import epoch_rfc3339
from .errors import ApiConnectionError
from .rest import ApiClient

log = logging.getLogger(__name__)

EVENT_TYPES = ("Normal", "Warning")
CACHE_SIZE = 4096  # client-go's maxLruCacheEntries
DROP_LOG_EVERY = 100


def object_reference(obj: ObjMap, field_path: str | None = None) -> Obj:
    """The involvedObject for ``obj`` (a Pod or Node as the API returns it).

    List items carry no kind: an object without one is a Pod if it has a namespace, else a
    Node. ``field_path`` names a container, e.g. ``spec.containers{main}``."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    ref = {"kind": obj.get("kind") or ("Pod" if namespace else "Node"),
           "namespace": namespace, "name": meta.get("name", ""),
           "uid": meta.get("uid") or meta.get("name", ""),
           "apiVersion": obj.get("apiVersion") or "v1",
           "resourceVersion": meta.get("resourceVersion", "")}
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v}


@dataclass
class _Pending:
    """One event() call waiting in a lane."""

    ref: Obj
    type: str
    reason: str
    message: str
    at: float


@dataclass
class _Seen:
    """What the correlator remembers about one aggregated event."""

    name: str
    namespace: str
    count: int
    first: str
    last_at: float


class _Correlator:
    """The aggregation cache (pure, no I/O): which event a new occurrence counts into."""

    def __init__(self, source: tuple[str, str], window_seconds: float) -> None:
        self.source = source
        self.window_seconds = window_seconds
        self._seen: collections.OrderedDict[tuple, _Seen] = collections.OrderedDict()
        self._last_nanos = 0

    def observe(self, p: _Pending) -> _Seen:
        """Count ``p`` in; ``count > 1`` in the answer means: patch the event ``name``."""
        ref = p.ref
        key = (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid"),
               ref.get("apiVersion"), ref.get("fieldPath"), p.type, p.reason, p.message,
               self.source)
        seen = self._seen.get(key)
        if seen is not None and p.at - seen.last_at <= self.window_seconds:
            seen.count += 1
            seen.last_at = p.at
        else:
            seen = _Seen(self._name(ref["name"], p.at), ref.get("namespace") or "default",
                         1, epoch_rfc3339(p.at), p.at)
            self._seen[key] = seen
        self._seen.move_to_end(key)
        while len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)
        return seen

    def _name(self, obj_name: str, at: float) -> str:
        """``<objname>.<hex nanoseconds>`` like client-go, unique within this recorder."""
        nanos = max(int(at * 1e9), self._last_nanos + 1)
        self._last_nanos = nanos
        return f"{obj_name}.{nanos:x}"


class EventRecorder:
    """Queues and writes Events for one component on one host (see the module docstring).

    ``clock`` gives epoch seconds (a fake clock in tests)."""

    def __init__(self, client: ApiClient, component: str, host: str = "", *,
                 clock: Callable[[], float] = time.time, max_queue: int = 1000,
                 window_seconds: float = 3600.0, retries: int = 3,
                 retry_seconds: float = 1.0, lanes: int = 1) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        self.retries = retries
        self.retry_seconds = retry_seconds
        self._correlator = _Correlator((component, host), window_seconds)
        self._lane_size = max(1, max_queue // max(1, lanes))
        self._lanes: list[collections.deque[_Pending]] = [
            collections.deque() for _ in range(max(1, lanes))]
        self._wakes = [asyncio.Event() for _ in self._lanes]
        self._pending = 0  # queued or being written
        self._dropped = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- producer side ---------------------------------------------------------------------

    def event(self, obj: ObjMap, type: str, reason: str, message: str,
              field_path: str | None = None) -> None:
        """Queue one event about ``obj``. Never blocks, never raises for API trouble;
        ignored (with a log line) after :meth:`close` or for an unknown ``type``."""
        if self._closed:
            log.debug("event recorder closed; dropping %s %s", reason, message)
            return
        if type not in EVENT_TYPES:
            log.error("unsupported event type %r for %s; dropped", type, reason)
            return
        ref = object_reference(obj, field_path)
        lane = hash(ref.get("uid") or ref.get("name")) % len(self._lanes)
        queue = self._lanes[lane]
        if len(queue) >= self._lane_size:
            self._drop_oldest(queue)
        queue.append(_Pending(ref, type, reason, message, self.clock()))
        self._pending += 1
        self._idle.clear()
        self._wakes[lane].set()
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(i), name=f"events-{self.component}-{i}")
                           for i in range(len(self._lanes))]

    def _drop_oldest(self, queue: collections.deque[_Pending]) -> None:
        dropped = queue.popleft()
        self._pending -= 1
        self._dropped += 1
        if self._dropped % DROP_LOG_EVERY == 1:
            log.warning("event queue full (%d); dropping the oldest: %s %s (%d dropped so "
                        "far)", self._lane_size, dropped.reason, dropped.message,
                        self._dropped)

    async def flush(self) -> None:
        """Wait until every event queued so far has been written (or given up on)."""
        if self._tasks:
            await self._idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting events, write what is queued (for at most ``timeout`` seconds),
        then stop the senders. Idempotent."""
        self._closed = True
        if not self._tasks:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            log.warning("event recorder %s closed with %d events unsent", self.component,
                        self._pending)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- sender side -----------------------------------------------------------------------

    async def _run(self, lane: int) -> None:
        queue, wake = self._lanes[lane], self._wakes[lane]
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            pending = queue.popleft()
            try:
                await self._send(pending)
            except asyncio.CancelledError:
                raise
            except Exception:  # the sender must survive anything
                log.exception("event %s could not be recorded", pending.reason)
            finally:
                self._pending -= 1
                if self._pending <= 0:
                    self._pending = 0
                    self._idle.set()

    def _body(self, p: _Pending, seen: _Seen) -> Obj:
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": seen.name, "namespace": seen.namespace},
                "involvedObject": p.ref, "reason": p.reason, "message": p.message,
                "source": source, "firstTimestamp": seen.first,
                "lastTimestamp": epoch_rfc3339(p.at), "count": seen.count, "type": p.type,
                "reportingComponent": self.component,
                "reportingInstance": self.host or self.component}

    async def _send(self, p: _Pending) -> None:
        seen = self._correlator.observe(p)
        body = self._body(p, seen)
        attempts = max(1, self.retries)
        for attempt in range(1, attempts + 1):
            try:
                await self._write(body, seen)
                return
            except ApiError as exc:
                if exc.code < 500 and exc.code != 429:
                    log.warning("event %s/%s rejected: %s", seen.namespace, seen.name, exc)
                    return
                error: Exception = exc
            except ApiConnectionError as exc:
                error = exc
            if attempt < attempts:
                await asyncio.sleep(self.retry_seconds * attempt)
        log.warning("event %s/%s not recorded after %d attempts: %s", seen.namespace,
                    seen.name, attempts, error)

    async def _write(self, body: Obj, seen: _Seen) -> None:
        if seen.count > 1:
            patch = {"count": body["count"], "lastTimestamp": body["lastTimestamp"],
                     "message": body["message"]}
            try:
                await self.client.patch(EVENTS, seen.name, patch, seen.namespace,
                                        patch_type="strategic")
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        try:
            await self.client.create(EVENTS, body, seen.namespace)
        except ApiError as exc:
            if exc.code != 409:  # already there: a retry after a lost answer
                raise
