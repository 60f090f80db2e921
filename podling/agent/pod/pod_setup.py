"""Step 6 of ``sync_pod`` as a task whose stages the container starts wait for
(:mod:`.starting`): the pod's volumes, its sandbox and network, its pod files.

    volumes ─▶ configurable ─▶ new sandbox run ─▶ created ─▶ network up ─▶ ready
               (volumes, pod    (pod files first,   (its id:     (pod files     (its IPs:
               file paths)      with no pod IP;     containers   rewritten      containers
                                the CNI ADD runs    may be       in place)      may start)
                                from its netns on)  created)

``created`` is the runtime's ``on_created``: the OCI runtime pins the sandbox's namespaces,
so its containers are created while the pause process starts (unless they share its PID
namespace). Each stage is a :class:`.containers.SandboxContext` or None when the step failed: a
FailedMount (volumes), FailedCreatePodSandBox (the sandbox or its network; a sandbox whose
network failed is removed once the containers being created in it were cancelled: see
:meth:`PodSetup.track`). A pod that keeps its sandbox passes through every stage at once
after its volumes. :meth:`PodSetup.close` cancels whatever still runs (a sync cancelled by a
deletion): what was made is the terminating sync's to remove.

Many pods are set up at once; the runtime-heavy part (the sandbox run and its network: a
dozen short-lived processes) is bounded per node by ``SetupParts.slots`` (SETUP_SLOTS by
default), so that a burst of pods shares the CPUs instead of starting everything at once and
finishing everything late.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from typing import Any, Awaitable, Callable

from podling.agent.config import AgentConfig
from podling.agent.kuberuntime import podfiles
from podling.agent.kuberuntime.containers import SandboxContext
from podling.agent.kuberuntime.env import PodContext
from podling.agent.kuberuntime.sandbox import SandboxManager
from podling.agent.pod.actions import PodActions
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.agent.pod.volume_steps import VolumeSteps
from podling.api.views import PodView
from podling.runtime.interface import RuntimeService

Stage = asyncio.Future[SandboxContext | None]
SETUP_SLOTS = max(8, 4 * (os.cpu_count() or 1))  # sandboxes set up at once on a node


@dataclasses.dataclass
class SetupParts:
    """What the step uses, shared by every pod of the node. ``downward(pod, ips)``: the
    downward API's pod context; ``remember_ips(pod, sandbox_id, ips)``: keep the IPs of a
    new sandbox whose network is attached."""

    config: AgentConfig
    runtime: RuntimeService
    sandboxes: SandboxManager
    volumes: VolumeSteps
    node_ip: str
    downward: Callable[[PodView, list[str]], PodContext]
    remember_ips: Callable[[PodView, str, tuple[str, ...]], Awaitable[None]]
    slots: asyncio.Semaphore = dataclasses.field(
        default_factory=lambda: asyncio.Semaphore(SETUP_SLOTS))


class PodSetup:
    """One run of the step for one sync; :meth:`begin` starts it."""

    def __init__(self, parts: SetupParts, pod: PodView, actions: PodActions,
                 result: PodSyncResult, ips: list[str]) -> None:
        self.parts, self.pod, self.actions, self.result = parts, pod, actions, result
        loop = asyncio.get_running_loop()
        self.configurable: Stage = loop.create_future()
        self.created: Stage = loop.create_future()
        self.ready: Stage = loop.create_future()
        self._ips = ips
        self._tracked: list[asyncio.Task[Any]] = []
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> "PodSetup":
        self._task = asyncio.create_task(self._run(), name=f"setup-{self.pod.metadata.uid}")
        return self

    def track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """A task that creates containers in the new sandbox: cancelled (and awaited) before
        a sandbox whose network failed is removed."""
        self._tracked.append(task)
        return task

    async def close(self) -> None:
        """Cancel what still runs (the stages end as None) and wait for it; an error the
        step raised is then :attr:`failure`."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._settle(self.configurable, self.created, self.ready)

    @property
    def failure(self) -> BaseException | None:
        """The unexpected error the step ended with (the sync raises it: the pod worker
        retries), None when it ended as planned or was cancelled."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def _run(self) -> None:
        try:
            await self._stages()
        finally:
            self._settle(self.configurable, self.created, self.ready)

    @staticmethod
    def _settle(*stages: Stage) -> None:
        for stage in stages:
            if not stage.done():
                stage.set_result(None)

    async def _stages(self) -> None:
        parts, pod = self.parts, self.pod
        pod_dir = podfiles.pod_dir(parts.config.pods_dir, pod.metadata.uid)
        prepared = await parts.volumes.setup(pod, parts.downward(pod, self._ips), self.result)
        if prepared is None:
            return
        ctx = SandboxContext(sandbox_id=self.actions.sandbox_id, pod_dir=pod_dir,
                             pod_ips=self._ips, host_ip=parts.node_ip, volumes=prepared,
                             files=podfiles.pod_files(pod_dir),
                             downward=parts.downward(pod, self._ips))
        self.configurable.set_result(ctx)
        if self.actions.create_sandbox:
            await self._write_pod_files(ctx.pod_dir, [])  # bind-mounted at container create
            new = await self._new_sandbox(ctx)
            if new is None:
                return
            ctx = new
        else:
            self.created.set_result(ctx)
        await self._write_pod_files(ctx.pod_dir, ctx.pod_ips)
        self.result.add(SyncAction.CONFIG_POD_SANDBOX, ctx.sandbox_id)
        self.ready.set_result(ctx)

    async def _cancel_tracked(self) -> None:
        """The sandbox failed: the tasks creating its containers are cancelled and waited
        for (the caller then settles ``ready`` as None: they are not started)."""
        for task in self._tracked:
            task.cancel()
        await asyncio.gather(*self._tracked, return_exceptions=True)

    async def _write_pod_files(self, pod_dir: str, pod_ips: list[str]) -> None:
        config = self.parts.config
        await asyncio.to_thread(
            podfiles.write_pod_files, pod_dir, self.pod, pod_ips, node_name=config.node_name,
            cluster_domain=config.cluster_domain, cluster_dns=config.cluster_dns)

    async def _new_sandbox(self, ctx: SandboxContext) -> SandboxContext | None:
        """Run the sandbox (created), then wait for its network; the context with its IPs."""
        parts, pod, result = self.parts, self.pod, self.result
        for cid in self.actions.purge_init_containers:
            await parts.runtime.remove_container(cid)

        def created(sandbox_id: str) -> None:
            if not self.created.done():
                self.created.set_result(dataclasses.replace(ctx, sandbox_id=sandbox_id))
        async with parts.slots:
            started = await parts.sandboxes.run(pod, attempt=self.actions.sandbox_attempt,
                                                pod_dir=ctx.pod_dir, on_created=created)
            if started.error:  # the runtime removed what was created in it
                await self._cancel_tracked()
                self._settle(self.ready)
                result.add(SyncAction.CREATE_POD_SANDBOX, error="FailedCreatePodSandBox",
                           message=started.error)
                return None
            created(started.sandbox_id)
            ips = await parts.sandboxes.attach(pod, started)
        if isinstance(ips, str):
            await self._cancel_tracked()
            # removed before ``ready`` settles: the sync waiting for it then closes this
            # setup, which would cancel a removal still under way
            await parts.sandboxes.discard(started)  # and the containers made in it
            self._settle(self.ready)
            result.add(SyncAction.CREATE_POD_SANDBOX, error="FailedCreatePodSandBox",
                       message=ips)
            return None
        if started.network is not None:
            await parts.remember_ips(pod, started.sandbox_id, ips)
        result.add(SyncAction.CREATE_POD_SANDBOX, started.sandbox_id)
        pod_ips = list(ips) if started.network is not None else ctx.pod_ips
        return dataclasses.replace(ctx, sandbox_id=started.sandbox_id, pod_ips=pod_ips,
                                   downward=parts.downward(pod, pod_ips))
