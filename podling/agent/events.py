"""Record core/v1 Events about pods and nodes, aggregated the way client-go does it.

:meth:`EventRecorder.event` never blocks and never raises: it queues the event, and one
background task sends the queue in order. Before sending, the recorder correlates (like
client-go's EventCorrelator / eventLogger)::

    key = (involvedObject kind/namespace/name/uid/apiVersion/fieldPath,
           type, reason, message, source component/host)
    key seen within `window_seconds` ─yes─▶ PATCH that event: count+1, lastTimestamp=now
                                     └─no─▶ POST a new event <objname>.<16 hex>, count 1

A PATCH that finds the event gone (404, e.g. expired by the server's TTL) creates it again.
The queue is bounded: when it is full the oldest queued event is dropped (and logged).
Send failures are retried a few times, then logged and dropped — events are best effort.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..api.errors import ApiError
from ..api.resources import EVENTS
from ..client.errors import ApiConnectionError

if TYPE_CHECKING:
    from ..client.rest import ApiClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EVENT_TYPES = ("Normal", "Warning")
CACHE_SIZE = 4096  # client-go's maxLruCacheEntries
DROP_LOG_EVERY = 100


@dataclass
class _Pending:
    """One event() call waiting in the queue."""

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


def object_reference(obj: Obj, field_path: str | None = None) -> Obj:
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


def container_field_path(container_name: str, init: bool = False) -> str:
    """``spec.containers{name}`` (``spec.initContainers{name}`` for init containers)."""
    return f"spec.{'initContainers' if init else 'containers'}{{{container_name}}}"


def _time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Queues and sends Events for one component on one host (the kubelet on a node).

    Who may call: coroutines and callbacks on the event loop (``event`` starts the sender
    task on first use, so it needs a running loop). ``clock`` gives epoch seconds.
    """

    def __init__(self, client: "ApiClient", component: str = "kubelet",
                 host: str = "", *, clock: Callable[[], float] = time.time,
                 max_queue: int = 1000, window_seconds: float = 3600.0,
                 retries: int = 3, retry_seconds: float = 1.0) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        self.window_seconds = window_seconds
        self.retries = retries
        self.retry_seconds = retry_seconds
        self._queue: collections.deque[_Pending] = collections.deque()
        self._max_queue = max_queue
        self._seen: collections.OrderedDict[tuple, _Seen] = collections.OrderedDict()
        self._last_nanos = 0
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    # -- producer side ---------------------------------------------------------------------

    def event(self, obj: Obj, type: str, reason: str, message: str,
              field_path: str | None = None) -> None:
        """Queue one event about ``obj``. Never blocks, never raises for API trouble;
        ignored (with a log line) after :meth:`close` or for an unknown ``type``."""
        if self._closed:
            log.debug("event recorder closed; dropping %s %s", reason, message)
            return
        if type not in EVENT_TYPES:
            log.error("unsupported event type %r for %s; dropped", type, reason)
            return
        if len(self._queue) >= self._max_queue:
            dropped = self._queue.popleft()
            self._dropped += 1
            if self._dropped % DROP_LOG_EVERY == 1:
                log.warning("event queue full (%d); dropping the oldest: %s %s (%d dropped "
                            "so far)", self._max_queue, dropped.reason, dropped.message,
                            self._dropped)
        self._queue.append(_Pending(object_reference(obj, field_path), type, reason, message,
                                    self.clock()))
        self._idle.clear()
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="event-recorder")

    async def flush(self) -> None:
        """Wait until every event queued so far has been sent (or given up on)."""
        if self._task is not None and not self._task.done():
            await self._idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting events, send what is queued (for at most ``timeout`` seconds),
        then stop the sender. Idempotent."""
        self._closed = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            log.warning("event recorder closed with %d events unsent", len(self._queue))
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    # -- sender side -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            pending = self._queue.popleft()
            try:
                await self._send(pending)
            except asyncio.CancelledError:
                raise
            except Exception:  # the sender must survive anything
                log.exception("event %s could not be recorded", pending.reason)

    def _key(self, p: _Pending) -> tuple:
        ref = p.ref
        return (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid"),
                ref.get("apiVersion"), ref.get("fieldPath"), p.type, p.reason, p.message,
                self.component, self.host)

    def _correlate(self, p: _Pending) -> _Seen:
        """Update the LRU cache for ``p``; count > 1 means: patch ``name``."""
        key = self._key(p)
        seen = self._seen.get(key)
        if seen is not None and p.at - seen.last_at <= self.window_seconds:
            seen.count += 1
            seen.last_at = p.at
            self._seen.move_to_end(key)
            return seen
        seen = _Seen(self._name(p.ref["name"], p.at), p.ref.get("namespace") or "default",
                     1, _time(p.at), p.at)
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

    def _body(self, p: _Pending, seen: _Seen) -> Obj:
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": seen.name, "namespace": seen.namespace},
                "involvedObject": p.ref, "reason": p.reason, "message": p.message,
                "source": {"component": self.component, "host": self.host},
                "firstTimestamp": seen.first, "lastTimestamp": _time(p.at),
                "count": seen.count, "type": p.type,
                "reportingComponent": self.component, "reportingInstance": self.host}

    async def _send(self, p: _Pending) -> None:
        seen = self._correlate(p)
        body = self._body(p, seen)
        for attempt in range(1, self.retries + 1):
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
            if attempt < self.retries:
                await asyncio.sleep(self.retry_seconds * attempt)
        log.warning("event %s/%s not recorded after %d attempts: %s", seen.namespace,
                    seen.name, self.retries, error)

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
