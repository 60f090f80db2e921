"""The strategy of each served resource (pods, nodes, namespaces, events, leases)."""

from __future__ import annotations

from ...api import defaults, errors, resources, validation
from ...api.errors import Cause
from .strategy import Obj, Strategy

TERMINAL_PHASES = ("Succeeded", "Failed")


class PodStrategy(Strategy):
    """Pods: status only through pods/status; graceful deletion for bound pods."""

    updates_status = False
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        defaults.default_pod(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        """Pending status, generation 1, and what Kubernetes' admission adds (priority,
        the not-ready / unreachable tolerations); 403 for an unknown priority class."""
        refused = defaults.admit_pod_defaults(obj)
        if refused:
            raise errors.forbidden_request(
                f'pods "{obj["metadata"].get("name", "")}" is forbidden: {refused}')
        defaults.init_pod_status(obj)
        obj["metadata"]["generation"] = 1

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_pod(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_pod_update(new, old)

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Kubernetes' pod rule: the request's value, else the spec's; 0 when the pod never
        reached a node or has finished; a negative value counts as 1."""
        spec = obj.get("spec") or {}
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return 0
        grace = requested if requested is not None else spec.get("terminationGracePeriodSeconds", 30)
        return 1 if grace < 0 else grace


class PodStatusStrategy(PodStrategy):
    updates_status = True
    updates_spec = False
    tracks_generation = False

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_pod_status_update(new, old)


class NodeStrategy(Strategy):
    """Nodes may carry status on create (agents register with it); later only via nodes/status."""

    updates_status = False

    def default(self, obj: Obj) -> None:
        defaults.default_node(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_node(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_node_update(new, old)


class NodeStatusStrategy(NodeStrategy):
    updates_status = True
    updates_spec = False


class NamespaceStrategy(Strategy):
    """Namespaces start Active with the ``kubernetes`` finalizer; deletion drains them first."""

    updates_status = False

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
        return validation.validate_namespace(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_namespace_update(new, old)


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


class EventStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        defaults.default_event(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return super().validate(obj) + validation.validate_event(obj)


class LeaseStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        defaults.default_lease(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_lease(obj)


MAIN = {
    "pods": PodStrategy(resources.PODS),
    "nodes": NodeStrategy(resources.NODES),
    "namespaces": NamespaceStrategy(resources.NAMESPACES),
    "events": EventStrategy(resources.EVENTS),
    "leases": LeaseStrategy(resources.LEASES),
}

SUBRESOURCES = {
    ("pods", "status"): PodStatusStrategy(resources.PODS),
    ("nodes", "status"): NodeStatusStrategy(resources.NODES),
    ("namespaces", "status"): NamespaceStatusStrategy(resources.NAMESPACES),
    ("namespaces", "finalize"): NamespaceFinalizeStrategy(resources.NAMESPACES),
}
