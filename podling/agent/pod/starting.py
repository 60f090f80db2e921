"""Steps 7 and 8 of ``sync_pod``: starting the containers the plan names (kubelet
``startContainer``).

    a start:  image (pull policy) ─▶ config (env computed once, ConfigMaps and Secrets read
              through ``objects``) ─▶ a restart steps the container's back-off ─▶ create
              ─▶ start ─▶ postStart

App containers (step 8) are prepared concurrently, each as soon as its stage of the pod's
setup (:mod:`.pod_setup`) allows: the image checked at once, the config once the volumes
are ready (and the pod IPs, when its env reads them), the container created once the
sandbox exists; they are then started one after the other in spec order once the network is
up, each start waiting for the previous one's postStart hook. Each container's events are
held until the sandbox is up and the container before it started, so that they read as
before: Pulled, Created, Started of the first, then of the second. Init containers (step 7)
stay one at a time: each runs to completion before the plan names the next.

A config error that may clear by itself (a missing ConfigMap, Secret or key:
``Waiting.retry_soon``) forgets the pod's cached objects and requeues the pod after
CONFIG_RETRY (1 s, doubling, at most 5 s) instead of the periodic resync.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from podling.agent.backoff import Backoff
from podling.agent.held_events import HeldEvents
from podling.agent.images import ImagePuller, ImagePullFailure
from podling.agent.kuberuntime.containers import ContainerManager, SandboxContext, Waiting
from podling.agent.objects import ObjectCache, ObjectSource
from podling.agent.pod.actions import REASON_RESTART, ContainerStart
from podling.agent.pod.pod_setup import PodSetup
from podling.agent.pod.restart import backoff_key
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.api.views import ContainerView, PodView
from podling.client.events import EventRecorder

CONFIG_RETRY = (1.0, 5.0)  # first and longest delay before retrying a missing env reference
POD_IP_FIELDS = ("status.podIP", "status.podIPs")


def record_restart(backoff: Backoff, pod: PodView, start: ContainerStart, *, now: float) -> None:
    """Step the container's CrashLoopBackOff when ``start`` restarts it; call right before
    creating the container (kubelet: the back-off entry is updated when a restart is
    attempted)."""
    if start.reason == REASON_RESTART:
        backoff.record_failure(backoff_key(pod, start.name), now,
                               since=start.backoff_since or None)


def reads_pod_ips(container: ContainerView) -> bool:
    """The container's env reads the pod IPs (configured only once the network is up)."""
    return any(e.value_from is not None and e.value_from.field_path in POD_IP_FIELDS
               for e in container.env)


class ContainerStarts:
    """Starts the containers of the node's pods, with the kubelet's events and results."""

    def __init__(self, *, puller: ImagePuller, containers: ContainerManager,
                 recorder: EventRecorder, backoff: Backoff, objects: ObjectSource,
                 clock: Callable[[], float]) -> None:
        self.puller = puller
        self.containers = containers
        self.recorder = recorder
        self.backoff = backoff
        self.objects = objects
        self.clock = clock
        self.config_retry = Backoff(*CONFIG_RETRY, reset_after=60.0)

    async def init_container(self, pod: PodView, start: ContainerStart, ctx: SandboxContext,
                             *, result: PodSyncResult) -> None:
        """Start the next init container (the next sync looks at how it ended)."""
        created = await self._prepare(pod, start, ctx, ctx, puller=self.puller,
                                      containers=self.containers)
        if created is None:
            return
        waiting = created if isinstance(created, Waiting) else await self.containers.start(
            pod, start.container, created, ctx=ctx, init=True)
        self._started(pod, start.name, waiting, result, SyncAction.INIT_CONTAINER)

    async def app_containers(self, pod: PodView, starts: list[ContainerStart],
                             setup: PodSetup, *, result: PodSyncResult) -> None:
        """Prepare ``starts`` concurrently, start them in order (module docstring). Nothing
        is recorded when the pod's setup fails: its containers are not started."""
        held = [HeldEvents(self.recorder) for _ in starts]
        tasks = [setup.track(asyncio.create_task(self._prepare_staged(pod, s, setup, h)))
                 for s, h in zip(starts, held)]
        try:
            ready = await _stage(setup.ready)
            if ready is None:
                return
            for start, task, events in zip(starts, tasks, held):
                events.release()  # the sandbox is up, the containers before it started
                await asyncio.wait([task])  # ends as the task ends, cancelled or not
                if task.cancelled() or (created := task.result()) is None:
                    return
                waiting = created if isinstance(created, Waiting) else \
                    await self.containers.start(pod, start.container, created, ctx=ready,
                                                init=start.init)
                self._started(pod, start.name, waiting, result, SyncAction.START_CONTAINER)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _prepare_staged(self, pod: PodView, start: ContainerStart, setup: PodSetup,
                              events: HeldEvents) -> str | Waiting | None:
        """One app container's preparation, each part as soon as its stage is there; None
        when the pod's setup failed."""
        puller = self.puller.with_recorder(events)
        containers = self.containers.with_recorder(events)
        stage = setup.ready if reads_pod_ips(start.container) else setup.configurable
        return await self._prepare(pod, start, stage, setup.created, puller=puller,
                                   containers=containers)

    async def _prepare(self, pod: PodView, start: ContainerStart,
                       configurable: asyncio.Future[SandboxContext | None] | SandboxContext,
                       created: asyncio.Future[SandboxContext | None] | SandboxContext, *,
                       puller: ImagePuller, containers: ContainerManager
                       ) -> str | Waiting | None:
        """Image ─▶ config ─▶ back-off step ─▶ create: the container's id, or why it waits."""
        try:
            image = await puller.ensure(pod, start.container)
        except ImagePullFailure as exc:
            return Waiting(exc.reason, exc.message)
        ctx = await _stage(configurable)
        if ctx is None:
            return None
        config = await containers.configure(
            pod, start.container, image=image, restart_count=start.restart_count, ctx=ctx,
            init=start.init)
        if isinstance(config, Waiting):
            return config
        ctx = await _stage(created)
        if ctx is None:
            return None
        record_restart(self.backoff, pod, start, now=self.clock())
        return await containers.create(pod, start.container, config, ctx=ctx, init=start.init)

    def _started(self, pod: PodView, name: str, waiting: Waiting | None,
                 result: PodSyncResult, action: SyncAction) -> None:
        """Record a start's result; a ``retry_soon`` failure requeues the pod on the
        CONFIG_RETRY back-off, to read its ConfigMaps and Secrets afresh."""
        result.add(action, name, error=waiting.reason if waiting else "",
                   message=waiting.message if waiting else "")
        key = (pod.metadata.uid, name)
        if waiting is None:
            self.config_retry.reset(key)
        elif waiting.retry_soon:
            result.retry_within(self.config_retry.record_failure(key, self.clock()))
            if isinstance(self.objects, ObjectCache):
                self.objects.invalidate_pod(dict(pod.raw))


async def _stage(stage: asyncio.Future[SandboxContext | None] | SandboxContext
                 ) -> SandboxContext | None:
    return stage if isinstance(stage, SandboxContext) else await asyncio.shield(stage)
