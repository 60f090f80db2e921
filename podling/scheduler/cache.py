"""The scheduler's view of the cluster: NodeInfo per node with the pods bound or assumed
to it, kept current from the node and pod informers.

"Assume" (Kubernetes' optimistic binding): once a node is chosen the pod is accounted on
it at once, so the next cycle sees the resources as used while the bind request is in
flight. The informer's update showing ``spec.nodeName`` confirms it; a failed bind
``forget``s it. Pods in a terminal phase (Succeeded / Failed) free their resources.

Who may call: the scheduler's event loop only; no method awaits.
"""

from __future__ import annotations

import copy

from .framework import NodeInfo, PodInfo
from .podutil import Obj, is_terminal, meta, node_name_of, pod_uid

SCHEDULING_FIELDS = ("labels", "taints", "unschedulable", "allocatable", "ready")


def scheduling_view(node: Obj) -> dict:
    """What of a node the filters and scorers read: its changes can make pods fit."""
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {"labels": meta(node).get("labels") or {}, "taints": spec.get("taints") or [],
            "unschedulable": bool(spec.get("unschedulable")),
            "allocatable": status.get("allocatable") or status.get("capacity") or {},
            "ready": ready[0] if ready else None}


def node_changed(old: Obj | None, new: Obj) -> bool:
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

    def set_node(self, node: Obj) -> None:
        name = meta(node).get("name") or ""
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

    def update_pod(self, pod: Obj) -> bool:
        """Account an assigned pod on its node (confirming an assumption), or drop it when
        it is terminal or unassigned. True when resources were freed."""
        uid = pod_uid(pod)
        node = node_name_of(pod)
        if not node or is_terminal(pod):
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

    def assume(self, pod: Obj, node: str) -> None:
        """Account ``pod`` on ``node`` before the bind has happened."""
        assumed = copy.copy(pod)
        assumed["spec"] = dict(pod.get("spec") or {}, nodeName=node)
        self.update_pod(assumed)
        self._assumed.add(pod_uid(pod))

    def forget(self, pod: Obj) -> None:
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
