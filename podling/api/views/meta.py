"""Views of ``metadata`` and of the ``conditions`` entries shared by Pods and Nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import _read


@dataclass(frozen=True)
class OwnerReferenceView:
    """``metadata.ownerReferences[]``: ``uid`` ("" when missing), ``controller`` (False)."""

    uid: str = ""
    controller: bool = False

    @classmethod
    def from_obj(cls, obj: Any) -> "OwnerReferenceView":
        o = _read.obj(obj)
        if not o:
            return _read.default(cls)
        return cls(uid=_read.text(o.get("uid")), controller=bool(o.get("controller")))


@dataclass(frozen=True)
class ObjectMetaView:
    """``metadata``. Strings default to "" (``namespace`` too: callers that want the
    Kubernetes ``default`` namespace for a missing one say so), maps to {}.
    ``deletion_timestamp`` and ``deletion_grace_period_seconds`` are None when unset."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owner_references: tuple[OwnerReferenceView, ...] = ()
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "ObjectMetaView":
        m = _read.obj(obj)
        if not m:
            return _read.default(cls)
        return cls(
            name=_read.text(m.get("name")), namespace=_read.text(m.get("namespace")),
            uid=_read.text(m.get("uid")), resource_version=_read.text(m.get("resourceVersion")),
            labels=_read.str_map(m.get("labels")),
            annotations=_read.str_map(m.get("annotations")),
            owner_references=tuple(OwnerReferenceView.from_obj(r)
                                   for r in _read.objs(m.get("ownerReferences"))),
            deletion_timestamp=_read.text(m.get("deletionTimestamp")) or None,
            deletion_grace_period_seconds=_read.opt_int(m.get("deletionGracePeriodSeconds")))

    @property
    def controller_uid(self) -> str:
        """The uid of the controlling owner reference, or ""."""
        return next((r.uid for r in self.owner_references if r.controller), "")

    @property
    def deleting(self) -> bool:
        """True once a deletion timestamp is set (graceful deletion under way)."""
        return self.deletion_timestamp is not None


@dataclass(frozen=True)
class ConditionView:
    """One ``status.conditions[]`` entry of a Pod or Node; every field defaults to ""."""

    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "ConditionView":
        c = _read.obj(obj)
        if not c:
            return _read.default(cls)
        return cls(type=_read.text(c.get("type")), status=_read.text(c.get("status")),
                   reason=_read.text(c.get("reason")), message=_read.text(c.get("message")),
                   last_transition_time=_read.text(c.get("lastTransitionTime")))


def conditions(value: Any) -> tuple[ConditionView, ...]:
    """A ``conditions`` array as views, in order."""
    return tuple(ConditionView.from_obj(c) for c in _read.objs(value))


def find_condition(items: tuple[ConditionView, ...], type_: str) -> ConditionView | None:
    """The first condition of ``type_``, or None."""
    return next((c for c in items if c.type == type_), None)
