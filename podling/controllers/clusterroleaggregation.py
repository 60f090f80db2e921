"""The ClusterRole aggregation controller (kube-controller-manager's
``clusterrole-aggregation``).

A ClusterRole with an ``aggregationRule`` gets as its rules those of every other ClusterRole
whose labels match one of its ``clusterRoleSelectors``: the matching roles taken in name
order, each rule once. The default ``admin``, ``edit`` and ``view`` are made this way, and
a ClusterRole labelled ``rbac.authorization.k8s.io/aggregate-to-view: "true"`` extends
``view`` (and so ``edit`` and ``admin``, which aggregate it).

Any change of any ClusterRole queues every aggregating one again (:mod:`.workqueue`); the
informer's periodic SYNC does too, and a failed write is retried after ``retry_seconds``.
"""

from __future__ import annotations

from ..api import selectors
from ..api.errors import ApiError
from ..api.resources import CLUSTER_ROLES
from ..api.types import Obj
from ..client import ApiClient, Informer
from .apply import update_object
from .workqueue import WorkQueue

RESYNC_SECONDS = 300.0
RETRY_SECONDS = 1.0


def aggregated_rules(role: Obj, roles: list[Obj]) -> list[Obj]:
    """The rules ``role``'s aggregationRule gathers from ``roles``."""
    matchers = []
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        try:
            matchers.append(selectors.label_selector_from_object(selector))
        except selectors.SelectorError:
            continue  # validation refuses these; an old stored one matches nothing
    name = role["metadata"]["name"]
    rules: list[Obj] = []
    for other in sorted(roles, key=lambda r: r["metadata"]["name"]):
        labels = other["metadata"].get("labels") or {}
        if other["metadata"]["name"] == name or not any(m.matches(labels) for m in matchers):
            continue
        rules += [rule for rule in other.get("rules") or [] if rule not in rules]
    return rules


class ClusterRoleAggregationController:
    """``start`` from a running loop; ``await stop()`` is idempotent."""

    name = "clusterrole-aggregation-controller"

    def __init__(self, client: ApiClient, *, resync_seconds: float = RESYNC_SECONDS,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self._client = client
        self.roles = Informer(client, CLUSTER_ROLES, resync_period=resync_seconds)
        self.roles.add_handler(lambda type_, obj, old: self._enqueue_aggregating())
        self.queue = WorkQueue(self.name, self.ensure, retry_seconds=retry_seconds,
                               waits_for=[self.roles], describe=lambda n: f"clusterrole {n}")

    def start(self) -> None:
        self.roles.start()
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        await self.roles.stop()

    def _enqueue_aggregating(self) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule"):
                self.queue.add(role["metadata"]["name"])

    async def ensure(self, name: str) -> None:
        """Give the aggregating ClusterRole ``name`` the rules it gathers (if it changed)."""
        role = self.roles.get(None, name)
        if role is None or not role.get("aggregationRule"):
            return
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return

        def gathered(current: Obj) -> Obj:
            current["rules"] = aggregated_rules(current, self.roles.list())
            return current
        try:
            await update_object(self._client, CLUSTER_ROLES, role, gathered)
        except ApiError as exc:
            if exc.code != 404:  # deleted meanwhile: nothing to do
                raise
