"""A pod's volumes as the pod syncer sets them up and keeps them current (the kubelet's
volume manager, for what podling has): the payloads of configMap, secret, downwardAPI and
projected volumes are computed from the ConfigMaps and Secrets (read through the agent's
:class:`~podling.agent.objects.ObjectSource`, a TTL cache), the pod itself and service
account tokens (:mod:`.tokens`), then written by :mod:`.volumes` in a thread.

    setup(pod)    before containers start: every volume; VolumeError (FailedMount) when
                  one cannot be made, e.g. ``configmap "x" not found``
    refresh(pod)  on the syncs of a running pod: the projected kinds again; their files
                  are rewritten only when their payload changed (an in-memory digest per
                  volume skips even the comparison with the files on disk)
    retry_after   the requeue after a FailedMount: 2 s, doubling up to 30 s, reset by
                  a successful setup
    forget(uid)   the pod is gone: its digests, back-off and tokens

Errors of a volume carry the kubelet's message, ``MountVolume.SetUp failed for volume
"<name>" : <why>``; the first failing volume (in spec order) is reported.
"""

from __future__ import annotations

import asyncio
from typing import Mapping

from podling.agent.kuberuntime import volumes
from podling.agent.kuberuntime.env import PodContext
from podling.agent.kuberuntime.projections import (Payload, ProjectionError, checked,
                                                   downward_payload, object_payload,
                                                   projected_payload)
from podling.agent.kuberuntime.tokens import TokenError, TokenManager
from podling.agent.objects import ObjectSource
from podling.api.resources import CONFIG_MAPS, SECRETS
from podling.api.types import Obj
from podling.api.views import PodView, VolumeView
from podling.api.views.volume import DEFAULT_MODE, ProjectedView

FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 30.0


def _digest(payload: Payload) -> int:
    return hash(frozenset((path, f.data, f.mode) for path, f in payload.items()))


class VolumeSources:
    """See the module docstring. One per agent; calls for one pod never overlap (its
    worker is serial), calls for different pods may."""

    def __init__(self, objects: ObjectSource, tokens: TokenManager) -> None:
        self.objects = objects
        self.tokens = tokens
        self._digests: dict[tuple[str, str], int] = {}  # (pod uid, volume) → written
        self._retry: dict[str, float] = {}

    async def setup(self, pod: PodView, pod_dir: str, ctx: PodContext) -> dict[str, str]:
        """Every volume of the pod; ``{name: host path}``. Raises VolumeError."""
        payloads = await self.payloads(pod, ctx)
        prepared = await asyncio.to_thread(volumes.prepare_volumes, pod, pod_dir, payloads)
        self._remember(pod, payloads)
        self._retry.pop(pod.metadata.uid, None)
        return prepared

    async def refresh(self, pod: PodView, pod_dir: str, ctx: PodContext) -> bool:
        """Rewrite the changed projected-kind volumes of a running pod; True when some
        were. Raises VolumeError (the old files stay)."""
        if not any(volumes.projected_kind(v) for v in pod.spec.volumes):
            return False
        payloads = await self.payloads(pod, ctx)
        uid = pod.metadata.uid
        changed = {name: p for name, p in payloads.items()
                   if self._digests.get((uid, name)) != _digest(p)}
        if not changed:
            return False
        await asyncio.to_thread(volumes.update_projections, pod, pod_dir, changed)
        self._remember(pod, changed)
        return True

    def retry_after(self, uid: str) -> float:
        """The delay before the next attempt after a failed setup (steps the back-off)."""
        delay = self._retry.get(uid, FIRST_RETRY_SECONDS / 2) * 2
        self._retry[uid] = min(delay, MAX_RETRY_SECONDS)
        return self._retry[uid]

    def forget(self, uid: str) -> None:
        self._digests = {k: v for k, v in self._digests.items() if k[0] != uid}
        self._retry.pop(uid, None)
        self.tokens.forget_pod(uid)

    def _remember(self, pod: PodView, payloads: Mapping[str, Payload]) -> None:
        for name, payload in payloads.items():
            self._digests[(pod.metadata.uid, name)] = _digest(payload)

    # -- payloads -------------------------------------------------------------------------

    async def payloads(self, pod: PodView, ctx: PodContext) -> dict[str, Payload]:
        """The files of each projected-kind volume by name; raises VolumeError."""
        out: dict[str, Payload] = {}
        for vol in pod.spec.volumes:
            if volumes.projected_kind(vol) is None:
                continue
            try:
                out[vol.name] = checked(await self._payload(pod, vol, ctx))
            except ProjectionError as exc:
                raise volumes.VolumeError(
                    f'MountVolume.SetUp failed for volume "{vol.name}" : {exc.message}') from exc
        return out

    async def _payload(self, pod: PodView, vol: VolumeView, ctx: PodContext) -> Payload:
        if vol.config_map is not None:
            source = vol.config_map
            obj = await self._get("configmap", pod, source.name)
            return object_payload("configmap", source, obj,
                                  default_mode=_mode(source.default_mode))
        if vol.secret is not None:
            obj = await self._get("secret", pod, vol.secret.name)
            return object_payload("secret", vol.secret, obj,
                                  default_mode=_mode(vol.secret.default_mode))
        if vol.downward_api is not None:
            return downward_payload(pod, vol.downward_api, ctx,
                                    default_mode=_mode(vol.downward_api.default_mode))
        assert vol.projected is not None
        return await self._projected(pod, vol.projected, ctx)

    async def _projected(self, pod: PodView, source: ProjectedView,
                         ctx: PodContext) -> Payload:
        objects: dict[tuple[str, str], Obj | None] = {}
        tokens: dict[str, str | ProjectionError] = {}
        errors: list[ProjectionError] = []
        for src in source.sources:
            try:
                if src.config_map is not None:
                    name = src.config_map.name
                    objects[("configmap", name)] = await self._get("configmap", pod, name)
                elif src.secret is not None:
                    name = src.secret.name
                    objects[("secret", name)] = await self._get("secret", pod, name)
            except ProjectionError as exc:
                errors.append(exc)
            if src.service_account_token is not None:
                sat = src.service_account_token
                try:
                    tokens[sat.path] = await self.tokens.get(pod, sat)
                except TokenError as exc:
                    tokens[sat.path] = ProjectionError(exc.message)
        if errors:
            raise errors[0]
        return projected_payload(pod, source, objects=objects, tokens=tokens, ctx=ctx)

    async def _get(self, kind: str, pod: PodView, name: str) -> Obj | None:
        resource = CONFIG_MAPS if kind == "configmap" else SECRETS
        try:
            return await self.objects.get(resource, pod.metadata.namespace or "default", name)
        except Exception as exc:  # an API error other than NotFound: its text, as the kubelet
            raise ProjectionError(str(getattr(exc, "message", exc))) from exc


def _mode(mode: int | None) -> int:
    return DEFAULT_MODE if mode is None else mode
