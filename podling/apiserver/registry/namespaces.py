"""Namespaces, namespaces/status and namespaces/finalize.

    Active ──delete──▶ Terminating (deletionTimestamp; spec.finalizers = [kubernetes])
                          │  the namespace controller (podling.controllers) deletes its
                          ▼  contents, then PUTs namespaces/{name}/finalize without "kubernetes"
                        gone (nothing blocks the deletion any more)
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from ...api import defaults, errors, validation
from ...api.errors import Cause
from ...api.resources import Resource
from .podsecurity import existing_pod_warnings, label_causes, update_label_causes
from .strategy import Obj, Strategy

#: namespaces Kubernetes' NamespaceLifecycle admission never lets anyone delete
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceStrategy(Strategy):
    """Namespaces start Active with the ``kubernetes`` finalizer; deletion drains them first.
    ``list_pods(namespace)``, when given, lists a namespace's pods for Pod Security
    Admission's warnings when an update tightens its enforce level."""

    updates_status = False

    def __init__(self, resource: Resource,
                 list_pods: Callable[[str], Awaitable[list[Obj]]] | None = None) -> None:
        super().__init__(resource)
        self._list_pods = list_pods

    async def admission_context(self, namespace: str | None, name: str) -> list[Obj] | None:
        return await self._list_pods(name) if self._list_pods is not None else None

    def validate_update_admission(self, new: Obj, old: Obj, context: Any) -> list[str]:
        if context is None:
            return []
        return existing_pod_warnings(new["metadata"].get("name", ""), _labels(new),
                                     _labels(old), context)

    def default(self, obj: Obj) -> None:
        defaults.default_namespace(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        finalizers = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
        spec["finalizers"] = finalizers + ["kubernetes"]

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        new["spec"] = old.get("spec", {})  # spec.finalizers change only through /finalize

    def validate(self, obj: Obj) -> list[Cause]:
        """Kubernetes' validation, and Pod Security Admission's of its labels."""
        return validation.validate_namespace(obj) + label_causes(_labels(obj))

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_namespace_update(new, old) + \
            update_label_causes(_labels(new), _labels(old))

    def check_graceful_delete(self, obj: Obj, requested: int | None) -> int:
        """403 for the protected namespaces; otherwise no grace (the finalizer holds it)."""
        name = obj["metadata"].get("name", "")
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden_request(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        return 0

    def prepare_for_delete(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def blocks_deletion(self, obj: Obj) -> bool:
        """Also held by ``spec.finalizers`` (the namespace controller's ``kubernetes``)."""
        return super().blocks_deletion(obj) or bool((obj.get("spec") or {}).get("finalizers"))


class NamespaceStatusStrategy(NamespaceStrategy):
    updates_status = True
    updates_spec = False


class NamespaceFinalizeStrategy(NamespaceStrategy):
    """namespaces/{name}/finalize: only spec.finalizers may change."""

    updates_status = False

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        finalizers = (new.get("spec") or {}).get("finalizers", [])
        new.clear()
        new.update(old)
        new["spec"] = dict(old.get("spec") or {}, finalizers=finalizers)


def _labels(obj: Obj) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}
