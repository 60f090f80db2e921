"""Informer: a local copy of one collection kept current by list + watch, with event handlers.

    start()
      │
      ▼
    LIST ──ok──▶ store := items (handlers get the differences) ──▶ WATCH from the list's RV
      ▲                                                              │        │
      │  410 Expired, an API error (after back-off)                  │        │ clean end
      └──────────────────────────────────────────────────────────────┘        │ (timeout);
                                                        WATCH from the last RV ◀┘ no connection
                                                                  (after back-off: the client
                                                                   may use another server)

Events reach handlers as ``on_event(type, obj, old)``, one at a time and in order:

    ADDED     obj new,        old None
    MODIFIED  obj current,    old the cached state before
    DELETED   obj final/last known state, old the cached state (None if it was unknown)
    SYNC      obj == old == the cached state: the periodic resync (level-triggering)

A re-list compares the fresh list with the store and emits only the differences (an object
whose UID changed under the same name is DELETED then ADDED). The store is updated before
handlers run. Objects in the store and in events are shared: treat them as read-only
(``copy.deepcopy`` before changing one). With a ``transform`` (client-go's
``SetTransform``), every listed or watched object passes through it once before it is
stored and delivered: the store and the handlers see only transformed objects. A handler that raises is logged and skipped; it
never stops the informer.

With ``compact=True`` the store keeps each object as its JSON encoding (about a sixth of
the memory of the decoded dicts) and decodes it on every read: ``get``, ``list``, ``old``
and SYNC objects are then fresh copies, not shared, and cost a decode each. For informers
that hold many objects and read few of them at a time (the scheduler's pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

from ..api.resources import Resource
from ..api.types import Obj
from .backoff import Backoff, BackoffPolicy
from .errors import ApiConnectionError, Expired
from .rest import ResourceLike, resolve

log = logging.getLogger(__name__)

Key = tuple[str, str]
Handler = Callable[[str, Obj, Obj | None], Awaitable[None] | None]
Transform = Callable[[Obj], Obj]

ADDED, MODIFIED, DELETED, SYNC = "ADDED", "MODIFIED", "DELETED", "SYNC"


class ListerWatcher(Protocol):
    """The part of :class:`~podling.client.rest.ApiClient` an informer uses."""

    async def list(self, resource: ResourceLike, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = ""
                   ) -> tuple[list[Obj], str]: ...

    def watch(self, resource: ResourceLike, namespace: str | None = None, *,
              resource_version: str = "", label_selector: str = "", field_selector: str = "",
              timeout_seconds: int | None = None, allow_bookmarks: bool = True
              ) -> AsyncIterator[tuple[str, Obj]]: ...


@dataclass(frozen=True)
class InformerOptions:
    """Tuning. ``watch_timeout``: each watch asks the server to end it after a random time
    in [t, 2t) seconds (then it resumes from the last RV). A pass that lasted
    ``healthy_after`` seconds resets the back-off. ``resync_jitter`` stretches each resync
    period by up to that fraction."""

    backoff: BackoffPolicy = BackoffPolicy()
    watch_timeout: float = 300.0
    healthy_after: float = 30.0
    min_clean_watch: float = 1.0  # a clean end sooner than this is treated like an error
    resync_jitter: float = 0.1


def object_key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class _Store:
    """The informer's objects by key, shared as they are."""

    def __init__(self) -> None:
        self._items: dict[Key, object] = {}

    def get(self, key: Key) -> Obj | None:
        return self._items.get(key)  # type: ignore[return-value]

    def put(self, key: Key, obj: Obj) -> None:
        self._items[key] = obj

    def pop(self, key: Key) -> Obj | None:
        return self._items.pop(key, None)  # type: ignore[return-value]

    def keys(self) -> list[Key]:
        return list(self._items)

    def values(self) -> list[Obj]:
        return [self.get(key) for key in self._items]  # type: ignore[misc]


class _CompactStore(_Store):
    """The objects as their JSON encoding; each read decodes a fresh copy."""

    def get(self, key: Key) -> Obj | None:
        data = self._items.get(key)
        return None if data is None else json.loads(data)  # type: ignore[arg-type]

    def put(self, key: Key, obj: Obj) -> None:
        self._items[key] = json.dumps(obj, separators=(",", ":")).encode()

    def pop(self, key: Key) -> Obj | None:
        data = self._items.pop(key, None)
        return None if data is None else json.loads(data)  # type: ignore[arg-type]


