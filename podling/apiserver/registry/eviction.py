"""pods/eviction: delete a pod gracefully through the policy/v1 Eviction API (``kubectl drain``).

    POST /api/v1/namespaces/{ns}/pods/{name}/eviction
    {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": …, "namespace": …},
     "deleteOptions": {"gracePeriodSeconds": …, "preconditions": {…}, "dryRun": ["All"]}}
    → 201 {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

podling has no PodDisruptionBudgets, so an eviction is never refused with 429. As in
Kubernetes' EvictionREST it is two writes through the registry pipeline: the
``DisruptionTarget`` condition through the pod status strategy (:class:`PodEvictionStrategy`,
preconditions checked against the stored pod), then a delete with the given options, exactly
as ``DELETE pods/{name}`` would (grace period, preconditions). A pod already terminating
answers 201 too; a missing pod 404; failed preconditions 409.
"""

from __future__ import annotations

from ...api import errors, schema
from ...api.resources import Resource
from ...storage.interface import Preconditions
from ...util.timefmt import now_rfc3339
from .pods import PodStatusStrategy
from .store import RegistryStore
from .strategy import Obj

#: Only for decoding request bodies; served solely as the pods/eviction subresource.
EVICTIONS = Resource("policy", "v1", "evictions", "eviction", "Eviction", True, schema.EVICTION,
                     verbs=("create",))
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True",
                     "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "code": 201}


class PodEvictionStrategy(PodStatusStrategy):
    """The status update an eviction makes before deleting the pod. Pure."""

    def check_preconditions(self, pod: Obj, preconditions: Preconditions | None) -> None:
        """409 Conflict (Kubernetes' eviction messages) when ``preconditions`` do not hold."""
        if preconditions is None:
            return
        meta = pod["metadata"]
        if preconditions.uid and preconditions.uid != meta.get("uid"):
            detail = (f"the UID in the precondition ({preconditions.uid}) does not match the "
                      f"UID in record ({meta.get('uid')}). The object might have been deleted "
                      f"and then recreated")
        elif preconditions.resource_version and \
                preconditions.resource_version != meta.get("resourceVersion"):
            detail = (f"the ResourceVersion in the precondition "
                      f"({preconditions.resource_version}) does not match the ResourceVersion "
                      f"in record ({meta.get('resourceVersion')}). The object might have been "
                      f"modified")
        else:
            return
        raise errors.conflict("Pod", meta.get("name", ""), detail)

    def disrupted(self, pod: Obj, preconditions: Preconditions | None) -> Obj:
        """``pod`` (a copy of the stored one) with DisruptionTarget=True added or kept,
        after checking ``preconditions`` against it."""
        self.check_preconditions(pod, preconditions)
        conditions = pod.setdefault("status", {}).setdefault("conditions", [])
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


async def evict(pods: RegistryStore, namespace: str | None, name: str, eviction: Obj, *,
                dry_run: bool = False) -> Obj:
    """Evict pod ``namespace/name`` as ``eviction`` asks; returns the Status to answer (201).

    400 when the Eviction names another pod; 404 when the pod does not exist; 409 when
    the preconditions do not hold. ``dry_run`` (or deleteOptions.dryRun) writes nothing."""
    named = (eviction.get("metadata") or {}).get("name")
    if named and named != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    grace, preconditions, options_dry_run = delete_options(eviction)
    strategy = pods.strategy_for("eviction")
    assert isinstance(strategy, PodEvictionStrategy)
    if dry_run or options_dry_run:
        strategy.check_preconditions(await pods.get(namespace, name), preconditions)
        await pods.delete(namespace, name, grace=grace, preconditions=preconditions,
                          dry_run=True)
        return dict(SUCCESS)
    updated = await pods.update(namespace, name,
                                lambda pod: strategy.disrupted(pod, preconditions),
                                strategy=strategy)
    if preconditions and preconditions.resource_version:
        # we changed the pod ourselves: the caller's version is the one before our write
        preconditions = Preconditions(uid=preconditions.uid,
                                      resource_version=updated["metadata"]["resourceVersion"])
    await pods.delete(namespace, name, grace=grace, preconditions=preconditions)
    return dict(SUCCESS)
