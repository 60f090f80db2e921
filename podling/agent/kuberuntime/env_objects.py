"""The ConfigMaps and Secrets one container's environment reads (``envFrom``,
``configMapKeyRef``, ``secretKeyRef``), with the kubelet's messages.

One :class:`EnvObjects` serves one computation of one container's environment: each object
is read once through the agent's :class:`~podling.agent.objects.ObjectSource` and reused for
every reference to it, as the kubelet's ``makeEnvironmentVariables`` does. A ConfigMap
offers its ``data`` (not ``binaryData``); a Secret its ``data``, base64-decoded (the API
server has merged ``stringData`` into it already; bytes that are not UTF-8 become U+FFFD,
since the runtime takes text).

Missing things, unless the reference is ``optional`` (then they are skipped), raise
:class:`~.errors.UnresolvedReferenceError` with Kubernetes 1.32's message:

    the object is missing   configmap "<name>" not found / secret "<name>" not found
    the key is missing      couldn't find key <key> in ConfigMap <ns>/<name>
                            couldn't find key <key> in Secret <ns>/<name>

An API error other than NotFound (or no answer at all) is an
:class:`UnresolvedReferenceError` carrying the error's text, whatever ``optional`` says (the
kubelet skips only a NotFound).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from podling.agent.kuberuntime.errors import UnresolvedReferenceError
from podling.agent.objects import ObjectSource
from podling.api.resources import CONFIG_MAPS, SECRETS, Resource
from podling.api.views import KeySelectorView
from podling.client.errors import ApiConnectionError, ApiError

_KINDS = {CONFIG_MAPS.name: ("configmap", "ConfigMap"), SECRETS.name: ("secret", "Secret")}


def _text_map(value: Any) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in value.items()} \
        if isinstance(value, Mapping) else {}


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data``, decoded (see the module docstring)."""
    out: dict[str, str] = {}
    for key, encoded in _text_map(secret.get("data")).items():
        try:
            raw = base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            raw = b""
        out[key] = raw.decode("utf-8", errors="replace")
    return out


class EnvObjects:
    """The objects of one namespace that one container's environment refers to."""

    def __init__(self, objects: ObjectSource, namespace: str) -> None:
        self._objects = objects
        self.namespace = namespace
        self._read: dict[tuple[str, str], dict[str, str] | None] = {}

    async def values(self, resource: Resource, name: str, *,
                     optional: bool) -> dict[str, str] | None:
        """The key → value map of the ConfigMap or Secret ``name``; None when it does not
        exist and ``optional`` (else UnresolvedReferenceError)."""
        key = (resource.name, name)
        if key not in self._read:
            self._read[key] = await self._fetch(resource, name)
        found = self._read[key]
        if found is None and not optional:
            raise UnresolvedReferenceError(f'{_KINDS[resource.name][0]} "{name}" not found')
        return found

    async def _fetch(self, resource: Resource, name: str) -> dict[str, str] | None:
        try:
            obj = await self._objects.get(resource, self.namespace, name)
        except (ApiError, ApiConnectionError) as err:
            raise UnresolvedReferenceError(str(err)) from err
        if obj is None:
            return None
        return secret_values(obj) if resource is SECRETS else _text_map(obj.get("data"))

    async def key(self, resource: Resource, ref: KeySelectorView) -> str | None:
        """The value of ``configMapKeyRef`` / ``secretKeyRef`` ``ref``; None when it is
        ``optional`` and its object or key is missing."""
        values = await self.values(resource, ref.name, optional=ref.optional)
        if values is None:
            return None
        if ref.key not in values:
            if ref.optional:
                return None
            raise UnresolvedReferenceError(
                f"couldn't find key {ref.key} in {_KINDS[resource.name][1]} "
                f"{self.namespace}/{ref.name}")
        return values[ref.key]