class Informer:
    """Watches ``resource`` (in ``namespace``, or all namespaces when None) matching the
    selectors. ``resync_period`` seconds (None or 0: never) between SYNC deliveries.
    ``transform``: applied to each object before it is stored (see the module docstring);
    it must keep ``metadata`` name, namespace, uid and resourceVersion.

    Who may call: everything runs on one event loop; ``start`` needs a running loop.
    ``add_handler`` before ``start`` to see the initial ADDED events; handlers added later
    see later events and resyncs only.
    """

    def __init__(self, client: ListerWatcher, resource: ResourceLike, *,
                 namespace: str | None = None, label_selector: str = "",
                 field_selector: str = "", resync_period: float | None = 300.0,
                 options: InformerOptions = InformerOptions(),
                 transform: Transform | None = None, compact: bool = False) -> None:
        self.client = client
        self.resource: Resource = resolve(resource)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.options = options
        self.transform = transform
        self._store: _Store = _CompactStore() if compact else _Store()
        self._handlers: list[Handler] = []
        self._lock = asyncio.Lock()  # one delivery at a time: store update + handlers
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._last_rv = ""

    # -- read side -----------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the store (and stays True across re-lists)."""
        return self._synced.is_set()

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (list, event or bookmark)."""
        return self._last_rv

    def get(self, namespace: str | None, name: str) -> Obj | None:
        """The cached object, or None. ``namespace`` None/"" for cluster-scoped resources."""
        return self._store.get((namespace or "", name))

    def list(self) -> list[Obj]:
        """Every cached object (a new list; the objects themselves are shared unless
        ``compact``)."""
        return self._store.values()

    def add_handler(self, on_event: Handler) -> None:
        """Register ``on_event(type, obj, old)``; it may be a coroutine function."""
        self._handlers.append(on_event)

    def remove_handler(self, on_event: Handler) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(on_event)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Begin list + watch (and resync) in background tasks. Call once."""
        if self._started:
            raise RuntimeError("informer already started")
        self._started = True
        name = f"informer-{self.resource.name}"
        self._tasks.append(asyncio.create_task(self._run(), name=name))
        if self.resync_period:
            self._tasks.append(asyncio.create_task(self._resync_loop(), name=name + "-resync"))

    async def stop(self) -> None:
        """Cancel the background tasks and wait until they have finished. Idempotent; the
        store keeps its last contents. A handler running at that moment is cancelled."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first list; False on timeout or when the informer was stopped."""
        if self._synced.is_set():
            return True
        if not self._tasks:
            return False
        waiter = asyncio.create_task(self._synced.wait())
        try:
            await asyncio.wait([waiter, self._tasks[0]], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        return self._synced.is_set()

    # -- list / watch loop ---------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.options.backoff)
        rv: str | None = None
        while True:
            started = loop.time()
            clean = False
            try:
                if rv is None:
                    rv = await self._relist()
                rv = await self._watch(rv)
                clean = True
            except Expired as exc:
                log.info("%s informer: %s; re-listing", self.resource.name, exc.message)
                rv = None
            except ApiConnectionError as exc:  # another server of the cluster may answer
                if rv is not None:
                    rv = self._last_rv
                log.warning("%s informer: %s; %s", self.resource.name, exc,
                            "re-listing" if rv is None else f"resuming from {rv}")
            except Exception as exc:  # noqa: BLE001 - ApiError, ApiConnectionError, bugs: never die
                log.warning("%s informer: list/watch failed (%s: %s); re-listing",
                            self.resource.name, type(exc).__name__, exc)
                rv = None
            lasted = loop.time() - started
            if lasted >= self.options.healthy_after:
                backoff.reset()
            if not (clean and lasted >= self.options.min_clean_watch):
                await asyncio.sleep(backoff.next())

    async def _relist(self) -> str:
        items, rv = await self.client.list(self.resource, self.namespace,
                                           label_selector=self.label_selector,
                                           field_selector=self.field_selector)
        if self.transform is not None:
            items = [self.transform(obj) for obj in items]
        async with self._lock:
            await self._replace(items)
        self._last_rv = rv
        self._synced.set()
        return rv

    async def _watch(self, rv: str) -> str:
        """Follow one watch stream from ``rv``; return the last RV when it ends cleanly."""
        timeout = int(self.options.watch_timeout * (1 + random.random()))
        events = self.client.watch(self.resource, self.namespace, resource_version=rv,
                                   label_selector=self.label_selector,
                                   field_selector=self.field_selector,
                                   timeout_seconds=max(1, timeout), allow_bookmarks=True)
        async with contextlib.aclosing(events):
            async for type_, obj in events:
                rv = _rv(obj) or rv
                if type_ != "BOOKMARK":
                    if self.transform is not None:
                        obj = self.transform(obj)
                    async with self._lock:
                        await self._apply(type_, obj)
                self._last_rv = rv
        return rv

    # -- store + delivery (callers hold self._lock) --------------------------------------

    async def _apply(self, type_: str, obj: Obj) -> None:
        key = object_key(obj)
        if type_ == DELETED:
            await self._deliver(DELETED, obj, self._store.pop(key))
            return
        old = self._store.get(key)
        self._store.put(key, obj)
        await self._deliver(ADDED if old is None else MODIFIED, obj, old)

    async def _replace(self, items: list[Obj]) -> None:
        """Make the store equal ``items``, delivering only what changed."""
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self._store.keys() if k not in fresh]:
            gone = self._store.pop(key)
            await self._deliver(DELETED, gone, gone)
        for key, obj in fresh.items():
            old = self._store.get(key)
            if old is not None and _uid(old) != _uid(obj):
                self._store.pop(key)  # deleted and re-created while we were not watching
                await self._deliver(DELETED, old, old)
                old = None
            self._store.put(key, obj)
            if old is None:
                await self._deliver(ADDED, obj, None)
            elif _rv(old) != _rv(obj):
                await self._deliver(MODIFIED, obj, old)

    async def _deliver(self, type_: str, obj: Obj, old: Obj | None) -> None:
        for handler in list(self._handlers):
            try:
                result = handler(type_, obj, old)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one bad handler must not stop the others
                log.exception("%s informer: handler %r failed on %s %s/%s", self.resource.name,
                              handler, type_, *object_key(obj))

    # -- resync --------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        assert self.resync_period
        await self._synced.wait()
        while True:
            jitter = 1 + self.options.resync_jitter * random.random()
            await asyncio.sleep(self.resync_period * jitter)
            await self._resync()

    async def _resync(self) -> None:
        """Deliver SYNC for every cached object, one lock hold per object so watch events
        are not held up behind a whole pass."""
        for key in self._store.keys():
            async with self._lock:
                obj = self._store.get(key)
                if obj is not None:
                    await self._deliver(SYNC, obj, obj)
