"""The scheduler's view of the cluster: NodeInfo per node with the pods bound or assumed
to it, kept current from the node and pod informers.

"Assume" (Kubernetes' optimistic binding): once a node is chosen the pod is accounted on
it at once, so the next cycle sees the resources as used while the bind request is in
flight. The informer's update showing ``spec.nodeName`` confirms it; a failed bind
``forget``s it. Pods in a terminal phase (Succeeded / Failed) free their resources.

Who may call: the scheduler's event loop only; no method awaits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..api.views import NodeView, PodView
from .framework import NodeInfo, PodInfo
from .podutil import pod_uid

SCHEDULING_FIELDS = ("labels", "taints", "unschedulable", "allocatable", "ready")


def scheduling_view(node: NodeView) -> dict[str, Any]:
    """What of a node the filters and scorers read: its changes can make pods fit."""
    return {"labels": node.labels, "taints": node.taints, "unschedulable": node.unschedulable,
            "allocatable": node.schedulable_resources, "ready": node.ready_status}


def node_changed(old: NodeView | None, new: NodeView) -> bool:
    """True when ``new`` differs from ``old`` in a way that matters for scheduling
    (labels, taints, cordon, allocatable, readiness) — heartbeats do not."""
    return old is None or scheduling_view(old) != scheduling_view(new)


class SchedulerCache:
    """NodeInfos by node name, plus where each pod (by uid) is accounted."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}
        self._assumed: set[str] = set()

    # -- nodes -----------------------------------------------------------------------------

    def set_node(self, node: NodeView) -> None:
        name = node.name
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo()
        info.set_node(node)

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None  # keep accounting for pods that still name it
        else:
            del self.nodes[name]

    def snapshot(self) -> list[NodeInfo]:
        """The NodeInfos that have a Node (shared objects: read them before the next
        change, i.e. within one synchronous scheduling cycle)."""
        return [info for info in self.nodes.values() if info.node is not None]

    # -- pods ------------------------------------------------------------------------------

    def update_pod(self, pod: PodView) -> bool:
        """Account an assigned pod on its node (confirming an assumption), or drop it when
        it is terminal or unassigned. True when resources were freed."""
        uid = pod_uid(pod)
        node = pod.spec.node_name
        if not node or pod.status.terminal:
            return self.remove_pod(uid)
        self._assumed.discard(uid)
        if self._pod_node.get(uid) not in (None, node):
            self.remove_pod(uid)
        self._info(node).add_pod(PodInfo.of(pod))
        self._pod_node[uid] = node
        return False

    def remove_pod(self, uid: str) -> bool:
        """Stop accounting the pod. True when it was accounted somewhere."""
        self._assumed.discard(uid)
        node = self._pod_node.pop(uid, None)
        if node is None:
            return False
        info = self.nodes.get(node)
        if info is not None:
            info.remove_pod(uid)
            if info.node is None and not info.pods:
                del self.nodes[node]
        return True

    def assume(self, pod: PodView, node: str) -> None:
        """Account ``pod`` on ``node`` before the bind has happened."""
        assumed = dataclasses.replace(pod, spec=dataclasses.replace(pod.spec, node_name=node))
        self.update_pod(assumed)
        self._assumed.add(pod_uid(pod))

    def forget(self, pod: PodView) -> None:
        """Undo ``assume`` (the bind failed). A pod the informer has meanwhile shown as
        bound is kept."""
        uid = pod_uid(pod)
        if uid in self._assumed:
            self.remove_pod(uid)

    def is_assumed(self, uid: str) -> bool:
        return uid in self._assumed

    def node_of(self, uid: str) -> str | None:
        return self._pod_node.get(uid)

    def _info(self, name: str) -> NodeInfo:
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo()
            info.name = name
        return info
