"""pods/eviction: delete a pod gracefully through the policy/v1 Eviction API (``kubectl drain``).

    POST /api/v1/namespaces/{ns}/pods/{name}/eviction
    {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": …, "namespace": …},
     "deleteOptions": {"gracePeriodSeconds": …, "preconditions": {…}, "dryRun": ["All"]}}
    → 201 {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

podling has no PodDisruptionBudgets, so an eviction is never refused with 429: it marks the
pod with the ``DisruptionTarget`` condition (as Kubernetes does) and deletes it with the
given options, exactly as ``DELETE pods/{name}`` would (grace period, preconditions). A pod
already terminating answers 201 too; a missing pod 404; failed preconditions 409.
"""

from __future__ import annotations

from typing import Any

from ..api import errors, schema
from ..api.resources import Resource
from ..storage.interface import PreconditionFailed, Preconditions
from ..util.timefmt import now_rfc3339
from .registry.store import RegistryStore

Obj = dict[str, Any]

#: Only for decoding request bodies; served solely as the pods/eviction subresource.
EVICTIONS = Resource("policy", "v1", "evictions", "eviction", "Eviction", True, schema.EVICTION,
                     verbs=("create",))
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True",
                     "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "code": 201}


def delete_options(eviction: Obj) -> tuple[int | None, Preconditions | None, bool]:
    """(gracePeriodSeconds, preconditions, dry run) from the Eviction's deleteOptions."""
    options = eviction.get("deleteOptions") or {}
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request("deleteOptions.gracePeriodSeconds must be an integer")
    pre = options.get("preconditions") or {}
    preconditions = Preconditions(uid=pre.get("uid"), resource_version=pre.get("resourceVersion")) \
        if pre.get("uid") or pre.get("resourceVersion") else None
    dry_run = options.get("dryRun") or []
    for value in dry_run:
        if value != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: '
                                     f'"All"')
    return grace, preconditions, bool(dry_run)


async def evict_pod(pods: RegistryStore, namespace: str | None, name: str, eviction: Obj, *,
                    dry_run: bool = False) -> Obj:
    """Evict pod ``namespace/name`` as ``eviction`` asks; returns the Status to answer (201).

    400 when the Eviction names another pod; 404 when the pod does not exist; 409 when
    the preconditions do not hold. ``dry_run`` (or deleteOptions.dryRun) writes nothing."""
    named = (eviction.get("metadata") or {}).get("name")
    if named and named != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    grace, preconditions, options_dry_run = delete_options(eviction)
    dry_run = dry_run or options_dry_run
    if dry_run:
        current = await pods.get(namespace, name)
        _check(preconditions, current)
    else:
        updated = await pods.mutate(namespace, name, lambda pod: _mark_disrupted(
            pod, preconditions))
        if preconditions and preconditions.resource_version:
            # we changed the pod ourselves: the caller's version is the one before our write
            preconditions = Preconditions(uid=preconditions.uid,
                                          resource_version=updated["metadata"]["resourceVersion"])
    await pods.delete(namespace, name, grace=grace, preconditions=preconditions, dry_run=dry_run)
    return dict(SUCCESS)


def _check(preconditions: Preconditions | None, pod: Obj) -> None:
    if preconditions:
        try:
            preconditions.check(pod)
        except PreconditionFailed as exc:
            name = pod["metadata"].get("name", "")
            raise errors.conflict("pods", name, str(exc)) from None


def _mark_disrupted(pod: Obj, preconditions: Preconditions | None) -> Obj:
    """Add (or keep) the DisruptionTarget=True condition, after checking ``preconditions``
    against the stored pod (raises PreconditionFailed, which the store turns into 409)."""
    if preconditions:
        preconditions.check(pod)
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == DISRUPTION_TARGET["type"]:
            if cond.get("status") != DISRUPTION_TARGET["status"]:
                cond.update(DISRUPTION_TARGET, lastTransitionTime=now_rfc3339())
            else:
                cond.update(reason=DISRUPTION_TARGET["reason"],
                            message=DISRUPTION_TARGET["message"])
            return pod
    conditions.append({**DISRUPTION_TARGET, "lastProbeTime": None,
                       "lastTransitionTime": now_rfc3339()})
    return pod
