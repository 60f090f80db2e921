"""An in-memory revisioned store: current objects, bounded event history and watch fan-out.

:class:`CachedStore` implements the whole Storage protocol in memory. A durable backend
subclasses it and overrides :meth:`CachedStore._persist`, which is called with each write
before that write becomes visible; when ``_persist`` raises, nothing changes. Reads, lists and
watches are always served from memory.

Writes are serialized by one asyncio lock, so revisions are assigned, persisted, applied and
fanned out in order.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
from typing import Iterable

from .interface import (Compacted, EventType, KeyExists, KeyNotFound, Obj, Preconditions,
                        TryUpdate, WatchEvent)
from ..util.jsoncopy import clone

DEFAULT_HISTORY = 10_000
WATCH_QUEUE_LIMIT = 50_000


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


class _Stream:
    """One watcher: a queue fed synchronously by the store's fan-out."""

    def __init__(self, store: "CachedStore", prefix: str, start_rev: int) -> None:
        self._store = store
        self.prefix = prefix
        self._queue: collections.deque[WatchEvent] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._last_rev = start_rev

    def push(self, event: WatchEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= WATCH_QUEUE_LIMIT:
            self.close()  # too slow: end the stream, the client re-watches
            return
        self._queue.append(event)
        self._wakeup.set()

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
            self._store._streams.discard(self)
            self._wakeup.set()


class CachedStore:
    """The Storage protocol in memory; see the module docstring for the persistence hook."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._items: dict[str, Obj] = {}
        self._keys: list[str] = []  # sorted, for prefix listing
        self._history: collections.deque[WatchEvent] = collections.deque()
        self._history_limit = history
        self._rev = 0
        self._compacted = 0  # every event with rev > this is in _history
        self._lock = asyncio.Lock()
        self._streams: set[_Stream] = set()

    # -- loading (for durable subclasses) ------------------------------------------------

    def _load(self, items: Iterable[tuple[str, Obj]], history: Iterable[WatchEvent],
              revision: int) -> None:
        """Seed memory from a durable backend: current objects, retained events, revision."""
        for key, obj in items:
            self._items[key] = obj
        self._keys = sorted(self._items)
        events = list(history)
        self._history.extend(events[-self._history_limit:])
        self._rev = revision
        self._compacted = self._history[0].rev - 1 if self._history else revision

    async def _persist(self, event: WatchEvent) -> None:
        """Make ``event`` durable before it becomes visible. Memory: nothing to do."""

    def _on_compact(self, up_to_rev: int) -> None:
        """History up to ``up_to_rev`` was dropped from memory; backends may trim too."""

    # -- reads ---------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._rev

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    async def get(self, key: str) -> Obj:
        try:
            return self._items[key]
        except KeyError:
            raise KeyNotFound(key) from None

    async def list(self, prefix: str) -> tuple[list[Obj], int]:
        start = bisect.bisect_left(self._keys, prefix)
        items = []
        for key in self._keys[start:]:
            if not key.startswith(prefix):
                break
            items.append(self._items[key])
        return items, self._rev

    # -- writes --------------------------------------------------------------------------

    async def create(self, key: str, obj: Obj) -> Obj:
        async with self._lock:
            if key in self._items:
                raise KeyExists(key)
            return await self._commit("ADDED", key, obj, None)

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> Obj:
        async with self._lock:
            current = await self.get(key)
            if preconditions:
                preconditions.check(current)
            return await self._commit("DELETED", key, current, current)

    async def guaranteed_update(self, key: str, try_update: TryUpdate,
                                preconditions: Preconditions | None = None) -> Obj:
        async with self._lock:
            current = await self.get(key)
            if preconditions:
                preconditions.check(current)
            updated = try_update(clone(current))
            if updated is None or _strip_rv(updated) == _strip_rv(current):
                return current
            return await self._commit("MODIFIED", key, updated, current)

    async def _commit(self, type_: EventType, key: str, obj: Obj, prev: Obj | None) -> Obj:
        rev = self._rev + 1
        stamped = stamp(obj, rev)
        event = WatchEvent(type_, key, stamped, prev, rev)
        await self._persist(event)
        self._rev = rev
        if type_ == "DELETED":
            del self._items[key]
            self._keys.pop(bisect.bisect_left(self._keys, key))
        else:
            if key not in self._items:
                bisect.insort(self._keys, key)
            self._items[key] = stamped
        self._remember(event)
        for stream in list(self._streams):
            if key.startswith(stream.prefix):
                stream.push(event)
        return stamped

    def _remember(self, event: WatchEvent) -> None:
        self._history.append(event)
        if len(self._history) > self._history_limit:
            dropped = self._history.popleft()
            self._compacted = dropped.rev
            self._on_compact(dropped.rev)

    # -- watch ---------------------------------------------------------------------------

    async def watch(self, prefix: str, resource_version: int) -> _Stream:
        if resource_version < self._compacted:
            raise Compacted(resource_version, self._compacted + 1)
        stream = _Stream(self, prefix, resource_version)
        # Replay and registration happen with no await in between: no gap, no duplicate.
        for event in self._history:
            if event.rev > resource_version and event.key.startswith(prefix):
                stream.push(event)
        self._streams.add(stream)
        return stream

    async def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
