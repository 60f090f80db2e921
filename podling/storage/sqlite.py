"""The SQLite backend: the embedded default store (docs/architecture.md §3, §4).

Layout. :class:`SqliteStore` is a :class:`~podling.storage.cache.CachedStore`: reads, lists
and watches are served from memory; each write is made durable by :meth:`SqliteStore._persist`
before it becomes visible. The database holds, written together in one transaction per write::

    meta    (name PRIMARY KEY, value)             -- 'revision': the latest write's revision
    objects (key PRIMARY KEY, rev, value JSON)    -- the current objects, stamped
    events  (rev PRIMARY KEY, key, type, value JSON, prev JSON)   -- the retained event log

``meta.revision`` is stored explicitly so that neither deletes nor log compaction can make the
revision go backwards across a restart. At :meth:`SqliteStore.open` the current objects and the
newest ``history`` events are loaded into memory, so a watch from a retained revision keeps
working across a restart.

Threads. One connection, created on and used from one dedicated writer thread (a
single-worker executor); the event loop never blocks on SQLite. ``sqlite3``'s
``check_same_thread`` stays on, so any use from another thread fails loudly.

Durability. The database runs in WAL mode.

- ``durable=False`` (default, ``synchronous=NORMAL``): an acknowledged write survives the
  process being killed (kill -9, OOM, crash), because a committed transaction is in the WAL in
  the OS page cache. An OS crash or power loss may lose the most recent acknowledged writes,
  but the database stays consistent (a prefix of the history).
- ``durable=True`` (``synchronous=FULL``): the WAL is fsynced at every commit, so acknowledged
  writes also survive power loss, at a large cost in write throughput.

Bounded history. The log keeps the newest ``history`` events; older rows are deleted on the
writer thread in batches of at most :data:`TRIM_BATCH` rows, as a job of its own after a write
has been acknowledged, so the file does not grow under churn (at most ``history + TRIM_BATCH``
rows are kept) and no single write pays for a large delete.

Concurrency of writes. The cache serializes writes with one lock held across ``_persist``,
so each write is one transaction, committed before it is acknowledged (no group commit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from typing import Any, Callable, TypeVar, cast

from ..util import failpoints
from ..util.libc import release_freed_memory
from .cache import DEFAULT_HISTORY, DEFAULT_HISTORY_BYTES, CachedStore, Logged, _Stream, encoded
from .interface import EventType, StorageError, WatchEvent

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TRIM_BATCH = 256
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY, rev INTEGER NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER PRIMARY KEY, key TEXT NOT NULL, type TEXT NOT NULL,
    value TEXT NOT NULL, prev TEXT);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
"""

T = TypeVar("T")
_Row = tuple[int, str, str, str, "str | None"]


def _event_row(event: WatchEvent) -> _Row:
    """The log row of ``event``: its objects' encodings (made once, at the write) as text."""
    prev = encoded(event.prev).decode() if event.prev is not None else None
    return (event.rev, event.key, event.type, encoded(event.obj).decode(), prev)


class _Db:
    """The connection and every statement run on it.

    Contract: constructed on, and every method called from, the writer thread only.
    """

    def __init__(self, path: str, *, history: int, durable: bool) -> None:
        self._history = history
        self._conn = sqlite3.connect(path, isolation_level=None)
        try:
            self._configure(durable)
            self._migrate()
            self._log_rows: int = self._conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except BaseException:
            self._conn.close()
            raise

    def _configure(self, durable: bool) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"sqlite: cannot enable WAL mode (journal_mode is {mode!r})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(f"sqlite: schema version {version} is newer than supported "
                               f"({SCHEMA_VERSION})")
        self._conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} "
                                 f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def load(self, history_bytes: int) -> tuple[list[tuple[str, bytes]], list[Logged], int]:
        """Current objects and the newest events (oldest first) within ``history`` events and
        ``history_bytes`` of objects (the newest always), encoded; the revision."""
        conn = self._conn
        revision = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
        newest = conn.execute("SELECT max(rev) FROM events").fetchone()[0] or 0
        rows: list[tuple[int, str, str, str, str | None]] = []
        size = 0
        for row in conn.execute("SELECT rev, key, type, value, prev FROM events "
                                "ORDER BY rev DESC LIMIT ?", (self._history,)):
            size += len(row[3])
            if rows and size > history_bytes:
                break  # older events would be dropped from memory at once: do not read them
            rows.append(row)
        # An event's prev is the object of the key's previous event, and a current object
        # the object of its latest event: share those bytes instead of holding copies, so a
        # restart costs what the running server held.
        latest: dict[str, Logged] = {}
        events = []
        for rev, key, type_, value, prev in reversed(rows):
            before = latest.get(key)
            if prev is None:
                prev_data = None
            elif before is not None and before.type != "DELETED":
                prev_data = before.data
            else:
                prev_data = prev.encode()
            logged = Logged(cast(EventType, type_), key, rev, value.encode(), prev_data)
            latest[key] = logged
            events.append(logged)
        items = []
        for key, rev, value in conn.execute("SELECT key, rev, value FROM objects"):
            known = latest.get(key)
            if known is not None and known.rev == rev and known.type != "DELETED":
                items.append((key, known.data))  # the event's bytes, held once
            else:
                items.append((key, value.encode()))
        return items, events, max(revision, newest)

    def write(self, row: _Row) -> bool:
        """Commit one event (object, log row, revision) in one transaction.

        Returns whether the log has grown enough to warrant a :meth:`trim`."""
        rev, key, type_, value, _prev = row
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            fault = failpoints.fire("storage.write")
            if fault is not None and fault.kind == "enospc":  # as SQLite says it
                raise sqlite3.OperationalError("database or disk is full")
            if type_ == "DELETED":
                conn.execute("DELETE FROM objects WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO objects (key, rev, value) VALUES (?, ?, ?)",
                             (key, rev, value))
            conn.execute("INSERT INTO events (rev, key, type, value, prev) VALUES (?, ?, ?, ?, ?)",
                         row)
            conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (rev,))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._log_rows += 1
        return self._log_rows - self._history >= TRIM_BATCH

    def trim(self) -> int:
        """Delete at most TRIM_BATCH of the oldest log rows beyond ``history``; the count."""
        excess = min(self._log_rows - self._history, TRIM_BATCH)
        if excess <= 0:
            return 0
        cur = self._conn.execute(
            "DELETE FROM events WHERE rev IN (SELECT rev FROM events ORDER BY rev LIMIT ?)",
            (excess,))
        self._log_rows -= cur.rowcount
        return cur.rowcount

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("sqlite: rollback failed")

    def close(self) -> None:
        """Close the connection; the last close checkpoints the WAL into the database."""
        self._conn.close()


