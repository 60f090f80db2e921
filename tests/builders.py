"""Small fluent builders for Pod and Node JSON dicts, shared by every test (docs/architecture.md §5).

::

    pod = (make_pod("p").node("n1").selector(disk="ssd")
           .container("c", image="busybox", command=["sleep", "1000"]).build())
    node = (make_node("n1").labels(zone="a").taints({"key": "k", "effect": "NoSchedule"})
            .allocatable(cpu="2", memory="4Gi").ready().build())

Each builder method changes the object in place and returns the builder; ``build()`` returns a
deep copy, so one builder can produce several variants. The objects are what a client would
send (no server-side defaults), except that a pod has a ``uid`` (unique per builder) and
``status.phase: Pending`` so it can be fed straight to code that reads pods from the API.

A new pod has one container ``c`` (image ``busybox``); the first :meth:`PodBuilder.container`
call replaces that default container, later calls append (duplicates included: validation
tests want them). :meth:`PodBuilder.bare` strips what only the server adds (uid, status) and
the scheduler name, leaving exactly what a user writes; :meth:`NodeBuilder.bare` leaves a Node
with nothing but its name. ``set_meta`` / ``set_spec`` / ``set_status`` take any other fields,
spelled as in the API.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from podling.api.views import NodeView, PodView

Obj = dict[str, Any]
_uids = itertools.count(1)


class PodBuilder:
    """Builds a v1 Pod dict; see the module docstring."""

    def __init__(self, name: str | None, namespace: str | None = "default") -> None:
        meta: Obj = {} if name is None else {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        self.obj: Obj = {"apiVersion": "v1", "kind": "Pod",
                         "metadata": {**meta, "uid": f"uid-{name}-{next(_uids)}"},
                         "spec": {"schedulerName": "default-scheduler",
                                  "containers": [{"name": "c", "image": "busybox"}]},
                         "status": {"phase": "Pending"}}
        self._default_container = True

    @property
    def spec(self) -> Obj:
        return self.obj["spec"]

    @property
    def meta(self) -> Obj:
        return self.obj["metadata"]

    # -- metadata -----------------------------------------------------------------------

    def uid(self, uid: str) -> "PodBuilder":
        self.meta["uid"] = uid
        return self

    def no_uid(self) -> "PodBuilder":
        """Drop the uid (what a client creating the pod sends)."""
        self.meta.pop("uid", None)
        return self

    def labels(self, **labels: str) -> "PodBuilder":
        self.meta["labels"] = dict(labels)
        return self

    def annotations(self, **annotations: str) -> "PodBuilder":
        self.meta["annotations"] = dict(annotations)
        return self

    def owner(self, uid: str) -> "PodBuilder":
        """A controlling ReplicaSet owner reference with ``uid``."""
        self.meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid,
             "controller": True}]
        return self

    def set_meta(self, **fields: Any) -> "PodBuilder":
        """Any metadata fields, spelled as in the API (``generateName=…``)."""
        self.meta.update(fields)
        return self

    def finalizers(self, *names: str) -> "PodBuilder":
        self.meta["finalizers"] = list(names)
        return self

    def deleting(self, timestamp: str = "2024-01-01T00:00:00Z",
                 grace: int | None = None) -> "PodBuilder":
        """Mark the pod as being deleted (``deletionTimestamp``, optional grace period)."""
        self.meta["deletionTimestamp"] = timestamp
        if grace is not None:
            self.meta["deletionGracePeriodSeconds"] = grace
        return self

    # -- scheduling ---------------------------------------------------------------------

    def node(self, name: str) -> "PodBuilder":
        self.spec["nodeName"] = name
        return self

    def selector(self, **labels: str) -> "PodBuilder":
        self.spec["nodeSelector"] = dict(labels)
        return self

    def scheduler(self, name: str) -> "PodBuilder":
        self.spec["schedulerName"] = name
        return self

    def toleration(self, key: str = "", operator: str = "Equal", value: str = "",
                   effect: str = "") -> "PodBuilder":
        t = {k: v for k, v in {"key": key, "operator": operator, "value": value,
                               "effect": effect}.items() if v}
        self.spec.setdefault("tolerations", []).append(t)
        return self

    def required(self, *terms: Obj) -> "PodBuilder":
        """Required node affinity with these nodeSelectorTerms (see :func:`term`)."""
        aff = self.spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": list(terms)}
        return self

    def preferred(self, weight: int, term: Obj) -> "PodBuilder":
        aff = self.spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        aff.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {"weight": weight, "preference": term})
        return self

    # -- containers ---------------------------------------------------------------------

    def container(self, name: str, image: str = "busybox", *,
                  command: list[str] | None = None, args: list[str] | None = None,
                  **fields: Any) -> "PodBuilder":
        """Append a container; ``fields`` are further container fields spelled as in the
        API (``imagePullPolicy=…``, ``lifecycle=…``)."""
        if self._default_container:
            self.spec["containers"] = []
            self._default_container = False
        c: Obj = {"name": name, "image": image}
        self.spec["containers"].append(c)
        if command is not None:
            c["command"] = list(command)
        if args is not None:
            c["args"] = list(args)
        c.update(fields)
        return self

    def no_containers(self) -> "PodBuilder":
        """Drop every container (the default one included)."""
        self.spec["containers"] = []
        self._default_container = False
        return self

    def init_container(self, name: str = "init", image: str = "busybox",
                       **fields: Any) -> "PodBuilder":
        """Append an init container with any fields spelled as in the API."""
        self.spec.setdefault("initContainers", []).append({"name": name, "image": image,
                                                           **fields})
        return self

    def init(self, name: str, sidecar: bool = False, *, image: str = "busybox",
             command: list[str] | None = None, **requests: str) -> "PodBuilder":
        """Add an init container (a sidecar with ``sidecar``) requesting ``requests``."""
        c: Obj = {"name": name, "image": image, "resources": {"requests": dict(requests)}}
        if command is not None:
            c["command"] = list(command)
        if sidecar:
            c["restartPolicy"] = "Always"
        self.spec.setdefault("initContainers", []).append(c)
        return self

    def requests(self, container: int = 0, **res: str) -> "PodBuilder":
        """Resource requests of the ``container``-th container."""
        c = self.spec["containers"][container]
        c.setdefault("resources", {})["requests"] = dict(res)
        return self

    def host_port(self, port: int, protocol: str = "TCP", ip: str = "") -> "PodBuilder":
        """A hostPort (= containerPort) on the first container."""
        entry: Obj = {"containerPort": port, "hostPort": port, "protocol": protocol}
        if ip:
            entry["hostIP"] = ip
        self.spec["containers"][0].setdefault("ports", []).append(entry)
        return self

    # -- pod-level spec and status ------------------------------------------------------

    def volume(self, name: str, **source: Any) -> "PodBuilder":
        """Append a volume: ``volume("data", emptyDir={})``."""
        self.spec.setdefault("volumes", []).append({"name": name, **source})
        return self

    def restart_policy(self, policy: str) -> "PodBuilder":
        self.spec["restartPolicy"] = policy
        return self

    def grace(self, seconds: int) -> "PodBuilder":
        self.spec["terminationGracePeriodSeconds"] = seconds
        return self

    def overhead(self, **res: str) -> "PodBuilder":
        self.spec["overhead"] = dict(res)
        return self

    def set_spec(self, **fields: Any) -> "PodBuilder":
        """Any other spec fields, spelled as in the API (``hostNetwork=True``)."""
        self.spec.update(fields)
        return self

    def phase(self, phase: str) -> "PodBuilder":
        self.obj["status"]["phase"] = phase
        return self

    def no_status(self) -> "PodBuilder":
        self.obj.pop("status", None)
        return self

    def set_status(self, **fields: Any) -> "PodBuilder":
        """Any status fields, spelled as in the API (a status is added after :meth:`bare`)."""
        self.obj.setdefault("status", {}).update(fields)
        return self

    def bare(self) -> "PodBuilder":
        """Only what a user writes: no uid, no status, no schedulerName (a namespace stays;
        ``namespace=None`` in :func:`make_pod` leaves it out too)."""
        self.no_uid().no_status()
        self.spec.pop("schedulerName", None)
        return self

    def build(self) -> Obj:
        return copy.deepcopy(self.obj)

    def view(self) -> PodView:
        """The pod as the scheduler and the agent read it (podling.api.views)."""
        return PodView.from_obj(self.build())


class NodeBuilder:
    """Builds a v1 Node dict: Ready, 4 cpu, 8Gi memory, 110 pods, hostname label, no spec
    (:meth:`bare` for a Node with nothing but its name)."""

    def __init__(self, name: str) -> None:
        self.obj: Obj = {"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": name,
                                      "labels": {"kubernetes.io/hostname": name}},
                         "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                    "conditions": [{"type": "Ready", "status": "True"}]}}

    @property
    def spec(self) -> Obj:
        return self.obj.setdefault("spec", {})

    @property
    def status(self) -> Obj:
        return self.obj.setdefault("status", {})

    def bare(self) -> "NodeBuilder":
        """Only apiVersion, kind and ``metadata.name`` (no labels, no status): the smallest
        Node a client can create. Later calls add to it (``labels`` adds ``labels: {}``)."""
        self.obj["metadata"] = {"name": self.obj["metadata"]["name"]}
        self.obj.pop("spec", None)
        self.obj.pop("status", None)
        return self

    def labels(self, **labels: str) -> "NodeBuilder":
        """Add labels (the hostname label stays)."""
        self.obj["metadata"].setdefault("labels", {}).update(labels)
        return self

    def annotations(self, **annotations: str) -> "NodeBuilder":
        self.obj["metadata"].setdefault("annotations", {}).update(annotations)
        return self

    def set_meta(self, **fields: Any) -> "NodeBuilder":
        """Any metadata fields, spelled as in the API."""
        self.obj["metadata"].update(fields)
        return self

    def taint(self, key: str, value: str = "", effect: str = "NoSchedule") -> "NodeBuilder":
        t = {"key": key, "effect": effect}
        if value:
            t["value"] = value
        self.spec.setdefault("taints", []).append(t)
        return self

    def taints(self, *taints: Obj) -> "NodeBuilder":
        """Add taints given as API dicts (``{"key": …, "effect": …}``)."""
        self.spec.setdefault("taints", []).extend(copy.deepcopy(list(taints)))
        return self

    def cordon(self) -> "NodeBuilder":
        self.spec["unschedulable"] = True
        return self

    def set_spec(self, **fields: Any) -> "NodeBuilder":
        """Any spec fields, spelled as in the API (adds ``spec: {}`` even with none)."""
        self.spec.update(fields)
        return self

    def ready(self, status: str | None = "True", *, reason: str = "",
              message: str = "", **fields: Any) -> "NodeBuilder":
        """The Ready condition's status (None: no conditions at all); ``fields`` are further
        condition fields (``lastHeartbeatTime=…``)."""
        cond: Obj = {"type": "Ready", "status": status}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        cond.update(fields)
        self.status["conditions"] = [] if status is None else [cond]
        return self

    def condition(self, type: str, status: str, **fields: Any) -> "NodeBuilder":
        """Add a condition (``fields`` spelled as in the API), replacing one of that type."""
        conds = [c for c in self.status.get("conditions", []) if c["type"] != type]
        self.status["conditions"] = conds + [{"type": type, "status": status, **fields}]
        return self

    def allocatable(self, **res: str) -> "NodeBuilder":
        """Set allocatable and capacity alike."""
        self.status.setdefault("allocatable", {}).update(res)
        self.status.setdefault("capacity", {}).update(res)
        return self

    def set_status(self, **fields: Any) -> "NodeBuilder":
        """Any other status fields, spelled as in the API (``addresses=[…]``)."""
        self.status.update(fields)
        return self

    def build(self) -> Obj:
        return copy.deepcopy(self.obj)

    def view(self) -> NodeView:
        """The node as the scheduler and the agent read it (podling.api.views)."""
        return NodeView.from_obj(self.build())


def make_pod(name: str | None = "p", namespace: str | None = "default") -> PodBuilder:
    """A pod builder (``name=None``: no ``metadata.name``, for ``generateName`` cases)."""
    return PodBuilder(name, namespace)


def make_node(name: str = "n1") -> NodeBuilder:
    return NodeBuilder(name)


def expr(key: str, operator: str, *values: str) -> Obj:
    """A node selector requirement."""
    e: Obj = {"key": key, "operator": operator}
    if values:
        e["values"] = list(values)
    return e


def term(*expressions: Obj, fields: list[Obj] | None = None) -> Obj:
    """A nodeSelectorTerm of ``expressions`` (and ``matchFields``)."""
    t: Obj = {}
    if expressions:
        t["matchExpressions"] = list(expressions)
    if fields:
        t["matchFields"] = fields
    return t
