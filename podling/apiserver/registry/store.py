"""The generic store: the fixed create / update / delete pipeline around a Strategy.

The store has no kind-specific code: every rule of a resource lives in its strategy
(:mod:`.strategy` describes the pipeline, :mod:`.strategies` holds them). Errors leave as
:class:`~podling.api.errors.ApiError`; storage errors are translated here. ``dry_run`` runs
the whole pipeline (defaulting, validation, admission) but writes nothing.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

from ...api import errors
from ...api.resources import Resource
from ...storage.interface import (KeyExists, KeyNotFound, PreconditionFailed, Preconditions,
                                  Storage)
from ...util.timefmt import format_rfc3339, now_rfc3339
from .strategy import Obj, Strategy
from ...util.jsoncopy import clone

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


class _DryRunResult(Exception):
    """Carries the would-be object out of guaranteed_update without writing it."""

    def __init__(self, obj: Obj) -> None:
        super().__init__("dry run")
        self.obj = obj


def object_key(resource: Resource, namespace: str | None, name: str) -> str:
    group = resource.group or "core"
    if resource.namespaced:
        return f"/{group}/{resource.name}/{namespace}/{name}"
    return f"/{group}/{resource.name}/{name}"


def collection_prefix(resource: Resource, namespace: str | None) -> str:
    group = resource.group or "core"
    if resource.namespaced and namespace:
        return f"/{group}/{resource.name}/{namespace}/"
    return f"/{group}/{resource.name}/"


class RegistryStore:
    """CRUD for one resource over a Storage, following its strategies.

    ``strategy`` governs the resource itself; ``subresources`` maps a subresource name
    (``status``, ``binding``, ``finalize``, …) to the strategy of updates made through it."""

    def __init__(self, resource: Resource, strategy: Strategy, storage: Storage, *,
                 subresources: Mapping[str, Strategy] | None = None) -> None:
        self.resource = resource
        self.strategy = strategy
        self.storage = storage
        self.subresources = dict(subresources or {})

    def strategy_for(self, subresource: str | None) -> Strategy:
        """The strategy of the resource (None) or of one of its subresources; 405 for a
        subresource that is not written through the registry."""
        if not subresource:
            return self.strategy
        try:
            return self.subresources[subresource]
        except KeyError:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource") from None

    # -- helpers -------------------------------------------------------------------------

    def key(self, namespace: str | None, name: str) -> str:
        return object_key(self.resource, namespace, name)

    @contextmanager
    def _translated(self, name: str) -> Iterator[None]:
        try:
            yield
        except KeyNotFound:
            raise errors.not_found(self.resource.name, name, self.resource.group) from None
        except KeyExists:
            raise errors.already_exists(self.resource.name, name, self.resource.group) from None
        except PreconditionFailed as exc:
            raise errors.conflict(self.resource.name, name, str(exc), self.resource.group) from None

    def _invalid(self, obj: Obj, causes: list[errors.Cause]) -> errors.ApiError:
        name = (obj.get("metadata") or {}).get("name", "")
        return errors.invalid_object(self.resource.kind, name, causes, self.resource.group)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, namespace: str | None, name: str) -> Obj:
        with self._translated(name):
            return await self.storage.get(self.key(namespace, name))

    async def lookup(self, namespace: str | None, name: str) -> Obj:
        """:meth:`get` for admission checks: the store's cached copy (no round trip to a
        shared datastore), then a consistent read when the copy does not have it yet (an
        object another server created a moment ago), as Kubernetes' NamespaceLifecycle
        admission does."""
        key = self.key(namespace, name)
        try:
            return await self.storage.get_cached(key)
        except KeyNotFound:
            pass
        with self._translated(name):
            return await self.storage.get(key)

    async def list(self, namespace: str | None) -> tuple[list[Obj], int]:
        return await self.storage.list(collection_prefix(self.resource, namespace))

    async def list_encoded(self, namespace: str | None) -> tuple[list[bytes], int]:
        """:meth:`list` as each object's JSON encoding (nothing decoded)."""
        return await self.storage.list_encoded(collection_prefix(self.resource, namespace))

    # -- create --------------------------------------------------------------------------

    async def create(self, namespace: str | None, obj: Obj, *, dry_run: bool = False,
                     warnings: list[str] | None = None) -> Obj:
        """Create ``obj`` (already decoded, kind and namespace checked); returns what the
        strategy's ``after_create`` answers (the stored object unless it changed it).
        Validating admission's Warning texts are appended to ``warnings``."""
        meta = obj.setdefault("metadata", {})
        if self.resource.namespaced:
            meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
        for field in _SYSTEM_META + ("resourceVersion", "generation", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        self.strategy.default(obj)
        await self.strategy.admit(obj)
        self.strategy.prepare_for_create(obj)
        causes = self.strategy.validate(obj)
        if causes:
            raise self._invalid(obj, causes)
        admitted = await self.strategy.validate_admission(obj)
        if warnings is not None:
            warnings += admitted
        if dry_run:
            return obj
        with self._translated(meta.get("name", "")):
            created = await self.storage.create(self.key(namespace, meta["name"]), obj)
        return await self.strategy.after_create(self, created)

    # -- update --------------------------------------------------------------------------

    async def update(self, namespace: str | None, name: str, make_new: Callable[[Obj], Obj], *,
                     strategy: Strategy | None = None, dry_run: bool = False,
                     warnings: list[str] | None = None) -> Obj:
        """Replace the object with ``make_new(copy_of_current)`` through the update pipeline.

        ``make_new`` builds the candidate (a PUT body, or a patch applied to the current
        object). A resourceVersion in the candidate that differs from the stored one is a
        409 Conflict. An object whose deletion was only waiting on finalizers or a grace
        period is removed once nothing blocks it any more. Validating admission's Warning
        texts are appended to ``warnings``."""
        strategy = strategy or self.strategy
        context = await strategy.admission_context(namespace, name)
        admitted: list[str] = []

        def try_update(current: Obj) -> Obj:
            new = make_new(clone(current))
            self._check_version(new, current, name)
            new = self._prepare_update(new, current, strategy)
            admitted[:] = strategy.validate_update_admission(new, current, context)
            if dry_run:
                raise _DryRunResult(new)
            return new

        try:
            with self._translated(name):
                updated = await self.storage.guaranteed_update(self.key(namespace, name),
                                                               try_update)
        except _DryRunResult as result:
            return result.obj
        finally:
            if warnings is not None:
                warnings += admitted
        meta = updated.get("metadata") or {}
        if meta.get("deletionTimestamp") and not self.strategy.blocks_deletion(updated):
            return await self._remove(namespace, name, updated)
        return updated

    def _check_version(self, new: Obj, current: Obj, name: str) -> None:
        """409 when the candidate names another resourceVersion, or another object's uid
        (a same-named object that replaced the one the client meant)."""
        uid = (new.get("metadata") or {}).get("uid")
        if uid and uid != current["metadata"].get("uid"):
            raise errors.conflict(self.resource.name, name,
                                  f"Precondition failed: UID in precondition: {uid}, UID in "
                                  f"object meta: {current['metadata'].get('uid')}",
                                  self.resource.group)
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"].get("resourceVersion"):
            raise errors.stale_update(self.resource.name, name, self.resource.group)

    def _prepare_update(self, new: Obj, current: Obj, strategy: Strategy) -> Obj:
        new.setdefault("metadata", {})
        new["kind"], new["apiVersion"] = current.get("kind"), current.get("apiVersion")
        strategy.default(new)
        strategy.prepare_for_update(new, current)
        meta, old_meta = new["metadata"], current["metadata"]
        meta.setdefault("uid", old_meta.get("uid"))
        for field in ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("generation", None)
        if "generation" in old_meta:  # never client-settable on update
            meta["generation"] = old_meta["generation"]
            if strategy.tracks_generation and strategy.spec_changed(new, current):
                meta["generation"] += 1
        meta["resourceVersion"] = old_meta.get("resourceVersion")  # unconditional update
        causes = strategy.validate_update(new, current)
        if causes:
            raise self._invalid(new, causes)
        return new

    # -- delete --------------------------------------------------------------------------

    async def delete(self, namespace: str | None, name: str, *, grace: int | None = None,
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False) -> tuple[Obj, bool]:
        """Delete gracefully. Returns (object, removed_now).

        An object is removed at once when its strategy grants no grace period
        (``check_graceful_delete``) and nothing blocks it (``blocks_deletion``); otherwise
        it is marked with deletionTimestamp and deletionGracePeriodSeconds (and whatever
        ``prepare_for_delete`` changes) and removed later, by a grace-0 delete or once its
        finalizers are gone."""
        current = await self.get(namespace, name)
        if preconditions:
            with self._translated(name):
                preconditions.check(current)
        seconds = self.strategy.check_graceful_delete(current, grace)
        already = (current.get("metadata") or {}).get("deletionTimestamp")
        if already and seconds >= (current["metadata"].get("deletionGracePeriodSeconds") or 0):
            return current, False  # already terminating at least as fast
        marked = self._mark_deleted(clone(current), seconds)
        if not self.strategy.blocks_deletion(marked):
            if dry_run:
                return current, True
            return await self._remove(namespace, name, current, preconditions), True
        if dry_run:
            return marked, False

        def mark(obj: Obj) -> Obj:
            return self._mark_deleted(obj, seconds)

        with self._translated(name):
            updated = await self.storage.guaranteed_update(self.key(namespace, name), mark,
                                                           preconditions)
        return updated, False

    def _mark_deleted(self, obj: Obj, seconds: int) -> Obj:
        meta = obj["metadata"]
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
        if not meta.get("deletionTimestamp") or seconds < (meta.get("deletionGracePeriodSeconds") or 0):
            meta["deletionTimestamp"] = format_rfc3339(when)
        meta["deletionGracePeriodSeconds"] = seconds
        self.strategy.prepare_for_delete(obj)
        return obj

    async def _remove(self, namespace: str | None, name: str, current: Obj,
                      preconditions: Preconditions | None = None) -> Obj:
        uid = (current.get("metadata") or {}).get("uid")
        wanted = preconditions or Preconditions(uid=uid)
        with self._translated(name):
            return await self.storage.delete(self.key(namespace, name), wanted)


