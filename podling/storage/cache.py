"""An in-memory revisioned store: current objects, bounded event history and watch fan-out.

:class:`CachedStore` implements the whole Storage protocol in memory. A durable backend
subclasses it and overrides :meth:`CachedStore._persist`, which is called with each write
before that write becomes visible; when ``_persist`` raises, nothing changes. Reads, lists and
watches are always served from memory.

Writes are serialized by one asyncio lock, so revisions are assigned, persisted, applied and
fanned out in order.

Memory. Current objects and retained events are kept as their encoded JSON bytes
(:mod:`.compact`), decoded on demand; a small LRU (:data:`HOT_OBJECTS`) keeps the recently
read or written objects decoded. Each version is encoded once, at its write: the bytes are
what SQLite stores, what the cache keeps and what responses and watch events send. The event
history is bounded by count (``history``) and by bytes (``history_bytes``, the sum of the
retained events' encoded objects); a watch from a revision older than what is retained gets
Compacted (410 Expired).
"""

from __future__ import annotations

import builtins
import asyncio
import bisect
import collections
import json
from dataclasses import dataclass
from typing import Callable, Iterable

from .compact import Stored, decode, encode
from .interface import (Compacted, EventType, KeyExists, KeyNotFound, Obj, Preconditions,
                        TryUpdate, WatchEvent)

DEFAULT_HISTORY = 10_000
DEFAULT_HISTORY_BYTES = 8 << 20
HOT_OBJECTS = 64
WATCH_QUEUE_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Logged:
    """A retained event in compact form: its objects as encoded JSON (``prev`` is usually the
    very bytes object of the key's previous event or current object, so it costs nothing)."""

    type: EventType
    key: str
    rev: int
    data: bytes
    prev: bytes | None

    @property
    def size(self) -> int:
        return len(self.data)

    def event(self) -> WatchEvent:
        """The event, decoded afresh."""
        prev = decode(self.prev) if self.prev is not None else None
        return WatchEvent(self.type, self.key, decode(self.data), prev, self.rev)


def encoded(obj: Obj) -> bytes:
    """The encoding of ``obj``: remembered when it is a :class:`~.compact.Stored`."""
    data = getattr(obj, "encoded", None)
    return data if data is not None else encode(obj)


