"""Stopping a pod's containers in the kubelet's order (kuberuntime termination ordering):
every container that is not a sidecar at once, then the sidecars one at a time in reverse
initContainers order (:func:`.sidecars.stop_groups`), each group with what is left of the
grace period. Used by a sync's kills (:mod:`.sync`) and by the end of a pod
(:mod:`.teardown`)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from podling.agent.kuberuntime import lifecycle
from podling.agent.kuberuntime.containers import ContainerManager
from podling.agent.pod import sidecars
from podling.agent.pod.actions import ContainerKill
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.api.views import PodView
from podling.runtime.interface import ContainerStatus

# (container name, stop(grace seconds))
Stop = tuple[str, Callable[[float], Awaitable[None]]]


async def stop_in_order(pod: PodView, stops: list[Stop], *, grace: float,
                        now: Callable[[], float]) -> None:
    """Run ``stops`` group by group; the first group gets ``grace``, a later one what is
    left of it (at least 2 s, :func:`.sidecars.grace_left`)."""
    began = now()
    for i, group in enumerate(sidecars.stop_groups(pod, sorted({n for n, _ in stops}))):
        left = sidecars.grace_left(grace, now() - began) if i else grace
        await asyncio.gather(*(stop(left) for name, stop in stops if name in group))


async def kill_planned(pod: PodView, kills: list[tuple[ContainerStatus, ContainerKill]], *,
                       containers: ContainerManager, now: Callable[[], float],
                       result: PodSyncResult) -> None:
    """The plan's ``containers_to_kill`` (each with its message, and its own grace when
    set: a probe's terminationGracePeriodSeconds), in the kubelet's order."""
    def stop(status: ContainerStatus, kill: ContainerKill) -> Stop:
        return kill.name, lambda left: containers.stop(
            pod, status, kill.container, grace=left if kill.grace is None else kill.grace,
            message=kill.message)
    await stop_in_order(pod, [stop(s, k) for s, k in kills],
                        grace=lifecycle.grace_period_seconds(pod), now=now)
    for _, kill in kills:
        result.add(SyncAction.KILL_CONTAINER, kill.name)
