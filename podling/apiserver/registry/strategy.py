"""The per-resource policy the generic store runs (docs/architecture.md §3).

A strategy says how one resource (or one subresource: pods/status, pods/binding, …) is
defaulted, prepared, validated and deleted; the generic store (:mod:`.store`) runs the fixed
pipeline around it and knows nothing about any kind:

    create:  decode → default → admit → prepare_for_create → validate → store → after_create
    update:  decode → default → prepare_for_update(new, old) → validate_update(new, old) → store
    both:    warnings(result) are sent as Warning headers
    delete:  check_graceful_delete(obj, grace) → remove now, or prepare_for_delete(obj) and
             mark deletionTimestamp; removed once blocks_deletion(obj) is False

Every hook but ``admit`` and ``after_create`` is pure: it changes the objects handed to it,
returns causes (422) or raises :class:`~podling.api.errors.ApiError` (403, 409) to refuse;
no I/O.
``admit`` is the kind's admission control on create (Kubernetes' admission plugins, e.g.
ServiceAccount for pods): it may read other resources through the stores its strategy was
built with, change the object, or raise ApiError to refuse it; it also runs on dry runs.
``after_create`` runs after the object was stored and may make further requests, but only
through the store it is given (the same pipeline), never by writing to storage directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...api import validation
from ...api.errors import Cause
from ...api.resources import Resource
from ...api.types import Obj

if TYPE_CHECKING:
    from .store import RegistryStore


class Strategy:
    """Defaults shared by every resource; subclasses override what differs."""

    #: whether an update may change ``status`` (False for the main resource of kinds with a
    #: status subresource, whose status only the status subresource writes)
    updates_status = True
    #: whether an update may change everything but status (False for status subresources)
    updates_spec = True
    #: whether ``metadata.generation`` is kept and bumped on spec changes
    tracks_generation = False

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    # -- create ------------------------------------------------------------------------

    def default(self, obj: Obj) -> None:
        """Fill Kubernetes' defaults in place (also applied to updates)."""

    async def admit(self, obj: Obj) -> None:
        """Admission control on create, after defaulting (may read other resources)."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a client may not set on create (e.g. status)."""

    def validate(self, obj: Obj) -> list[Cause]:
        """Causes that make ``obj`` invalid on create (metadata included)."""
        return validation.validate_object_meta(obj.get("metadata") or {},
                                               namespaced=self.resource.namespaced)

    def warnings(self, obj: Obj) -> list[str]:
        """Warning texts for a created or updated ``obj`` that is stored anyway (Kubernetes'
        ``WarningsOnCreate`` / ``WarningsOnUpdate``)."""
        return []

    async def validate_admission(self, obj: Obj) -> list[str]:
        """Validating admission on create, after validation (may read other resources):
        raises an ApiError to refuse ``obj``; returns Warning texts otherwise."""
        return []

    async def admission_context(self, namespace: str | None, name: str) -> Any:
        """What :meth:`validate_update_admission` needs, read before an update (which runs
        inside the storage's compare-and-swap loop, where nothing may be awaited)."""
        return None

    def validate_update_admission(self, new: Obj, old: Obj, context: Any) -> list[str]:
        """Validating admission on update, after validation: raise an ApiError to refuse;
        Warning texts otherwise."""
        return []

    async def after_create(self, store: RegistryStore, created: Obj) -> Obj:
        """Called once ``created`` is stored (never on a dry run); returns the object to
        answer. Further changes go through ``store`` (e.g. ``store.update``)."""
        return created

    # -- update ------------------------------------------------------------------------

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Carry over what this kind of update may not change."""
        if not self.updates_status and "status" in old:
            new["status"] = old["status"]
        elif not self.updates_status:
            new.pop("status", None)
        if not self.updates_spec:
            for key, value in old.items():
                if key not in ("status", "metadata"):
                    new[key] = value
            for key in list(new):
                if key not in old and key not in ("status", "metadata", "kind", "apiVersion"):
                    del new[key]
            new["metadata"] = _status_update_metadata(new.get("metadata") or {}, old["metadata"])

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Causes that make the update invalid: metadata update rules (immutable identity,
        no finalizers added while deleting, …) plus the kind's own checks of ``new``."""
        meta_causes = validation.validate_object_meta_update(new.get("metadata") or {},
                                                             old.get("metadata") or {})
        own = [c for c in self.validate(new) if not c.field.startswith("metadata")]
        return meta_causes + own

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Whether anything beyond metadata and status changed (bumps generation)."""
        ignore = ("metadata", "status")
        return {k: v for k, v in new.items() if k not in ignore} != \
            {k: v for k, v in old.items() if k not in ignore}

    # -- delete ------------------------------------------------------------------------

    def check_graceful_delete(self, obj: Obj, requested: int | None) -> int:
        """Seconds the object may take to go away; 0 removes it at once (finalizers aside).
        May raise ApiError to refuse the deletion altogether."""
        return 0

    def prepare_for_delete(self, obj: Obj) -> None:
        """Change a copy of ``obj`` as it is marked for deletion (pure; in place)."""

    def blocks_deletion(self, obj: Obj) -> bool:
        """Whether a terminating object must stay: finalizers remain, or its grace runs."""
        meta = obj.get("metadata") or {}
        return bool(meta.get("finalizers")) or bool(meta.get("deletionGracePeriodSeconds"))

def _status_update_metadata(new: Obj, old: Obj) -> Obj:
    """A status update keeps the stored metadata; only its resourceVersion precondition counts."""
    merged = dict(old)
    if "resourceVersion" in new:
        merged["resourceVersion"] = new["resourceVersion"]
    return merged
