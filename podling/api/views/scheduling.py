"""Views of the scheduling constraints: tolerations, taints, node affinity terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _read


@dataclass(frozen=True)
class TolerationView:
    """``spec.tolerations[]``: ``operator`` "Equal" when unset, the rest ""; an empty key
    or effect matches every key or effect."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "TolerationView":
        t = _read.obj(obj)
        if not t:
            return _read.default(cls)
        return cls(key=_read.text(t.get("key")), operator=_read.text(t.get("operator"), "Equal"),
                   value=_read.text(t.get("value")), effect=_read.text(t.get("effect")))


@dataclass(frozen=True)
class TaintView:
    """``spec.taints[]`` of a Node; every field "" when unset."""

    key: str = ""
    value: str = ""
    effect: str = ""

    @classmethod
    def from_obj(cls, obj: Any) -> "TaintView":
        t = _read.obj(obj)
        if not t:
            return _read.default(cls)
        return cls(key=_read.text(t.get("key")), value=_read.text(t.get("value")),
                   effect=_read.text(t.get("effect")))


@dataclass(frozen=True)
class NodeSelectorRequirementView:
    """A ``matchExpressions[]`` / ``matchFields[]`` entry; values ``str()``-ed."""

    key: str = ""
    operator: str = ""
    values: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "NodeSelectorRequirementView":
        r = _read.obj(obj)
        if not r:
            return _read.default(cls)
        return cls(key=_read.text(r.get("key")), operator=_read.text(r.get("operator")),
                   values=_read.texts(r.get("values")))


def _requirements(value: Any) -> tuple[NodeSelectorRequirementView, ...]:
    return tuple(NodeSelectorRequirementView.from_obj(r) for r in _read.objs(value))


@dataclass(frozen=True)
class NodeSelectorTermView:
    """A NodeSelectorTerm (a term with neither list matches nothing)."""

    match_expressions: tuple[NodeSelectorRequirementView, ...] = ()
    match_fields: tuple[NodeSelectorRequirementView, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "NodeSelectorTermView":
        t = _read.obj(obj)
        if not t:
            return _read.default(cls)
        return cls(match_expressions=_requirements(t.get("matchExpressions")),
                   match_fields=_requirements(t.get("matchFields")))


@dataclass(frozen=True)
class PreferredSchedulingTermView:
    """``preferredDuringSchedulingIgnoredDuringExecution[]``: ``weight`` 0 when unset."""

    weight: int = 0
    preference: NodeSelectorTermView = NodeSelectorTermView()

    @classmethod
    def from_obj(cls, obj: Any) -> "PreferredSchedulingTermView":
        t = _read.obj(obj)
        if not t:
            return _read.default(cls)
        return cls(weight=_read.integer(t.get("weight")),
                   preference=NodeSelectorTermView.from_obj(t.get("preference")))


@dataclass(frozen=True)
class NodeAffinityView:
    """``spec.affinity.nodeAffinity``. ``required`` is None when
    ``requiredDuringSchedulingIgnoredDuringExecution`` is unset (no constraint); when set,
    its ``nodeSelectorTerms`` (possibly none, which matches no node)."""

    required: tuple[NodeSelectorTermView, ...] | None = None
    preferred: tuple[PreferredSchedulingTermView, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any) -> "NodeAffinityView":
        a = _read.obj(obj)
        if not a:
            return _read.default(cls)
        required = a.get("requiredDuringSchedulingIgnoredDuringExecution")
        return cls(
            required=None if required is None else tuple(
                NodeSelectorTermView.from_obj(t)
                for t in _read.objs(_read.obj(required).get("nodeSelectorTerms"))),
            preferred=tuple(PreferredSchedulingTermView.from_obj(t) for t in
                            _read.objs(a.get("preferredDuringSchedulingIgnoredDuringExecution"))))
