"""The etcd backend: the store for several API servers sharing one etcd cluster.

Layout. Storage keys map to etcd keys under a prefix, as Kubernetes lays them out:
``/core/pods/ns/p`` → ``<prefix>/pods/ns/p``; another group keeps its name,
``/coordination.k8s.io/leases/ns/l`` → ``<prefix>/coordination.k8s.io/leases/ns/l``
(:func:`etcd_key`). Values
are the objects' JSON without ``metadata.resourceVersion``. An object's resourceVersion is
the etcd revision that last changed it (``mod_revision``), so every API server on the same
etcd hands out the same versions.

Reads and watches come from memory. :class:`EtcdStore` is a
:class:`~podling.storage.cache.CachedStore` fed by one etcd watch over the whole prefix,
which carries this server's writes and every other server's in revision order. A read
(get, list, and the read that starts an update or delete) first makes sure memory holds
what etcd had committed when it arrived, as Kubernetes' consistent reads do: a keys-only
range of the key read (or of the listed prefix's keys modified after memory's revision),
then a wait for the watch up to what it shows. So an object written through one server is
read through any other at once. Not covered: in a list, an object another server deleted a
moment ago (a deleted key is in no range), until this server's watch delivers the
deletion. Without an etcd quorum the check gives up after ``FENCE_TIMEOUT`` seconds and
memory answers.

Writes go to etcd as compare-and-swap transactions:
- create: the key's create_revision is 0;
- update and delete: the key's mod_revision is the one the change was computed from.
So two servers never both win on one version. A write returns once this server's watch has
applied its revision, so a read that follows sees it.

Failures. A broken watch resumes from the last applied revision. If etcd has compacted that
revision meanwhile, the store re-lists: it makes memory equal etcd, ends every open watch
(their clients re-watch, and get 410 when they ask for what is gone) and starts the event
history again. A write that etcd does not answer, or whose revision the watch does not
deliver within ``timeout``, raises :class:`~podling.storage.interface.StorageError` (the
API answers 5xx); nothing is applied in memory that etcd has not committed.

Compaction. :meth:`EtcdStore.compaction` makes the component that compacts etcd's history
once per interval; the server runs it while it leads (:mod:`.compactor`).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import re
from typing import Any, Callable

from ...util import failpoints
from ..cache import DEFAULT_HISTORY, DEFAULT_HISTORY_BYTES, CachedStore, _strip_rv, stamp_stored
from ..compact import Stored, decode, encode
from ..interface import (KeyExists, KeyNotFound, Obj, Preconditions, StorageError, TooLarge,
                         TryUpdate, WatchEvent)
from .client import EtcdClient, EtcdCompacted, EtcdError, KeyValue, b64, kv_of, prefix_end
from .compactor import DEFAULT_INTERVAL, Compaction, Compactor

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/registry"
RETRY_SECONDS = 1.0
FENCE_TIMEOUT = 2.0
Ops = list[dict[str, Any]]  # the compares, operations or responses of a transaction
_WHOLE_SEGMENT = re.compile(r"^/[^/]+/")  # a storage prefix that maps to an etcd prefix


NO_SPACE = "etcdserver: mvcc: database space exceeded"  # etcd's answer once out of space


def etcd_key(prefix: str, key: str) -> str:
    """The etcd key of storage ``key`` (see the module docstring). Any other key (no
    ``/core/`` and no dotted group first: tests, a future group like ``apps``) goes under
    ``<prefix>/-/`` so that the mapping stays one-to-one."""
    if key.startswith("/core/"):
        return prefix + key[len("/core"):]
    first = key.split("/", 2)[1] if key.count("/") >= 2 else ""
    return prefix + (key if "." in first else "/-" + key)


def storage_key(prefix: str, key: str) -> str:
    """The inverse of :func:`etcd_key`."""
    rest = key[len(prefix):]
    if rest.startswith("/-/"):
        return rest[len("/-"):]
    first = rest.split("/", 2)[1]
    return rest if "." in first else "/core" + rest


def _stamped(kv: KeyValue) -> Stored:
    """The stored object of ``kv``, stamped with its mod_revision."""
    return stamp_stored(decode(kv.value), kv.mod_revision)


class EtcdStore(CachedStore):
    """The Storage protocol on etcd (see the module docstring). Use :meth:`open`."""

    def __init__(self, client: EtcdClient, prefix: str, *, history: int, history_bytes: int,
                 timeout: float) -> None:
        super().__init__(history=history, history_bytes=history_bytes)
        self._client = client
        self._prefix = prefix.rstrip("/")
        self._timeout = timeout
        self._applied = asyncio.Condition()
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, client: EtcdClient, *, prefix: str = DEFAULT_PREFIX,
                   history: int = DEFAULT_HISTORY, history_bytes: int = DEFAULT_HISTORY_BYTES,
                   timeout: float = 10.0) -> "EtcdStore":
        """Load every object under ``prefix`` and start following etcd from there."""
        store = cls(client, prefix, history=history, history_bytes=history_bytes,
                    timeout=timeout)
        try:
            revision = await store._relist()
        except EtcdError as exc:
            await client.close()
            raise StorageError(f"etcd: {exc}") from exc
        store._watcher = asyncio.create_task(store._follow(revision), name="etcd-watch")
        return store

    def compaction(self, interval: float = DEFAULT_INTERVAL) -> Compaction:
        """A component that compacts etcd every ``interval`` seconds while started."""
        return Compaction(Compactor(self._client, self._prefix, interval))

    # -- following etcd --------------------------------------------------------------------

    async def _relist(self) -> int:
        """Make memory equal etcd's current state; returns etcd's revision."""
        kvs, revision = await self._client.range(self._prefix + "/",
                                                 end=prefix_end(self._prefix + "/"))
        for stream in list(self._streams):
            stream.close()  # their clients re-watch from what they saw (410 if it is gone)
        self._items.clear()
        self._hot.clear()
        self._history.clear()
        self._history_bytes = 0
        self._load(((storage_key(self._prefix, kv.key), _stamped(kv).encoded) for kv in kvs),
                    (), revision)
        return revision

    async def _follow(self, revision: int) -> None:
        """Apply etcd's changes from ``revision`` on, for as long as the store is open."""
        while True:
            try:
                async for progress, events in self._client.watch(
                        self._prefix + "/", end=prefix_end(self._prefix + "/"),
                        start_revision=revision + 1):
                    for event in events:
                        self._apply_etcd(event.deleted, event.kv)
                        revision = max(revision, event.kv.mod_revision)
                    revision = max(revision, progress)
                    self._rev = max(self._rev, revision)
                    await self._notify()
            except EtcdCompacted:
                log.warning("etcd compacted revision %d before this server saw it; re-listing",
                            revision + 1)
                revision = await self._relist_soon()
                await self._notify()
            except EtcdError as exc:
                log.warning("etcd watch: %s; resuming from revision %d", exc, revision + 1)
                await asyncio.sleep(RETRY_SECONDS)

    async def _notify(self) -> None:
        async with self._applied:
            self._applied.notify_all()

    async def _relist_soon(self) -> int:
        while True:
            try:
                return await self._relist()
            except EtcdError as exc:
                log.warning("etcd re-list: %s; retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)

    def _apply_etcd(self, deleted: bool, kv: KeyValue) -> None:
        if kv.mod_revision <= self._rev:
            return  # already in memory (a re-list at a later revision)
        key = storage_key(self._prefix, kv.key)
        prev = self._get(key) if key in self._items else None
        if deleted:
            if prev is not None:
                self._apply(WatchEvent("DELETED", key, stamp_stored(prev, kv.mod_revision),
                                       prev, kv.mod_revision))
            return
        self._apply(WatchEvent("ADDED" if prev is None else "MODIFIED", key, _stamped(kv), prev,
                               kv.mod_revision))

    async def _caught_up(self, revision: int) -> None:
        """Wait until the watch has applied ``revision``."""
        await self._until(lambda: self._rev >= revision,
                          f"revision {revision} was committed but not seen")

    async def _until(self, applied: Callable[[], bool], what: str) -> None:
        """Wait until ``applied()`` holds after one of the watch's batches; StorageError
        after the store's timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._applied:
                    await self._applied.wait_for(applied)
        except TimeoutError:
            raise StorageError(f"etcd: {what} by this server's watch within "
                               f"{self._timeout:g} s") from None

    # -- reads -----------------------------------------------------------------------------

    async def _fresh_key(self, key: str) -> None:
        """Wait until memory holds ``key`` as etcd has it now (its deletion included): one
        keys-only range of that key. Memory answers as it is when etcd does not."""
        try:
            kvs, _ = await self._client.range(etcd_key(self._prefix, key), keys_only=True,
                                              timeout=FENCE_TIMEOUT)
        except EtcdError as exc:
            log.debug("etcd read check: %s; answering from memory", exc)
            return
        if kvs:
            await self._caught_up(kvs[0].mod_revision)
        elif key in self._items:
            await self._until(lambda: key not in self._items, f"the deletion of {key} not seen")

    async def _fresh(self, prefix: str) -> None:
        """Wait until memory holds every key under ``prefix`` that etcd has modified since
        memory's revision: one keys-only range of the keys modified since then (a deletion
        is not among them). Memory answers as it is when etcd does not."""
        start = etcd_key(self._prefix, prefix) if _WHOLE_SEGMENT.match(prefix) \
            else self._prefix + "/"  # a prefix inside the first segment: all of them
        try:
            kvs, _ = await self._client.range(start, end=prefix_end(start), keys_only=True,
                                              min_mod_revision=self._rev + 1,
                                              timeout=FENCE_TIMEOUT)
        except EtcdError as exc:
            log.debug("etcd read check: %s; answering from memory", exc)
            return
        if kvs:
            await self._caught_up(max(kv.mod_revision for kv in kvs))

    async def get(self, key: str) -> Obj:
        await self._fresh_key(key)
        return await super().get(key)

    async def list(self, prefix: str) -> tuple[builtins.list[Obj], int]:
        await self._fresh(prefix)
        return await super().list(prefix)

    async def list_encoded(self, prefix: str) -> tuple[builtins.list[bytes], int]:
        await self._fresh(prefix)
        return await super().list_encoded(prefix)

    # -- writes ----------------------------------------------------------------------------

    async def _txn(self, compare: Ops, success: Ops, failure: Ops) -> tuple[bool, int, Ops]:
        fault = failpoints.fire("storage.write")
        if fault is not None and fault.kind == "enospc":  # as etcd says it (its quota)
            raise StorageError(f"etcd: {NO_SPACE}")
        try:
            return await self._client.txn(compare, success, failure)
        except EtcdError as exc:
            if "request is too large" in str(exc) or "larger than max" in str(exc):
                raise TooLarge(f"the object is larger than etcd accepts ({exc}; etcd's "
                               "--max-request-bytes, 1.5 MiB by default)") from exc
            raise StorageError(f"etcd: {exc}") from exc

    async def create(self, key: str, obj: Obj) -> Obj:
        ekey = b64(etcd_key(self._prefix, key))
        ok, revision, _ = await self._txn(
            [{"key": ekey, "target": "CREATE", "create_revision": "0"}],
            [{"request_put": {"key": ekey, "value": b64(encode(_strip_rv(obj)))}}], [])
        if not ok:
            raise KeyExists(key)
        await self._caught_up(revision)
        return stamp_stored(obj, revision)

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> Obj:
        await self._fresh_key(key)
        current = self._get(key)
        ekey = b64(etcd_key(self._prefix, key))
        while True:
            if preconditions:
                preconditions.check(current)
            ok, revision, responses = await self._txn(
                [self._unchanged(ekey, current)], [{"request_delete_range": {"key": ekey}}],
                [{"request_range": {"key": ekey}}])
            if ok:
                await self._caught_up(revision)
                return stamp_stored(current, revision)
            current = self._current(key, responses)  # changed meanwhile: decide again

    async def guaranteed_update(self, key: str, try_update: TryUpdate,
                                preconditions: Preconditions | None = None) -> Obj:
        await self._fresh_key(key)
        current = self._get(key)
        ekey = b64(etcd_key(self._prefix, key))
        while True:
            if preconditions:
                preconditions.check(current)
            updated = try_update(json.loads(current.encoded))  # a private copy
            if updated is None or _strip_rv(updated) == _strip_rv(current):
                return current
            ok, revision, responses = await self._txn(
                [self._unchanged(ekey, current)],
                [{"request_put": {"key": ekey, "value": b64(encode(_strip_rv(updated)))}}],
                [{"request_range": {"key": ekey}}])
            if ok:
                await self._caught_up(revision)
                return stamp_stored(updated, revision)
            current = self._current(key, responses)  # changed meanwhile: compute it again

    @staticmethod
    def _current(key: str, responses: Ops) -> Stored:
        """The key's state in etcd, from a failed transaction's range (KeyNotFound when it
        is gone): newer than this server's memory may be yet."""
        kvs = responses[0].get("response_range", {}).get("kvs", []) if responses else []
        if not kvs:
            raise KeyNotFound(key)
        return _stamped(kv_of(kvs[0]))

    @staticmethod
    def _unchanged(ekey: str, current: Obj) -> dict[str, Any]:
        return {"key": ekey, "target": "MOD",
                "mod_revision": str(current["metadata"]["resourceVersion"])}

    async def _persist(self, event: WatchEvent) -> None:  # pragma: no cover - never called
        raise AssertionError("EtcdStore writes go to etcd, not through _commit")

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        await super().close()
        await self._client.close()



