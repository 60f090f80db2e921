"""pods/binding: assign a pod to a node (what the scheduler posts)."""

from __future__ import annotations

import copy
from typing import Any

from ..api import errors, validation
from ..util.timefmt import now_rfc3339
from .registry.store import RegistryStore

Obj = dict[str, Any]


async def bind_pod(pods: RegistryStore, namespace: str | None, name: str, binding: Obj, *,
                   dry_run: bool = False) -> Obj:
    """Set ``spec.nodeName`` and PodScheduled=True, once.

    409 Conflict when the pod is already bound or being deleted; 422 for a bad target."""
    causes = validation.validate_binding(binding)
    if causes:
        raise errors.invalid_object("Binding", name, causes)
    target = binding["target"]["name"]
    uid = (binding.get("metadata") or {}).get("uid")

    def assign(pod: Obj) -> Obj:
        meta, spec = pod["metadata"], pod.setdefault("spec", {})
        if uid and meta.get("uid") != uid:
            raise errors.conflict("pods", name, "the UID in the binding does not match the pod")
        if meta.get("deletionTimestamp"):
            raise errors.conflict("pods", name, "pod is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict("pods", name, f"pod {name} is already assigned to node "
                                  f'"{spec["nodeName"]}"')
        spec["nodeName"] = target
        for key, value in ((binding.get("metadata") or {}).get("annotations") or {}).items():
            meta.setdefault("annotations", {})[key] = value
        _set_scheduled(pod.setdefault("status", {}))
        return pod

    if dry_run:
        return assign(copy.deepcopy(await pods.get(namespace, name)))
    return await pods.mutate(namespace, name, assign)


def _set_scheduled(status: Obj) -> None:
    conditions = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now_rfc3339()})
    status["conditions"] = conditions
