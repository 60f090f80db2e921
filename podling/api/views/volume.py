"""Views of the projected volume sources of a Pod: ``configMap``, ``secret``,
``downwardAPI`` and ``projected`` (with ``serviceAccountToken``).

Defaults: ``default_mode`` 0644 (the API server's default, applied again here for objects
that skipped defaulting), ``optional`` False, items (), ``expiration_seconds`` 3600.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _read
from .container import ResourceFieldRefView

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_EXPIRATION = 3600


def _mode(value: Any, default: int | None) -> int | None:
    found = _read.opt_int(value)
    return default if found is None else found


def _default_mode(value: Any) -> int:
    found = _read.opt_int(value)
    return DEFAULT_MODE if found is None else found


@dataclass(frozen=True)
class KeyToPathView:
    """``items[]`` of a configMap / secret source: ``mode`` None when unset."""

    key: str = ""
    path: str = ""
    mode: int | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "KeyToPathView":
        i = _read.obj(obj)
        return cls(_read.text(i.get("key")), _read.text(i.get("path")),
                   _mode(i.get("mode"), None))


@dataclass(frozen=True)
class ObjectProjectionView:
    """A ``configMap`` or ``secret`` source (a volume or one source of a projected
    volume): the object's ``name`` (``secretName`` for a secret volume), ``items``,
    ``optional`` and ``default_mode`` (None inside a projected volume: the volume's own
    ``defaultMode`` applies)."""

    name: str = ""
    items: tuple[KeyToPathView, ...] = ()
    optional: bool = False
    default_mode: int | None = DEFAULT_MODE

    @classmethod
    def from_obj(cls, obj: Any, *, name_field: str = "name",
                 projected: bool = False) -> "ObjectProjectionView":
        s = _read.obj(obj)
        return cls(name=_read.text(s.get(name_field)),
                   items=tuple(KeyToPathView.from_obj(i) for i in _read.objs(s.get("items"))),
                   optional=bool(s.get("optional")),
                   default_mode=None if projected else _default_mode(s.get("defaultMode")))


@dataclass(frozen=True)
class DownwardAPIFileView:
    """``downwardAPI.items[]``: a ``field_path`` (fieldRef) or a ``resource_field_ref``."""

    path: str = ""
    field_path: str | None = None
    resource_field_ref: ResourceFieldRefView | None = None
    mode: int | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "DownwardAPIFileView":
        f = _read.obj(obj)
        field_ref, resource_ref = f.get("fieldRef"), f.get("resourceFieldRef")
        return cls(path=_read.text(f.get("path")),
                   field_path=None if field_ref is None
                   else _read.text(_read.obj(field_ref).get("fieldPath")),
                   resource_field_ref=None if resource_ref is None
                   else ResourceFieldRefView.from_obj(resource_ref),
                   mode=_mode(f.get("mode"), None))


@dataclass(frozen=True)
class DownwardAPIView:
    """A ``downwardAPI`` volume or projection; ``default_mode`` None inside a projection."""

    items: tuple[DownwardAPIFileView, ...] = ()
    default_mode: int | None = DEFAULT_MODE

    @classmethod
    def from_obj(cls, obj: Any, *, projected: bool = False) -> "DownwardAPIView":
        s = _read.obj(obj)
        return cls(items=tuple(DownwardAPIFileView.from_obj(i)
                               for i in _read.objs(s.get("items"))),
                   default_mode=None if projected else _default_mode(s.get("defaultMode")))


@dataclass(frozen=True)
class ServiceAccountTokenView:
    """``projected.sources[].serviceAccountToken``: ``audience`` "" for the API server's."""

    path: str = ""
    audience: str = ""
    expiration_seconds: int = DEFAULT_TOKEN_EXPIRATION

    @classmethod
    def from_obj(cls, obj: Any) -> "ServiceAccountTokenView":
        t = _read.obj(obj)
        return cls(path=_read.text(t.get("path")), audience=_read.text(t.get("audience")),
                   expiration_seconds=_read.integer(t.get("expirationSeconds"),
                                                    DEFAULT_TOKEN_EXPIRATION))


@dataclass(frozen=True)
class ProjectionSourceView:
    """One ``projected.sources[]`` entry: exactly one of the fields is set (validation)."""

    config_map: ObjectProjectionView | None = None
    secret: ObjectProjectionView | None = None
    downward_api: DownwardAPIView | None = None
    service_account_token: ServiceAccountTokenView | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> "ProjectionSourceView":
        s = _read.obj(obj)
        cm, sec, dapi, sat = (s.get(k) for k in ("configMap", "secret", "downwardAPI",
                                                 "serviceAccountToken"))
        return cls(
            config_map=None if cm is None else ObjectProjectionView.from_obj(cm, projected=True),
            secret=None if sec is None else ObjectProjectionView.from_obj(sec, projected=True),
            downward_api=None if dapi is None else DownwardAPIView.from_obj(dapi, projected=True),
            service_account_token=None if sat is None else ServiceAccountTokenView.from_obj(sat))


@dataclass(frozen=True)
class ProjectedView:
    """A ``projected`` volume: its ``sources`` in order and ``default_mode``."""

    sources: tuple[ProjectionSourceView, ...] = ()
    default_mode: int = DEFAULT_MODE

    @classmethod
    def from_obj(cls, obj: Any) -> "ProjectedView":
        s = _read.obj(obj)
        return cls(sources=tuple(ProjectionSourceView.from_obj(x)
                                 for x in _read.objs(s.get("sources"))),
                   default_mode=_default_mode(s.get("defaultMode")))
