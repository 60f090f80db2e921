"""Node lifecycle: nodes whose agent went silent become Unknown and unreachable.

An API client like the scheduler (Kubernetes' node lifecycle controller in the controller
manager): it reads nodes and leases and writes nodes over HTTP. Per node:

    reachable ──no heartbeat for grace_seconds──▶ unreachable
       ▲          (Ready, MemoryPressure, DiskPressure, PIDPressure := Unknown,
       │           reason NodeStatusUnknown; taints node.kubernetes.io/unreachable
       │           NoSchedule + NoExecute added)
       └──── heartbeat again and Ready no longer Unknown (the agent reported) ◀──┘
                  (the unreachable taints removed)

A heartbeat is a change of the node's Lease ``spec.renewTime`` in ``kube-node-lease`` or
of its Ready condition's ``lastHeartbeatTime``. As in Kubernetes, the controller times the
silence on its own clock from the moment it *saw* the last change (never by comparing the
agent's timestamps with its own clock), so clock skew between machines cannot mark a node
dead; a node it has just started watching gets a full grace period.

Level-triggered: every ``period`` seconds one :meth:`NodeLifecycleController.sync` pass
lists nodes and leases (two LIST requests) and converges each node; a failed pass is retried
on the next. Conditions are written through nodes/status, taints through the node itself.
Pods on unreachable nodes are not evicted (no tolerationSeconds handling).
"""

from __future__ import annotations

import logging
from typing import Any

from ..api import errors
from ..api.resources import LEASES, NODES
from ..api.types import Obj
from ..client import ApiClient
from ..util.clock import Clock, SystemClock
from ..util.timefmt import epoch_rfc3339
from .apply import update_object
from .periodic import PeriodicController

log = logging.getLogger(__name__)


LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Kubelet never posted node status."
DEFAULT_GRACE_SECONDS = 40.0  # kube-controller-manager's --node-monitor-grace-period
MAX_PERIOD_SECONDS = 5.0  # kube-controller-manager's --node-monitor-period


def default_period(grace_seconds: float) -> float:
    """How often to re-check: a quarter of the grace, between 0.2 s and 5 s."""
    return min(MAX_PERIOD_SECONDS, max(0.2, grace_seconds / 4))


def heartbeat(node: Obj, lease: Obj | None) -> tuple[Any, Any]:
    """What changes whenever the agent is alive: (lease renewTime, Ready lastHeartbeatTime)."""
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    ready = condition(node, "Ready") or {}
    return renew, ready.get("lastHeartbeatTime")


