"""Pods, pods/status and pods/ephemeralcontainers: defaults, admission-time additions, validation, graceful deletion.

pods/binding and pods/eviction, which also write pods, are in :mod:`.binding` and
:mod:`.eviction`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Protocol

from ...api import defaults, errors, validation
from ...api.errors import Cause
from ...api.pods import is_terminal
from ...api.resources import Resource
from ...util import timeline
from ...util.jsoncopy import clone
from .podsecurity import PodSecurityAdmission, significant
from .strategy import Obj, Strategy

if TYPE_CHECKING:
    from .store import RegistryStore


class PodAdmission(Protocol):
    """Admission control of pod creates (:class:`.serviceaccounts.ServiceAccountAdmission`)."""

    def admit(self, pod: Obj) -> Awaitable[None]: ...


class PodStrategy(Strategy):
    """Pods: status only through pods/status; graceful deletion for bound pods."""

    updates_status = False
    tracks_generation = True

    def __init__(self, resource: Resource, admission: PodAdmission | None = None,
                 security: PodSecurityAdmission | None = None) -> None:
        super().__init__(resource)
        self.admission = admission
        self.security = security

    def default(self, obj: Obj) -> None:
        defaults.default_pod(obj)

    async def admit(self, obj: Obj) -> None:
        """The ServiceAccount admission plugin, when the strategy was given one."""
        if self.admission is not None:
            await self.admission.admit(obj)

    async def validate_admission(self, obj: Obj) -> list[str]:
        """Pod Security Admission (:mod:`.podsecurity`), when the strategy was given it."""
        return await self.security.admit(obj) if self.security is not None else []

    async def admission_context(self, namespace: str | None, name: str) -> dict | None:
        """The namespace's labels, for Pod Security Admission of the update."""
        return await self.security.labels(namespace) if self.security is not None else None

    def validate_update_admission(self, new: Obj, old: Obj, context: Any) -> list[str]:
        """Pod Security Admission of a significant update (:func:`.podsecurity.significant`)."""
        if self.security is None or context is None:
            return []
        return self.security.check(new, context, evaluated=significant(new, old))

    def prepare_for_create(self, obj: Obj) -> None:
        """Pending status, generation 1, and what Kubernetes' admission adds (priority,
        the not-ready / unreachable tolerations); 403 for an unknown priority class."""
        refused = defaults.admit_pod_defaults(obj)
        if refused:
            raise errors.forbidden_request(
                f'pods "{obj["metadata"].get("name", "")}" is forbidden: {refused}')
        defaults.init_pod_status(obj)
        obj["metadata"]["generation"] = 1
        _negative_grace_as_one(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        if self.updates_spec:
            _negative_grace_as_one(new)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_pod(obj)

    async def after_create(self, store: RegistryStore, created: Obj) -> Obj:
        """Marks ``api.created`` on the pod's stage timeline (:mod:`podling.util.timeline`)."""
        meta = created["metadata"]
        timeline.begin(meta["uid"], meta.get("namespace", ""), meta["name"])
        return created

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_pod_update(new, old)

    def check_graceful_delete(self, obj: Obj, requested: int | None) -> int:
        """Kubernetes' pod rule: the request's value, else the spec's; 0 when the pod never
        reached a node or has finished; a negative value counts as 1."""
        spec = obj.get("spec") or {}
        if not spec.get("nodeName") or is_terminal(obj):
            return 0
        grace = requested if requested is not None else spec.get("terminationGracePeriodSeconds", 30)
        return 1 if grace < 0 else grace


def _negative_grace_as_one(pod: Obj) -> None:
    """Kubernetes (since 1.27) stores a negative ``spec.terminationGracePeriodSeconds`` as 1
    on create and update; the update validation lets a stored negative value become 1."""
    spec = pod.get("spec")
    if isinstance(spec, dict):
        grace = spec.get("terminationGracePeriodSeconds")
        if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
            spec["terminationGracePeriodSeconds"] = 1


class PodStatusStrategy(PodStrategy):
    """pods/status: only status changes; metadata and spec stay as stored."""

    updates_status = True
    updates_spec = False
    tracks_generation = False

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_pod_status_update(new, old)


class PodEphemeralContainersStrategy(PodStrategy):
    """pods/ephemeralcontainers (GET, PUT, PATCH): only ``spec.ephemeralContainers`` of the
    body counts; everything else stays as stored (Kubernetes' ``dropNonEphemeralContainer
    Updates``). Existing ephemeral containers may not change (the validation)."""

    tracks_generation = False

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        wanted = (new.get("spec") or {}).get("ephemeralContainers") \
            if isinstance(new.get("spec"), dict) else None
        version = (new.get("metadata") or {}).get("resourceVersion")
        new.clear()
        new.update(clone(old))
        spec = new.setdefault("spec", {})
        if wanted:
            spec["ephemeralContainers"] = wanted
        else:
            spec.pop("ephemeralContainers", None)
        if version:
            new["metadata"]["resourceVersion"] = version

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_pod_ephemeral_containers_update(new, old)
