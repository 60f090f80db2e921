"""Small fluent builders for Pod and Node dicts (docs/architecture.md §5)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from podling.api.views import NodeView, PodView

Obj = dict[str, Any]
_uids = itertools.count(1)


class PodBuilder:
    def __init__(self, name: str, namespace: str = "default") -> None:
        self.obj: Obj = {"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": namespace,
                                      "uid": f"uid-{name}-{next(_uids)}"},
                         "spec": {"schedulerName": "default-scheduler",
                                  "containers": [{"name": "c", "image": "busybox"}]},
                         "status": {"phase": "Pending"}}

    @property
    def spec(self) -> Obj:
        return self.obj["spec"]

    def node(self, name: str) -> "PodBuilder":
        self.spec["nodeName"] = name
        return self

    def selector(self, **labels: str) -> "PodBuilder":
        self.spec["nodeSelector"] = dict(labels)
        return self

    def labels(self, **labels: str) -> "PodBuilder":
        self.obj["metadata"]["labels"] = dict(labels)
        return self

    def owner(self, uid: str) -> "PodBuilder":
        self.obj["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid,
             "controller": True}]
        return self

    def requests(self, container: int = 0, **res: str) -> "PodBuilder":
        c = self.spec["containers"][container]
        c.setdefault("resources", {})["requests"] = dict(res)
        return self

    def container(self, name: str, **requests: str) -> "PodBuilder":
        c: Obj = {"name": name, "image": "busybox"}
        if requests:
            c["resources"] = {"requests": dict(requests)}
        self.spec["containers"].append(c)
        return self

    def init(self, name: str, sidecar: bool = False, **requests: str) -> "PodBuilder":
        c: Obj = {"name": name, "image": "busybox", "resources": {"requests": dict(requests)}}
        if sidecar:
            c["restartPolicy"] = "Always"
        self.spec.setdefault("initContainers", []).append(c)
        return self

    def overhead(self, **res: str) -> "PodBuilder":
        self.spec["overhead"] = dict(res)
        return self

    def host_port(self, port: int, protocol: str = "TCP", ip: str = "") -> "PodBuilder":
        entry: Obj = {"containerPort": port, "hostPort": port, "protocol": protocol}
        if ip:
            entry["hostIP"] = ip
        self.spec["containers"][0].setdefault("ports", []).append(entry)
        return self

    def toleration(self, key: str = "", operator: str = "Equal", value: str = "",
                   effect: str = "") -> "PodBuilder":
        t = {k: v for k, v in {"key": key, "operator": operator, "value": value,
                               "effect": effect}.items() if v}
        self.spec.setdefault("tolerations", []).append(t)
        return self

    def required(self, *terms: Obj) -> "PodBuilder":
        aff = self.spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": list(terms)}
        return self

    def preferred(self, weight: int, term: Obj) -> "PodBuilder":
        aff = self.spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        aff.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {"weight": weight, "preference": term})
        return self

    def phase(self, phase: str) -> "PodBuilder":
        self.obj["status"]["phase"] = phase
        return self

    def build(self) -> Obj:
        return copy.deepcopy(self.obj)

    def view(self) -> PodView:
        """The pod as the scheduler reads it (see podling.api.views)."""
        return PodView.from_obj(self.build())


class NodeBuilder:
    def __init__(self, name: str) -> None:
        self.obj: Obj = {"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": name,
                                      "labels": {"kubernetes.io/hostname": name}},
                         "spec": {},
                         "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                    "conditions": [{"type": "Ready", "status": "True"}]}}

    def labels(self, **labels: str) -> "NodeBuilder":
        self.obj["metadata"]["labels"].update(labels)
        return self

    def taint(self, key: str, value: str = "", effect: str = "NoSchedule") -> "NodeBuilder":
        t = {"key": key, "effect": effect}
        if value:
            t["value"] = value
        self.obj["spec"].setdefault("taints", []).append(t)
        return self

    def cordon(self) -> "NodeBuilder":
        self.obj["spec"]["unschedulable"] = True
        return self

    def ready(self, status: str | None) -> "NodeBuilder":
        conds = [] if status is None else [{"type": "Ready", "status": status}]
        self.obj["status"]["conditions"] = conds
        return self

    def allocatable(self, **res: str) -> "NodeBuilder":
        self.obj["status"]["allocatable"].update(res)
        self.obj["status"]["capacity"].update(res)
        return self

    def build(self) -> Obj:
        return copy.deepcopy(self.obj)

    def view(self) -> NodeView:
        return NodeView.from_obj(self.build())


def make_pod(name: str = "p", namespace: str = "default") -> PodBuilder:
    return PodBuilder(name, namespace)


def make_node(name: str = "n1") -> NodeBuilder:
    return NodeBuilder(name)


def expr(key: str, operator: str, *values: str) -> Obj:
    e: Obj = {"key": key, "operator": operator}
    if values:
        e["values"] = list(values)
    return e


def term(*expressions: Obj, fields: list[Obj] | None = None) -> Obj:
    t: Obj = {}
    if expressions:
        t["matchExpressions"] = list(expressions)
    if fields:
        t["matchFields"] = fields
    return t
