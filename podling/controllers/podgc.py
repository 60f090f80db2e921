"""Pod garbage collection: pods bound to a node that no longer exists are deleted.

An API client like the scheduler (Kubernetes' PodGC controller, ``gcOrphaned``): it lists
pods and nodes and writes pods over HTTP. A pod whose ``spec.nodeName`` names no Node is
*orphaned*; its node is quarantined first, so that a node object being re-created, or a
list that raced with a node's registration, does not cost its pods::

    node missing from the node list ──▶ quarantined (first seen missing now)
    still missing QUARANTINE_SECONDS later and GET node → 404
        ──▶ each of its pods: status phase Failed (unless already terminal) with the
            condition DisruptionTarget=True, reason DeletionByPodGC, message "PodGC: node
            no longer exists"; then DELETE with grace period 0
    node back in the list ──▶ quarantine forgotten

Level-triggered: every ``period`` seconds (Kubernetes' gcCheckPeriod, 20 s) one
:meth:`PodGCController.sync` pass lists pods and nodes; a failed pass is retried on the next.
The quarantine is timed on the controller's own clock, from the pass that first saw the node
missing. Terminated-pod thresholds and out-of-service nodes are not handled.
"""

from __future__ import annotations

import logging

from ..api import errors
from ..api.pods import is_terminal
from ..api.resources import NODES, PODS
from ..api.types import Obj
from ..client import ApiClient
from ..util.clock import Clock, SystemClock
from ..util.timefmt import epoch_rfc3339
from .periodic import PeriodicController

log = logging.getLogger(__name__)

QUARANTINE_SECONDS = 40.0  # Kubernetes' podgc quarantineTime
PERIOD_SECONDS = 20.0  # Kubernetes' podgc gcCheckPeriod
REASON = "DeletionByPodGC"
MESSAGE = "PodGC: node no longer exists"


def orphan_status_patch(pod: Obj, now: str) -> Obj | None:
    """The status patch PodGC sends before deleting an orphaned pod (None when the pod is
    terminal already): phase Failed and the DisruptionTarget condition."""
    if is_terminal(pod):
        return None
    return {"status": {"phase": "Failed", "conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": REASON, "message": MESSAGE,
        "lastTransitionTime": now}]}}


class PodGCController(PeriodicController):
    """Deletes the pods of nodes that are gone (see the module docstring).

    ``client`` is the caller's (never closed here); ``clock`` times the quarantine (a
    FakeClock in tests, with :meth:`sync` called directly). :meth:`start` / :meth:`stop`
    run and cancel the periodic loop; ``stop`` is idempotent.
    """

    name = "pod-gc-controller"

    def __init__(self, client: ApiClient, *, quarantine_seconds: float = QUARANTINE_SECONDS,
                 period: float = PERIOD_SECONDS, clock: Clock | None = None) -> None:
        self._client = client
        self.quarantine_seconds = quarantine_seconds
        self._period = period
        self._clock = clock or SystemClock()
        self._missing_since: dict[str, float] = {}  # node name → when first seen missing

    async def sync(self) -> None:
        """One pass: quarantine missing nodes, delete the pods of those gone for good.
        Raises ApiError / ApiConnectionError."""
        pods, _ = await self._client.list(PODS)
        nodes, _ = await self._client.list(NODES)
        existing = {n["metadata"]["name"] for n in nodes}
        orphans: dict[str, list[Obj]] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in existing:
                orphans.setdefault(node, []).append(pod)
        now = self._clock.now()
        for name in set(self._missing_since) - set(orphans):
            del self._missing_since[name]
        for name, node_pods in sorted(orphans.items()):
            since = self._missing_since.setdefault(name, now)
            if now - since >= self.quarantine_seconds and await self._node_gone(name):
                for pod in node_pods:
                    await self._delete_orphan(pod, name, now)

    async def _node_gone(self, name: str) -> bool:
        """kubelet-independent check after the quarantine: GET the node, 404 means gone."""
        try:
            await self._client.get(NODES, name)
        except errors.ApiError as exc:
            if exc.code == 404:
                return True
            raise
        self._missing_since.pop(name, None)
        return False

    async def _delete_orphan(self, pod: Obj, node: str, now: float) -> None:
        meta = pod["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        log.info("found orphaned pod %s/%s assigned to the node %s, deleting", namespace, name,
                 node)
        try:
            patch = orphan_status_patch(pod, epoch_rfc3339(now))
            if patch is not None:
                await self._client.patch(PODS, name, patch, namespace, subresource="status",
                                         patch_type="strategic")  # conditions merge by type
            await self._client.delete(PODS, name, namespace, grace_period=0,
                                      preconditions={"uid": meta.get("uid", "")})
        except errors.ApiError as exc:
            if exc.code not in (404, 409):  # gone, or replaced by a pod of the same name
                raise