def _strip_rv(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    if "resourceVersion" not in meta:
        return obj
    stripped = dict(obj)
    stripped["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
    return stripped


def stamp(obj: Obj, rev: int) -> Obj:
    """A shallow copy of ``obj`` whose metadata carries ``resourceVersion = rev``."""
    stamped = dict(obj)
    stamped["metadata"] = dict(obj.get("metadata") or {})
    stamped["metadata"]["resourceVersion"] = str(rev)
    return stamped


def stamp_stored(obj: Obj, rev: int) -> Stored:
    """:func:`stamp` as a :class:`~.compact.Stored`, encoded once."""
    stored = Stored(obj)
    meta = stored["metadata"] = dict(obj.get("metadata") or {})
    meta["resourceVersion"] = str(rev)
    stored.encoded = encode(stored)
    return stored


class _Stream:
    """One watcher: a queue fed synchronously by the store's fan-out."""

    def __init__(self, store: "CachedStore", prefix: str, start_rev: int) -> None:
        self._store = store
        self.prefix = prefix
        self._queue: collections.deque[WatchEvent] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._start_rev = start_rev  # events at or before it were seen elsewhere: not sent
        self._last_rev = start_rev
        self._deliver: Callable[[], bool] | None = None
        self._flush_scheduled = False

    def push(self, event: WatchEvent) -> None:
        if self._closed or event.rev <= self._start_rev:
            return
        if len(self._queue) >= WATCH_QUEUE_LIMIT:
            self.close()  # too slow: end the stream, the client re-watches
            return
        self._queue.append(event)
        if self._deliver is None:
            self._wakeup.set()
        elif not self._flush_scheduled:  # after the writer's turn: its reply goes out first
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        deliver = self._deliver
        if deliver is None or not self._queue:
            return
        if not deliver():
            self._deliver = None
            self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def attach(self, deliver: Callable[[], bool] | None) -> None:
        self._deliver = deliver
        if deliver is None and self._queue:
            self._wakeup.set()  # events a pending hand-over will no longer take

    async def wait(self) -> None:
        while not self._queue and not self._closed:
            self._wakeup.clear()
            await self._wakeup.wait()

    def __aiter__(self) -> "_Stream":
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        event = self._queue.popleft()
        self._last_rev = event.rev
        return event

    def ready(self, limit: int) -> list[WatchEvent]:
        """Up to ``limit`` events that are already queued, without waiting (maybe none)."""
        queue = self._queue
        taken = [queue.popleft() for _ in range(min(limit, len(queue)))]
        if taken:
            self._last_rev = taken[-1].rev
        return taken

    def bookmark_revision(self) -> int:
        if self._queue:
            return self._last_rev
        return max(self._last_rev, self._store.revision)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._deliver = None
            self._store._streams.discard(self)
            self._wakeup.set()


class CachedStore:
    """The Storage protocol in memory; see the module docstring for the persistence hook."""

    def __init__(self, history: int = DEFAULT_HISTORY,
                 history_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        self._items: dict[str, bytes] = {}
        self._hot: collections.OrderedDict[str, Stored] = collections.OrderedDict()
        self._keys: list[str] = []  # sorted, for prefix listing
        self._history: collections.deque[Logged] = collections.deque()
        self._history_limit = history
        self._history_bytes_limit = history_bytes
        self._history_bytes = 0
        self._rev = 0
        self._compacted = 0  # every event with rev > this is in _history
        self._lock = asyncio.Lock()
        self._streams: set[_Stream] = set()

    # -- loading (for durable subclasses) ------------------------------------------------

    def _load(self, items: Iterable[tuple[str, bytes]], history: Iterable[Logged],
              revision: int) -> None:
        """Seed memory from a durable backend: current objects and retained events (encoded),
        the revision."""
        for key, data in items:
            self._items[key] = data
        self._keys = sorted(self._items)
        self._rev = revision
        self._compacted = revision
        events = list(history)
        if events:
            self._compacted = events[0].rev - 1
        for logged in events:
            self._remember(logged)

    async def _persist(self, event: WatchEvent) -> None:
        """Make ``event`` durable before it becomes visible. Memory: nothing to do.

        ``event.obj`` (and ``event.prev``) carry their encoding: see :func:`encoded`."""

    def _on_compact(self, up_to_rev: int) -> None:
        """History up to ``up_to_rev`` was dropped from memory; backends may trim too."""

    # -- reads ---------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._rev

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    @property
    def history_bytes(self) -> int:
        """The encoded size of the retained events' objects."""
        return self._history_bytes

    async def get(self, key: str) -> Obj:
        return self._get(key)

    async def get_cached(self, key: str) -> Obj:
        return self._get(key)  # memory, whatever a subclass does before its get

    def _get(self, key: str) -> Stored:
        hot = self._hot.get(key)
        if hot is not None:
            self._hot.move_to_end(key)
            return hot
        try:
            data = self._items[key]
        except KeyError:
            raise KeyNotFound(key) from None
        obj = decode(data)
        self._warm(key, obj)
        return obj

    def _warm(self, key: str, obj: Stored) -> None:
        self._hot[key] = obj
        self._hot.move_to_end(key)
        if len(self._hot) > HOT_OBJECTS:
            self._hot.popitem(last=False)

    def _range(self, prefix: str) -> list[str]:
        start = bisect.bisect_left(self._keys, prefix)
        end = bisect.bisect_left(self._keys, prefix + "\U0010ffff", start)
        return self._keys[start:end]

    async def list(self, prefix: str) -> tuple[list[Obj], int]:
        hot, items = self._hot, self._items
        out: list[Obj] = []
        for key in self._range(prefix):
            obj = hot.get(key)
            out.append(obj if obj is not None else decode(items[key]))
        return out, self._rev

    async def list_encoded(self, prefix: str) -> tuple[builtins.list[bytes], int]:
        """Like :meth:`list`, but each object's JSON encoding (nothing is decoded)."""
        items = self._items
        return [items[key] for key in self._range(prefix)], self._rev

    # -- writes --------------------------------------------------------------------------

    async def create(self, key: str, obj: Obj) -> Obj:
        async with self._lock:
            if key in self._items:
                raise KeyExists(key)
            return await self._commit("ADDED", key, obj, None)

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> Obj:
        async with self._lock:
            current = self._get(key)
            if preconditions:
                preconditions.check(current)
            return await self._commit("DELETED", key, current, current)

    async def guaranteed_update(self, key: str, try_update: TryUpdate,
                                preconditions: Preconditions | None = None) -> Obj:
        async with self._lock:
            current = self._get(key)
            if preconditions:
                preconditions.check(current)
            updated = try_update(json.loads(current.encoded))  # a private copy
            if updated is None or _strip_rv(updated) == _strip_rv(current):
                return current
            return await self._commit("MODIFIED", key, updated, current)

    async def _commit(self, type_: EventType, key: str, obj: Obj, prev: Obj | None) -> Obj:
        rev = self._rev + 1
        stamped = stamp_stored(obj, rev)
        event = WatchEvent(type_, key, stamped, prev, rev)
        await self._persist(event)
        self._apply(event)
        return stamped

    def _apply(self, event: WatchEvent) -> None:
        """Make ``event`` (its ``obj`` a stamped :class:`~.compact.Stored`, its revision
        above every one applied so far) the current state, retain it and fan it out."""
        type_, key, stamped, prev, rev = event.type, event.key, event.obj, event.prev, event.rev
        assert isinstance(stamped, Stored)
        self._rev = rev
        if type_ == "DELETED":
            del self._items[key]
            self._hot.pop(key, None)
            self._keys.pop(bisect.bisect_left(self._keys, key))
        else:
            if key not in self._items:
                bisect.insort(self._keys, key)
            self._items[key] = stamped.encoded
            self._warm(key, stamped)
        self._remember(Logged(type_, key, rev, stamped.encoded,
                              encoded(prev) if prev is not None else None))
        for stream in list(self._streams):
            if key.startswith(stream.prefix):
                stream.push(event)

    def _remember(self, logged: Logged) -> None:
        """Retain ``logged``; drop the oldest events beyond the count and byte bounds (the
        newest event is kept even when it alone exceeds the byte bound)."""
        history = self._history
        history.append(logged)
        self._history_bytes += logged.size
        while history and (len(history) > self._history_limit or
                           (self._history_bytes > self._history_bytes_limit
                            and len(history) > 1)):
            dropped = history.popleft()
            self._history_bytes -= dropped.size
            self._compacted = dropped.rev
            self._on_compact(dropped.rev)

    # -- watch ---------------------------------------------------------------------------

    async def watch(self, prefix: str, resource_version: int) -> _Stream:
        if resource_version < self._compacted:
            raise Compacted(resource_version, self._compacted + 1)
        stream = _Stream(self, prefix, resource_version)
        # Replay and registration happen with no await in between: no gap, no duplicate.
        for logged in self._history:
            if logged.rev > resource_version and logged.key.startswith(prefix):
                stream.push(logged.event())
        self._streams.add(stream)
        return stream

    async def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
