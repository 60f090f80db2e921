"""The Storage protocol every backend implements (docs/architecture.md §3).

Values are JSON dicts. The store stamps ``metadata.resourceVersion`` from one global,
monotonically increasing revision; every write (create, update, delete) takes the next
revision. Keys look like ``/pods/default/web`` and listings and watches select by prefix.

Objects returned by a store are shared with its cache: callers must treat them as read-only
and copy before changing (``guaranteed_update`` already hands ``try_update`` a private copy).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Literal, Protocol

from ..api.types import Obj

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StorageError(Exception):
    """Base of every storage failure."""


class KeyExists(StorageError):
    """``create`` of a key that already holds an object."""


class KeyNotFound(StorageError):
    """The key holds no object."""


class PreconditionFailed(StorageError):
    """A uid or resourceVersion precondition did not match the stored object."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"Precondition failed: {what} in precondition: {expected}, {what} in object meta: {actual}")
        self.what = what


class TooLarge(StorageError):
    """The datastore refuses a value this large (etcd's --max-request-bytes; the API
    answers 413 RequestEntityTooLarge)."""


class Compacted(StorageError):
    """A watch asked for history older than the store retains (the API answers 410 Expired)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True)
class Preconditions:
    """Write only when the stored object still has this uid and/or resourceVersion."""

    uid: str | None = None
    resource_version: str | None = None

    def check(self, current: Obj) -> None:
        meta = current.get("metadata", {})
        if self.uid is not None and self.uid != meta.get("uid"):
            raise PreconditionFailed("UID", self.uid, str(meta.get("uid")))
        if self.resource_version is not None and self.resource_version != meta.get("resourceVersion"):
            raise PreconditionFailed("ResourceVersion", self.resource_version,
                                     str(meta.get("resourceVersion")))


@dataclass(frozen=True)
class WatchEvent:
    """One change. ``obj`` is the new state (for DELETED: the last state, stamped with the
    deletion's revision); ``prev`` is the state before the change (None for ADDED)."""

    type: EventType
    key: str
    obj: Obj
    prev: Obj | None
    rev: int


class WatchStream(Protocol):
    """An ordered stream of the events after a revision; no gaps, duplicates or reordering.

    The stream ends (StopAsyncIteration) when the store closes or the consumer falls too far
    behind; the consumer then re-watches from the last revision it saw.
    """

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    async def __anext__(self) -> WatchEvent: ...

    def ready(self, limit: int) -> list[WatchEvent]:
        """Up to ``limit`` further events that are already available, without waiting;
        consumed as if by ``__anext__`` (a consumer batches them into one write)."""
        ...

    def bookmark_revision(self) -> int:
        """A revision up to which every event of this stream has been consumed."""
        ...

    @property
    def closed(self) -> bool:
        """True once the stream was stopped (queued events may still be taken)."""
        ...

    async def wait(self) -> None:
        """Return once events are queued or the stream is closed (at once if either holds)."""
        ...

    def attach(self, deliver: Callable[[], bool] | None) -> None:
        """Hand events over as they come instead of through a waiting consumer.

        While ``deliver`` is attached, the store calls it from the event loop soon after each
        write that queued events (once for all the events queued by then, after the writer's
        own turn, from a plain callback: no task is woken); it takes the queued events with
        :meth:`ready` and returns True, or returns False (it cannot take them now, or it
        failed): the stream then detaches it and wakes :meth:`wait`. ``deliver`` must not
        raise or await. ``attach(None)`` detaches.
        """
        ...

    def close(self) -> None:
        """Stop the stream; idempotent."""
        ...


TryUpdate = Callable[[Obj], "Obj | None"]


class Storage(Protocol):
    """What the API server needs from a backend."""

    @property
    def revision(self) -> int:
        """The revision of the latest write."""
        ...

    async def create(self, key: str, obj: Obj) -> Obj:
        """Store a new object; raises KeyExists. Returns the stored (stamped) object."""
        ...

    async def get(self, key: str) -> Obj:
        """The current object; raises KeyNotFound."""
        ...

    async def get_cached(self, key: str) -> Obj:
        """Like :meth:`get`, but a store shared by several API servers may answer from a
        copy that lags their latest writes by moments, as Kubernetes' admission reads its
        informers: for lookups that fall back to :meth:`get` on KeyNotFound."""
        ...

    async def list(self, prefix: str) -> tuple[list[Obj], int]:
        """Every object under ``prefix`` in key order, and the revision they were read at."""
        ...

    async def list_encoded(self, prefix: str) -> tuple[builtins.list[bytes], int]:
        """Like :meth:`list`, but each object's compact JSON encoding (UTF-8)."""
        ...

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> Obj:
        """Remove the object; returns its last state stamped with the deletion revision.

        Raises KeyNotFound or PreconditionFailed."""
        ...

    async def guaranteed_update(self, key: str, try_update: TryUpdate,
                                preconditions: Preconditions | None = None) -> Obj:
        """Apply ``try_update(copy_of_current)`` and store its result.

        ``try_update`` may raise to abort (the exception propagates). Returning None or an
        object equal to the current one writes nothing and returns the current object.
        Raises KeyNotFound or PreconditionFailed."""
        ...

    async def watch(self, prefix: str, resource_version: int) -> WatchStream:
        """Events under ``prefix`` with revision > ``resource_version``.

        Raises Compacted at once when that history is no longer retained."""
        ...

    async def close(self) -> None:
        """Flush and release resources; open watch streams end."""
        ...