async def _outcome(fut: "asyncio.Future[T]") -> T:
    """Wait for ``fut`` to finish even if the calling task is cancelled meanwhile.

    A write already handed to the writer thread will commit or fail regardless; its caller must
    learn which, so that memory matches the database. A cancellation that arrives meanwhile is
    re-delivered at the task's next suspension point instead.
    """
    cancelled = False
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancelled = cancelled or not fut.cancelled()
        except BaseException:
            pass  # fut's own failure: raised by fut.result() below
    if cancelled:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
            task.cancel()
    return fut.result()


class SqliteStore(CachedStore):
    """Storage in one SQLite file; see the module docstring for layout and durability.

    Create with ``await SqliteStore.open(path)``; end with ``await store.close()``. Only one
    process may have a given file open (nothing enforces this).
    """

    def __init__(self, executor: concurrent.futures.ThreadPoolExecutor, db: _Db, *,
                 history: int, history_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        """Internal: use :meth:`open`."""
        super().__init__(history=history, history_bytes=history_bytes)
        self._executor = executor
        self._db = db
        self._closed = False

    @classmethod
    async def open(cls, path: str, *, history: int = DEFAULT_HISTORY,
                   history_bytes: int = DEFAULT_HISTORY_BYTES,
                   durable: bool = False) -> SqliteStore:
        """Open (creating if needed) the database at ``path`` and load it into memory.

        ``history``: how many events are retained for watches (in memory and on disk);
        ``history_bytes``: the bound on their encoded size in memory (see :mod:`.cache`).
        ``durable``: fsync every commit (survives power loss), see the module docstring.
        Raises StorageError when the file cannot be opened as a podling database.
        """
        if history < 0:
            raise ValueError("history must be >= 0")
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="podling-sqlite")
        try:
            db = await _call(executor, _Db, path, history=history, durable=durable)
            items, events, revision = await _call(executor, db.load, history_bytes)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        store = cls(executor, db, history=history, history_bytes=history_bytes)
        store._load(items, events, revision)
        del items, events
        release_freed_memory()  # loading made and dropped many large strings
        return store

    async def _persist(self, event: WatchEvent) -> None:
        """Commit ``event`` on the writer thread; returns only once it is committed."""
        if self._closed:
            raise StorageError("sqlite: store is closed")
        row = _event_row(event)  # serialized here: the objects may be shared with callers
        fut = asyncio.wrap_future(self._executor.submit(self._db.write, row))
        try:
            needs_trim = await _outcome(fut)
        except sqlite3.Error as err:
            raise StorageError(f"sqlite: write of {event.key} failed: {err}") from err
        if needs_trim:
            self._in_background(self._db.trim)

    def _in_background(self, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` on the writer thread without waiting; failures are logged."""
        self._executor.submit(fn).add_done_callback(_log_failure)


    async def watch(self, prefix: str, resource_version: int) -> _Stream:
        if self._closed:
            raise StorageError("sqlite: store is closed")
        return await super().watch(prefix, resource_version)

    async def close(self) -> None:
        """Wait for the in-flight write, end watch streams, close the database.

        Idempotent. Later writes and watches raise StorageError; reads keep answering from
        memory."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await super().close()
            try:
                await _call(self._executor, self._db.close)  # runs after queued trims
            finally:
                self._executor.shutdown(wait=False)


async def _call(executor: concurrent.futures.Executor, fn: Callable[..., T], *args: Any,
                **kwargs: Any) -> T:
    """Run ``fn`` on the writer thread and wait for it, translating SQLite errors."""
    try:
        return await _outcome(asyncio.wrap_future(executor.submit(fn, *args, **kwargs)))
    except sqlite3.Error as err:
        raise StorageError(f"sqlite: {err}") from err


def _log_failure(fut: concurrent.futures.Future[Any]) -> None:
    """Done-callback of background writer jobs: log a failure (runs on the writer thread)."""
    if not fut.cancelled() and fut.exception() is not None:
        log.error("sqlite: background job failed", exc_info=fut.exception())
