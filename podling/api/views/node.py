"""The view of a Node: what the scheduler filters on and what the agent reads back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import _read
from .meta import ConditionView, ObjectMetaView, conditions, find_condition
from .scheduling import TaintView


@dataclass(frozen=True)
class NodeAddressView:
    """``status.addresses[]``."""

    type: str = ""
    address: str = ""


@dataclass(frozen=True)
class NodeView:
    """A Node, flattened: ``unschedulable``, ``taints``, ``pod_cidr`` from ``spec``;
    ``allocatable``, ``capacity`` (quantities as written, {} when unset), ``conditions`` and
    ``addresses`` from ``status``."""

    metadata: ObjectMetaView = field(default_factory=ObjectMetaView)
    unschedulable: bool = False
    taints: tuple[TaintView, ...] = ()
    pod_cidr: str = ""
    allocatable: Mapping[str, Any] = field(default_factory=dict)
    capacity: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple[ConditionView, ...] = ()
    addresses: tuple[NodeAddressView, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "NodeView":
        n = _read.obj(obj)
        if not n:
            return _read.default(cls)
        spec, status = _read.obj(n.get("spec")), _read.obj(n.get("status"))
        return cls(
            metadata=ObjectMetaView.from_obj(n.get("metadata")),
            unschedulable=bool(spec.get("unschedulable")),
            taints=tuple(TaintView.from_obj(t) for t in _read.objs(spec.get("taints"))),
            pod_cidr=_read.text(spec.get("podCIDR")),
            allocatable=dict(_read.obj(status.get("allocatable"))),
            capacity=dict(_read.obj(status.get("capacity"))),
            conditions=conditions(status.get("conditions")),
            addresses=tuple(NodeAddressView(_read.text(a.get("type")),
                                            _read.text(a.get("address")))
                            for a in _read.objs(status.get("addresses"))))

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata.labels

    @property
    def schedulable_resources(self) -> Mapping[str, Any]:
        """``allocatable``, or ``capacity`` when a node reports no allocatable."""
        return self.allocatable or self.capacity

    @property
    def ready_status(self) -> str | None:
        """The Ready condition's status as written ("" when it has none), None without a
        Ready condition."""
        ready = find_condition(self.conditions, "Ready")
        return None if ready is None else ready.status

    def address(self, type_: str) -> str | None:
        """The first address of ``type_`` (``InternalIP`` …), or None."""
        return next((a.address for a in self.addresses if a.type == type_), None)
