"""The files of ``configMap``, ``secret``, ``downwardAPI`` and ``projected`` volumes:
pure functions from the pod, the objects and tokens to a payload
(``{relative path: FileProjection}``) for :mod:`.atomic_writer`.

Rules (kubelet volume plugins configmap, secret, downwardapi, projected):

* no ``items``: every key of the object is a file (a ConfigMap's ``data`` and
  ``binaryData``; a Secret's ``data``, base64-decoded), with the default mode;
* ``items``: only those keys, at their ``path``, with their ``mode`` or the default; a key
  the object lacks is an error unless the source is ``optional`` (then it is skipped);
* a missing object is an error unless ``optional`` (then the source is empty);
* downward API files: ``fieldRef`` (metadata.name, namespace, uid, labels, annotations;
  ``labels`` and ``annotations`` as sorted ``key="value"`` lines) and ``resourceFieldRef``
  (the rule of :mod:`.resource_fields`, the named container's unset limits read as the
  node's allocatable);
* projected: the sources in order into one payload, the volume's ``defaultMode`` for every
  source; a token file has the default mode (0600 when the pod has an ``fsGroup``, the
  group bits then come from the writer). Every failing source is reported, Kubernetes'
  aggregate form (``[a, b]``) when there are several.

Errors are :class:`ProjectionError` with the kubelet's text (``configmap "x" not found``,
``configmap references non-existent config key: k``); the caller prefixes
``MountVolume.SetUp failed for volume "v" : ``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from podling.agent.kuberuntime.atomic_writer import FileProjection, PayloadError, clean_path
from podling.agent.kuberuntime.env import PodContext, field_ref_value
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.resource_fields import (ResourceFieldError, find_container,
                                                       resource_value)
from podling.api.errors import aggregate
from podling.api.types import Obj
from podling.api.views import PodView
from podling.api.views.volume import DownwardAPIView, ObjectProjectionView, ProjectedView

Payload = dict[str, FileProjection]
#: the text of the secret error for a missing key (the kubelet's has no "secret" prefix)
_MISSING_KEY = {"configmap": "configmap references non-existent config key: {key}",
                "secret": "references non-existent secret key: {key}"}


class ProjectionError(Exception):
    """A volume's files cannot be made; the message is the kubelet's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def config_map_data(obj: Obj) -> dict[str, bytes]:
    """A ConfigMap's keys: ``data`` (UTF-8) and ``binaryData`` (base64)."""
    found = {str(k): str(v).encode() for k, v in (obj.get("data") or {}).items()}
    found.update(_decoded(obj.get("binaryData")))
    return found


def secret_data(obj: Obj) -> dict[str, bytes]:
    """A Secret's ``data``, base64-decoded."""
    return _decoded(obj.get("data"))


def _decoded(values: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in (values or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value or ""), validate=True)
        except (binascii.Error, ValueError):
            out[str(key)] = b""  # the API refuses such values; never seen in practice
    return out


def object_payload(kind: str, source: ObjectProjectionView, obj: Obj | None, *,
                   default_mode: int) -> Payload:
    """The files of a configMap (``kind`` "configmap") or secret (``kind`` "secret")
    source; ``obj`` None when the object does not exist."""
    if obj is None:
        if source.optional:
            return {}
        raise ProjectionError(f'{kind} "{source.name}" not found')
    data = config_map_data(obj) if kind == "configmap" else secret_data(obj)
    if not source.items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    payload: Payload = {}
    for item in source.items:
        if item.key not in data:
            if source.optional:
                continue
            raise ProjectionError(_MISSING_KEY[kind].format(key=item.key))
        payload[item.path] = FileProjection(
            data[item.key], default_mode if item.mode is None else item.mode)
    return payload


def downward_payload(pod: PodView, source: DownwardAPIView, ctx: PodContext, *,
                     default_mode: int) -> Payload:
    """The files of a downwardAPI source (every failing item is reported)."""
    payload: Payload = {}
    errors: list[str] = []
    for item in source.items:
        try:
            if item.field_path is not None:
                value = field_ref_value(pod, item.field_path, ctx)
            elif item.resource_field_ref is not None:
                value = _resource_value(pod, item.resource_field_ref, ctx)
            else:
                continue
        except ContainerConfigError as exc:
            errors.append(exc.message)
            continue
        payload[item.path] = FileProjection(value.encode(),
                                            default_mode if item.mode is None else item.mode)
    if errors:
        raise ProjectionError(aggregate(errors))
    return payload


def _resource_value(pod: PodView, ref: Any, ctx: PodContext) -> str:
    """A volume's ``resourceFieldRef`` names its container (validation requires it); its
    unset limits read as the node's allocatable, init container or not (kubelet
    ``ExtractResourceValueByContainerNameAndNodeAllocatable``)."""
    try:
        return resource_value(ref, find_container(pod, ref.container_name), ctx.allocatable)
    except ResourceFieldError as e:
        raise ContainerConfigError(str(e)) from e


def projected_payload(pod: PodView, source: ProjectedView, *, objects: Mapping[tuple[str, str],
                      Obj | None], tokens: Mapping[str, str | ProjectionError],
                      ctx: PodContext) -> Payload:
    """The files of a projected volume. ``objects``: ("configmap" | "secret", name) → the
    object or None; ``tokens``: token file path → the token, or why it could not be had."""
    mode = source.default_mode
    payload: Payload = {}
    errors: list[str] = []
    for src in source.sources:
        try:
            if src.config_map is not None:
                payload.update(object_payload(
                    "configmap", src.config_map, objects.get(("configmap", src.config_map.name)),
                    default_mode=mode))
            elif src.secret is not None:
                payload.update(object_payload(
                    "secret", src.secret, objects.get(("secret", src.secret.name)),
                    default_mode=mode))
            elif src.downward_api is not None:
                payload.update(downward_payload(pod, src.downward_api, ctx, default_mode=mode))
            elif src.service_account_token is not None:
                path = src.service_account_token.path
                token = tokens.get(path, ProjectionError(f"no token for {path}"))
                if isinstance(token, ProjectionError):
                    raise token
                token_mode = 0o600 if pod.spec.security_context.fs_group is not None else mode
                payload[path] = FileProjection(token.encode(), token_mode)
        except ProjectionError as exc:
            errors.append(exc.message)
    if errors:
        raise ProjectionError(aggregate(errors))
    return payload


def checked(payload: Payload) -> Payload:
    """``payload`` with its paths normalised; ProjectionError for a path the writer
    refuses (the API validates them, so only a hand-made object gets here)."""
    try:
        return {clean_path(path): projection for path, projection in payload.items()}
    except PayloadError as exc:
        raise ProjectionError(str(exc)) from exc
