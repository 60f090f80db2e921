"""The scheduling framework: Status values, NodeInfo, plugin protocols, one scheduling cycle.

A cycle for one pod (Kubernetes' ``schedulePod``)::

    for each node:  run the filters in order; the first that returns a Status (not None)
                    decides the node is infeasible, and its Status is remembered
    no feasible node ──▶ FitError(per-node statuses)   (the pod stays Pending)
    one feasible    ──▶ that node
    several         ──▶ each score plugin scores every feasible node, normalises to
                        0..100, times its weight; the highest total wins (ties: random)

Plugins return values, never raise for an expected outcome (docs/architecture.md §5): a filter
returns ``None`` (fits) or a :class:`Status`; a scorer returns an int.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, TypeVar

from ..api.views import NodeView, PodView, TaintView
from . import podutil
from .podutil import HostPort, Resources

MAX_NODE_SCORE = 100
NO_NODES_MESSAGE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_PREEMPTION_VICTIMS = "No preemption victims found for incoming pod"

T = TypeVar("T")


class Code(enum.IntEnum):
    """Kubernetes' framework codes. UNSCHEDULABLE_AND_UNRESOLVABLE means preempting other
    pods on that node would not help (the node itself does not suit the pod)."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3


@dataclass(frozen=True)
class Status:
    """The outcome of a plugin for one node. ``reasons`` feed the FailedScheduling
    histogram; ``plugin`` names who decided (filled in by the framework)."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str) -> "Status":
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> "Status":
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)

    @classmethod
    def error(cls, reason: str) -> "Status":
        return cls(Code.ERROR, (reason,))

    @property
    def is_success(self) -> bool:
        return self.code == Code.SUCCESS


def is_success(status: Status | None) -> bool:
    return status is None or status.is_success


@dataclass
class PodInfo:
    """A pod with the facts the plugins need, computed once per pod object."""

    pod: PodView
    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    owner: str
    requests: Resources
    non_zero: tuple[int, int]
    ports: list[HostPort]

    @classmethod
    def of(cls, pod: PodView) -> "PodInfo":
        meta = pod.metadata
        return cls(pod, podutil.pod_uid(pod), meta.namespace, meta.name, dict(meta.labels),
                   meta.controller_uid, podutil.spec_requests(pod.spec),
                   podutil.non_zero_requests(pod.spec), podutil.host_ports(pod.spec))

    @property
    def group(self) -> tuple | None:
        """The spreading group: the controller (namespace + owner uid), else the namespace
        and the exact non-empty label set; None for a pod with neither."""
        if self.owner:
            return ("owner", self.namespace, self.owner)
        if self.labels:
            return ("labels", self.namespace, frozenset(self.labels.items()))
        return None


class NodeInfo:
    """A node plus the pods bound (or assumed) to it and what they request.

    ``add_pod`` / ``remove_pod`` keep ``requested``, ``non_zero_requested`` and
    ``used_ports`` in step; a pod is identified by uid, adding it twice replaces it.
    ``node`` may be None when pods are known for a node that is not (or no longer) there.
    """

    def __init__(self, node: NodeView | None = None, pods: Iterable[PodView] = ()) -> None:
        self.node: NodeView | None = None
        self.name = ""
        self.labels: dict[str, str] = {}
        self.taints: tuple[TaintView, ...] = ()
        self.allocatable: Resources = {}
        self.pods: dict[str, PodInfo] = {}
        self.requested: Resources = {}
        self.non_zero_requested: list[int] = [0, 0]
        self.used_ports: list[HostPort] = []
        self.groups: dict[tuple, int] = {}  # PodInfo.group -> pods of it here
        if node is not None:
            self.set_node(node)
        for pod in pods:
            self.add_pod(PodInfo.of(pod))

    def set_node(self, node: NodeView) -> None:
        self.node = node
        self.name = node.name
        self.labels = dict(node.labels)
        self.taints = node.taints
        self.allocatable = podutil.resource_list(node.schedulable_resources)

    @property
    def allowed_pods(self) -> int:
        return self.allocatable.get(podutil.PODS, 0)

    def add_pod(self, info: PodInfo) -> None:
        if info.uid in self.pods:
            self.remove_pod(info.uid)
        self.pods[info.uid] = info
        self._account(info, 1)

    def remove_pod(self, uid: str) -> PodInfo | None:
        info = self.pods.pop(uid, None)
        if info is not None:
            self._account(info, -1)
        return info

    def _account(self, info: PodInfo, sign: int) -> None:
        for name, value in info.requests.items():
            self.requested[name] = self.requested.get(name, 0) + sign * value
        self.non_zero_requested[0] += sign * info.non_zero[0]
        self.non_zero_requested[1] += sign * info.non_zero[1]
        group = info.group
        if group is not None:
            self.groups[group] = self.groups.get(group, 0) + sign
        if sign > 0:
            self.used_ports.extend(info.ports)
        else:
            for port in info.ports:
                self.used_ports.remove(port)

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)}, requested={self.requested})"


class CycleState:
    """Per-cycle scratch space shared by the plugins (Kubernetes' CycleState):
    ``state.memo(key, compute)`` computes a pod-wide fact once per cycle."""

    def __init__(self, pod_info: PodInfo) -> None:
        self.pod_info = pod_info
        self._data: dict[str, Any] = {}

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        if key not in self._data:
            self._data[key] = compute()
        return self._data[key]


class FilterPlugin(Protocol):
    """Decides whether the pod may run on one node: None = fits."""

    name: str

    def filter(self, state: CycleState, pod: PodView, node: NodeInfo) -> Status | None: ...


class ScorePlugin(Protocol):
    """Ranks feasible nodes. ``score`` is a raw int; ``normalize`` rewrites the scores of
    all feasible nodes in place into 0..MAX_NODE_SCORE."""

    name: str

    def score(self, state: CycleState, pod: PodView, node: NodeInfo) -> int: ...

    def normalize(self, state: CycleState, pod: PodView, scores: dict[str, int]) -> None: ...


@dataclass
class Profile:
    """The plugins of one scheduler profile: filters in order, scorers with weights."""

    filters: list[FilterPlugin]
    scorers: list[tuple[ScorePlugin, int]] = field(default_factory=list)


def default_normalize(scores: dict[str, int], reverse: bool = False) -> None:
    """Kubernetes' ``DefaultNormalizeScore``: scale so the highest is 100 (all 0 stays 0,
    or all 100 when reversed); ``reverse`` flips so the lowest raw score wins."""
    highest = max(scores.values(), default=0)
    for name, value in scores.items():
        if highest == 0:
            scores[name] = MAX_NODE_SCORE if reverse else 0
            continue
        scaled = MAX_NODE_SCORE * value // highest
        scores[name] = MAX_NODE_SCORE - scaled if reverse else scaled


@dataclass
class FitError:
    """Why no node suits the pod: the deciding Status of every node."""

    statuses: dict[str, Status]

    def message(self, num_nodes: int | None = None) -> str:
        """Kubernetes' FailedScheduling text, preemption message included, e.g.
        ``0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are
        available: 3 No preemption victims found for incoming pod.``"""
        n = len(self.statuses) if num_nodes is None else num_nodes
        if n == 0:
            return NO_NODES_MESSAGE
        reasons = [r for status in self.statuses.values() for r in status.reasons]
        msg = availability(n, reasons)
        return f"{msg} preemption: {availability(n, self.preemption_reasons())}"

    def preemption_reasons(self) -> list[str]:
        """What default preemption (which podling does not perform) reports per node:
        unresolvable nodes cannot be helped; elsewhere there is nothing to evict."""
        return [PREEMPTION_NOT_HELPFUL if s.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
                else NO_PREEMPTION_VICTIMS for s in self.statuses.values()]


def histogram(reasons: Iterable[str]) -> str:
    """``"<count> <reason>"`` per distinct reason, sorted as strings, comma-joined."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))