def condition(node: Obj, type_: str) -> Obj | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def missing_unreachable_taints(node: Obj) -> bool:
    taints = (node.get("spec") or {}).get("taints") or []
    present = {(t.get("key"), t.get("effect")) for t in taints}
    return not {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")} <= present


def has_unreachable_taint(node: Obj) -> bool:
    return any(t.get("key") == UNREACHABLE_TAINT
               for t in (node.get("spec") or {}).get("taints") or [])


# -- pure transitions (each returns the changed object; no I/O) --------------------------------

def mark_unknown(node: Obj, now: str) -> Obj:
    """Set the four kubelet conditions to Unknown in place, as Kubernetes does.

    A condition already Unknown is left as it is (its lastTransitionTime stays); one that
    was never reported is added with reason NodeStatusNeverUpdated; heartbeat times are kept."""
    status = node.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    for type_ in CONDITION_TYPES:
        cond = condition(node, type_)
        if cond is None:
            conditions.append({"type": type_, "status": "Unknown", "reason": NEVER_REASON,
                               "message": NEVER_MESSAGE,
                               "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                               "lastTransitionTime": now})
        elif cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE,
                        lastTransitionTime=now)
    return node


def add_unreachable_taints(node: Obj, now: str) -> Obj:
    """Add ``node.kubernetes.io/unreachable`` NoSchedule and NoExecute (with timeAdded)
    in place, each only if missing."""
    taints = node.setdefault("spec", {}).setdefault("taints", [])
    present = {(t.get("key"), t.get("effect")) for t in taints}
    if (UNREACHABLE_TAINT, "NoSchedule") not in present:
        taints.append({"key": UNREACHABLE_TAINT, "effect": "NoSchedule"})
    if (UNREACHABLE_TAINT, "NoExecute") not in present:
        taints.append({"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": now})
    return node


def remove_unreachable_taints(node: Obj) -> Obj:
    """Drop every ``node.kubernetes.io/unreachable`` taint in place (and an emptied list)."""
    spec = node.setdefault("spec", {})
    kept = [t for t in spec.get("taints") or [] if t.get("key") != UNREACHABLE_TAINT]
    if kept:
        spec["taints"] = kept
    else:
        spec.pop("taints", None)
    return node


# -- the controller ----------------------------------------------------------------------------

class NodeLifecycleController(PeriodicController):
    """Marks silent nodes Unknown + unreachable and clears the taints when they come back.

    ``client`` is the caller's (never closed here); ``clock`` times the silence (a
    FakeClock in tests, with :meth:`sync` called directly). :meth:`start` / :meth:`stop` run
    and cancel the periodic loop; ``stop`` is idempotent.
    """

    name = "node-lifecycle-controller"

    def __init__(self, client: ApiClient, *,
                 grace_seconds: float = DEFAULT_GRACE_SECONDS, clock: Clock | None = None,
                 period: float | None = None) -> None:
        self._client = client
        self.grace_seconds = grace_seconds
        self._clock = clock or SystemClock()
        self._period = period if period is not None else default_period(grace_seconds)
        self._seen: dict[str, tuple[tuple[Any, Any], float]] = {}  # name → (heartbeat, when)

    async def sync(self) -> None:
        """One level-triggered pass over every node. Raises ApiError / ApiConnectionError."""
        nodes, _ = await self._client.list(NODES)
        leases, _ = await self._client.list(LEASES, LEASE_NAMESPACE)
        by_name = {lease["metadata"]["name"]: lease for lease in leases}
        now = self._clock.now()
        names = set()
        for node in nodes:
            name = node["metadata"]["name"]
            names.add(name)
            silent = self._silent_for(name, heartbeat(node, by_name.get(name)), now)
            await self._converge(node, silent > self.grace_seconds, now)
        for gone in set(self._seen) - names:
            del self._seen[gone]

    def _silent_for(self, name: str, beat: tuple[Any, Any], now: float) -> float:
        """Seconds since this node's heartbeat last changed, as observed by this controller."""
        seen = self._seen.get(name)
        if seen is None or seen[0] != beat:
            self._seen[name] = (beat, now)
            return 0.0
        return now - seen[1]

    async def _converge(self, node: Obj, unreachable: bool, now: float) -> None:
        name = node["metadata"]["name"]
        stamp = epoch_rfc3339(now)
        try:
            if unreachable:
                if any((condition(node, t) or {}).get("status") != "Unknown"
                       for t in CONDITION_TYPES):
                    log.info("node %s: no heartbeat for %ss; marking it Unknown", name,
                             self.grace_seconds)
                    node = await update_object(self._client, NODES, node,
                                               lambda n: mark_unknown(n, stamp),
                                               subresource="status")
                if missing_unreachable_taints(node):
                    await update_object(self._client, NODES, node,
                                        lambda n: add_unreachable_taints(n, stamp))
            elif has_unreachable_taint(node) and \
                    (condition(node, "Ready") or {}).get("status") in ("True", "False"):
                log.info("node %s: reachable again; removing the unreachable taints", name)
                await update_object(self._client, NODES, node, remove_unreachable_taints)
        except errors.ApiError as exc:
            if exc.code != 404:  # a node deleted meanwhile is simply gone
                raise
