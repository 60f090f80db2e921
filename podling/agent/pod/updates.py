"""Which pod updates from the API need a sync (kubelet ``checkAndUpdatePod``).

The agent's own status writes come back through the pod informer as updates; syncing the pod
for each of them costs a whole pass (list the runtime, plan, build the status again) and
finds nothing to do. As the kubelet's config source does, an update needs a sync when the
pod's spec or metadata changed (labels, annotations, the deletion timestamp, …); a change of
its status alone only when the pod has readiness gates, whose conditions other writers set.
The pod worker keeps the newest object either way, for its next sync.
"""

from __future__ import annotations

from podling.api.types import ObjMap

# metadata that every write changes, without changing what the pod asks for
VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")


def _metadata(pod: ObjMap) -> dict[str, object]:
    meta = pod.get("metadata") or {}
    return {k: v for k, v in meta.items() if k not in VOLATILE_METADATA}


def needs_sync(old: ObjMap, new: ObjMap) -> bool:
    """True unless ``new`` differs from ``old`` only in its status (and volatile metadata),
    and the pod has no readiness gates."""
    if old.get("spec") != new.get("spec") or _metadata(old) != _metadata(new):
        return True
    if (new.get("spec") or {}).get("readinessGates"):
        return (old.get("status") or {}).get("conditions") != \
            (new.get("status") or {}).get("conditions")
    return False