def availability(num_nodes: int, reasons: Iterable[str]) -> str:
    """``0/<N> nodes are available: <histogram>.``"""
    hist = histogram(reasons)
    return f"0/{num_nodes} nodes are available:" + (f" {hist}." if hist else "")


@dataclass
class ScheduleResult:
    """``node`` is the chosen node's name, or None with ``fit_error`` set."""

    node: str | None
    fit_error: FitError | None = None
    feasible: int = 0
    scores: dict[str, int] = field(default_factory=dict)


def run_filters(profile: Profile, state: CycleState, pod: PodView, node: NodeInfo
                ) -> Status | None:
    """The first failing filter's Status (with its plugin name), or None."""
    for plugin in profile.filters:
        status = plugin.filter(state, pod, node)
        if not is_success(status):
            assert status is not None
            return Status(status.code, status.reasons, plugin.name)
    return None


def score_nodes(profile: Profile, state: CycleState, pod: PodView, nodes: list[NodeInfo]
                ) -> dict[str, int]:
    """The weighted, normalised total of every scorer for each node."""
    totals = {node.name: 0 for node in nodes}
    for plugin, weight in profile.scorers:
        scores = {node.name: plugin.score(state, pod, node) for node in nodes}
        plugin.normalize(state, pod, scores)
        for name, value in scores.items():
            totals[name] += weight * value
    return totals


def select_host(totals: dict[str, int], rng: random.Random | None = None) -> str:
    """The highest-scoring node, a uniformly random one among ties."""
    best = max(totals.values())
    winners = [name for name, value in totals.items() if value == best]
    return winners[0] if len(winners) == 1 else (rng or random).choice(winners)


def schedule_one(pod: PodView, nodes: list[NodeInfo], plugins: Profile, *,
                 rng: random.Random | None = None) -> ScheduleResult:
    """Pick a node for ``pod`` among ``nodes`` (those with a Node object). Pure: reads
    the NodeInfos, changes nothing."""
    candidates = [n for n in nodes if n.node is not None]
    if not candidates:
        return ScheduleResult(None, FitError({}))
    state = CycleState(PodInfo.of(pod))
    feasible: list[NodeInfo] = []
    statuses: dict[str, Status] = {}
    for node in candidates:
        status = run_filters(plugins, state, pod, node)
        if status is None:
            feasible.append(node)
        else:
            statuses[node.name] = status
    if not feasible:
        return ScheduleResult(None, FitError(statuses))
    if len(feasible) == 1:
        return ScheduleResult(feasible[0].name, feasible=1)
    totals = score_nodes(plugins, state, pod, feasible)
    return ScheduleResult(select_host(totals, rng), feasible=len(feasible), scores=totals)
