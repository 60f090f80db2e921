"""pods/binding: assign a pod to a node (what a scheduler posts), through the update pipeline.

    POST /api/v1/namespaces/{ns}/pods/{name}/binding   (or POST …/bindings, naming the pod
    {"kind": "Binding", "metadata": {"name", "uid"?,     in metadata.name)
     "resourceVersion"?, "annotations"?}, "target": {"kind": "Node", "name": …}}
    → 201 Status Success

The binding's ``metadata.uid`` and ``metadata.resourceVersion`` are preconditions on the pod
(409 Conflict when they do not hold). :class:`PodBindingStrategy` is the only way to set the
otherwise immutable ``spec.nodeName``, and only once (Kubernetes' BindingREST).
"""

from __future__ import annotations

from ...api import errors, validation
from ...api.errors import Cause
from ...util.timefmt import now_rfc3339
from .pods import PodStrategy
from .store import RegistryStore
from .strategy import Obj

#: what Kubernetes names in the 409s of a refused binding
BINDING_RESOURCE = "pods/binding"


class PodBindingStrategy(PodStrategy):
    """The update strategy of pods/binding. :meth:`bound` makes the candidate;
    :meth:`prepare_for_update` refuses (409) a pod that is bound or being deleted."""

    updates_status = True
    tracks_generation = False

    def bound(self, pod: Obj, binding: Obj) -> Obj:
        """``pod`` (a copy) as ``binding`` wants it: nodeName, the binding's annotations
        merged in, PodScheduled=True, and the binding's uid / resourceVersion as the
        candidate's preconditions."""
        meta, spec = pod.setdefault("metadata", {}), pod.setdefault("spec", {})
        wanted = binding.get("metadata") or {}
        for field in ("uid", "resourceVersion"):
            if wanted.get(field):
                meta[field] = wanted[field]
        spec["nodeName"] = binding["target"]["name"]
        for key, value in (wanted.get("annotations") or {}).items():
            meta.setdefault("annotations", {})[key] = value
        _set_scheduled(pod.setdefault("status", {}))
        return pod

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """409 Conflict (Kubernetes' messages) unless ``old`` may still be bound."""
        name = old["metadata"].get("name", "")
        spec = old.get("spec") or {}
        if old["metadata"].get("deletionTimestamp"):
            detail = f"pod {name} is being deleted, cannot be assigned to a host"
        elif spec.get("nodeName"):
            detail = f'pod {name} is already assigned to node "{spec["nodeName"]}"'
        elif spec.get("schedulingGates"):
            detail = f"pod {name} has non-empty .spec.schedulingGates"
        else:
            return
        raise errors.conflict(BINDING_RESOURCE, name, detail)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Only the metadata rules: the pod spec's immutability does not apply to nodeName."""
        return validation.validate_object_meta_update(new.get("metadata") or {},
                                                      old.get("metadata") or {})


async def bind(pods: RegistryStore, namespace: str | None, name: str, binding: Obj, *,
               dry_run: bool = False) -> Obj:
    """Bind pod ``namespace/name`` as ``binding`` asks; returns the bound pod.

    400 when the Binding names another pod; 422 for a bad target; 404 for a missing pod;
    409 when a precondition fails or the pod is bound or being deleted."""
    named = (binding.get("metadata") or {}).get("name")
    if named and named != name:
        raise errors.bad_request("name in URL does not match name in Binding object")
    causes = validation.validate_binding(binding)
    if causes:
        raise errors.invalid_object("Binding", name, causes)
    strategy = pods.strategy_for("binding")
    assert isinstance(strategy, PodBindingStrategy)
    return await pods.update(namespace, name, lambda pod: strategy.bound(pod, binding),
                             strategy=strategy, dry_run=dry_run)


def _set_scheduled(status: Obj) -> None:
    conditions = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now_rfc3339()})
    status["conditions"] = conditions
