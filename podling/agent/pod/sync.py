"""``sync_pod``: one pass that moves a pod towards its spec (kubelet ``SyncPod``).

    sync_pod(pod)
      1 observe ── list the pod's sandboxes and containers (by the pod-uid label)
      2 admit ──── refused ─▶ Warning event (once), report the Failed status ─▶ end
                   Node unreadable ─▶ end, requeue in RETRY_SECONDS
      3 plan ───── compute_pod_actions (pure) ─▶ PodActions; past activeDeadlineSeconds:
                   a DeadlineExceeded event, every container killed, reported Failed;
                   an emptyDir over its sizeLimit (.eviction): the same, reason Evicted
      4 kill ───── containers_to_kill (concurrently), then kill_sandboxes: each sandbox is
                   stopped once, network first
      5 back-off ─ a BackOff event per container CrashLoopBackOff holds
      6 sandbox ── only if something starts: volumes, a new sandbox + network when the plan
                   says so (the CNI ADD while the pause starts), pod files, as a task
                   (:mod:`.pod_setup`) whose stages the starts wait for (or end of the
                   starts on failure; a FailedMount requeues the pod after a short
                   back-off); then the new ephemeral containers (:mod:`.ephemeral`).
                   Nothing starts in a running pod: its configMap, secret, downwardAPI and
                   projected volumes are refreshed in place (no-op when unchanged)
      7 init ───── start next_init_container, then skip 8 (the next sync looks again)
      8 app ────── prepare containers_to_start concurrently (images, configs, creates, during
                   step 6), start them in order (:mod:`.starting`; a first start after the
                   init containers reports the observed status first: PodInitializing)
      9 report ─── probe workers follow the running containers (prober.sync_pod); pod_status
                   (pure) from the runtime (listed again if anything changed) and the probe
                   results (started, ready) ─▶ StatusManager

A container start (:mod:`.starting`) is: image (pull policy) ─▶ config ─▶ a restart steps
the container's back-off ─▶ create ─▶ start ─▶ postStart.

Every step appends its :class:`.sync_result.SyncResult` values to the ``PodSyncResult`` it
returns; expected failures (a pull, a mount, a sandbox) are results and events, and the next
sync retries them. Other errors propagate: the pod worker retries the whole sync. Every
step is idempotent (level-triggered). Pods being deleted go to :mod:`.teardown` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, NamedTuple

from podling.agent.backoff import Backoff
from podling.agent.config import AgentConfig
from podling.agent.images import ImagePuller
from podling.agent.kuberuntime import labels, podfiles
from podling.agent.kuberuntime.containers import ContainerManager
from podling.agent.kuberuntime.env import PodContext
from podling.agent.kuberuntime.sandbox import SandboxManager
from podling.agent.kuberuntime.termination import with_messages
from podling.agent.kuberuntime.tokens import TokenManager, api_fetcher
from podling.agent.kuberuntime.volume_sources import VolumeSources
from podling.agent.node.admitter import Admitter
from podling.agent.objects import ObjectCache, ObjectSource
from podling.agent.node.host import HostResources, host_resources
from podling.agent.pod import deadline, ephemeral, eviction, stopping
from podling.agent.pod.actions import CRASH_LOOP_BACK_OFF, SANDBOX_CHANGED_MESSAGE, PodActions
from podling.agent.pod.attachments import PodAttachments
from podling.agent.pod.conditions import KUBELET_CONDITIONS
from podling.agent.pod.plan import compute_pod_actions
from podling.agent.pod.pod_setup import PodSetup, SetupParts
from podling.agent.pod.starting import ContainerStarts
from podling.agent.pod.status import pod_status
from podling.agent.pod.status_manager import StatusManager
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.agent.pod.teardown import PodTeardown
from podling.agent.pod.volume_steps import VolumeSteps
from podling.agent.prober import ProbeManager
from podling.api.resources import NODES
from podling.api.types import Obj
from podling.api.views import PodView
from podling.client import ApiClient
from podling.client.events import EventRecorder
from podling.images.interface import ImageService, RootfsService
from podling.network.interface import NetworkPlugin
from podling.runtime.interface import (ContainerStatus, PodSandboxStatus, RuntimeService,
                                       SandboxState)
from podling.util.clock import Clock, SystemClock

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # when the Node cannot be read for admission
IMAGE_RETRY_SECONDS = 10.0  # after ErrImagePull: the next sync shows ImagePullBackOff


class Observed(NamedTuple):
    """The runtime's view of one pod: every sandbox and container with its uid label."""

    sandboxes: list[PodSandboxStatus]
    containers: list[ContainerStatus]


class PodSyncer:
    """Syncs and terminates the pods of one node. The pod workers call :meth:`sync`, one
    call per pod at a time; different pods sync concurrently."""

    def __init__(self, config: AgentConfig, *, client: ApiClient, runtime: RuntimeService,
                 images: ImageService, rootfs: RootfsService, network: NetworkPlugin,
                 recorder: EventRecorder, status: StatusManager, backoff: Backoff,
                 node_ip: str, host: HostResources | None = None,
                 get_node: Callable[[], Awaitable[Obj | None]] | None = None,
                 clock: Callable[[], float] = time.time,
                 prober: ProbeManager | None = None,
                 objects: ObjectSource | None = None,
                 tokens: TokenManager | None = None) -> None:
        self.config = config
        self.clock = clock  # epoch seconds: back-off, restarts, status times
        self.client = client
        self.runtime = runtime
        self.network = network
        self.recorder = recorder
        self.status = status
        self.backoff = backoff
        self.node_ip = node_ip
        self.host = host or host_resources()
        self.puller = ImagePuller(images, recorder, backoff=backoff, clock=clock)
        self.objects = objects or ObjectCache(client)  # ConfigMaps and Secrets of the pods
        self.containers = ContainerManager(runtime=runtime, rootfs=rootfs, recorder=recorder,
                                           node_name=config.node_name, objects=self.objects,
                                           seccomp_dir=config.seccomp_dir)
        self.sandboxes = SandboxManager(runtime=runtime, network=network, rootfs=rootfs,
                                        recorder=recorder, node_name=config.node_name,
                                        pod_max_pids=config.pod_max_pids)
        self.admitter = Admitter(get_node or self._read_node,
                                 unsafe_sysctls=config.allowed_unsafe_sysctls)
        self.teardown = PodTeardown(client=client, runtime=runtime, containers=self.containers,
                                    sandboxes=self.sandboxes, config=config)
        self.attachments = PodAttachments(config.pods_dir)
        self.volumes = VolumeSteps(
            VolumeSources(self.objects, tokens or TokenManager(api_fetcher(client), clock=clock)),
            recorder=recorder, pods_dir=config.pods_dir)
        self.starts = ContainerStarts(puller=self.puller, containers=self.containers,
                                      recorder=recorder, backoff=backoff, objects=self.objects,
                                      clock=clock)
        self.setup_parts = SetupParts(config=config, runtime=runtime, sandboxes=self.sandboxes,
                                      volumes=self.volumes, node_ip=node_ip,
                                      downward=self._downward, remember_ips=self._remember_ips)
        self.prober = prober or ProbeManager(
            runtime=runtime, recorder=recorder,
            clock=clock if isinstance(clock, Clock) else SystemClock())

    async def readiness_problems(self) -> list[str]:
        """Why the node is not ready as far as pods are concerned ([] when it is)."""
        if await self.network.ready():
            return []
        return ["container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin "
                "not initialized"]

    async def sync(self, pod: Obj, terminating: bool) -> PodSyncResult:
        """The pod worker's entry: :meth:`sync_pod`, or the teardown of a pod being
        deleted (``terminating``), after which the pod's bookkeeping is forgotten. ``pod``
        is the object from the API; its view is built here, once per sync."""
        if not terminating:
            return await self.sync_pod(pod)
        view = PodView.from_obj(pod)
        self.prober.remove_pod(view.metadata.uid)
        result = await self.teardown.terminate(view)
        if result.done:
            uid = view.metadata.uid
            self.status.forget(uid)
            self.attachments.forget(uid)
            self.admitter.forget(uid)
            self.starts.config_retry.forget_prefix(uid)
            self.volumes.forget(uid)
        return result

    async def remove_orphans(self, live_uids: set[str]) -> None:
        """Remove sandboxes this node made for pods it no longer has."""
        await self.teardown.remove_orphans(live_uids)

    # -- the steps (see the module docstring) -------------------------------------------

    async def sync_pod(self, obj: Obj) -> PodSyncResult:
        """Steps 1-9 for a pod that should run; see the module docstring. ``obj`` is the
        pod from the API: every step reads its view, built once here."""
        pod = PodView.from_obj(obj)
        result = PodSyncResult()
        observed = await self._observe(pod)  # 1
        if not await self._admit(pod, observed, result):  # 2
            return result
        evicted = await self.volumes.evicted(pod)
        actions = compute_pod_actions(pod, observed.sandboxes, observed.containers,  # 3
                                      now=self.clock(), backoff=self.backoff,
                                      probe_failures=self.prober.failures(pod.metadata.uid),
                                      evict=evicted is not None,
                                      unstarted=self.prober.unstarted(pod, observed.containers))
        if actions.deadline_exceeded:  # as the kubelet, on each sync until it is Failed
            self.recorder.event(pod.raw, "Normal", deadline.REASON, deadline.MESSAGE)
        if actions.create_sandbox and actions.sandbox_changed:  # before the kills, as kubelet
            self.recorder.event(pod.raw, "Normal", "SandboxChanged", SANDBOX_CHANGED_MESSAGE)
        await self._kill(pod, actions, observed, result=result)  # 4
        self._back_off(pod, actions, result)  # 5
        starts = actions.create_sandbox or actions.next_init_container is not None \
            or bool(actions.containers_to_start or actions.ephemeral_to_start)
        if starts:  # volumes and pod files are (re)made only when something starts
            setup = PodSetup(self.setup_parts, pod, actions, result, self._ips(pod)).begin()
            try:  # 6, with 7 or 8 in its stages
                await self._starts(pod, actions, setup, observed, result)
            finally:
                await setup.close()
            if setup.failure is not None:
                raise setup.failure
        elif actions.sandbox_id and not actions.kill_pod:  # 6, a running pod
            await self.volumes.refresh(pod, self._downward(pod, self._ips(pod)), result)
        changed = starts or actions.kill_pod or bool(actions.containers_to_kill
                                                     or actions.kill_sandboxes)
        await self._report(pod, result, None if changed else observed,  # 9
                           evicted=(deadline.REASON, deadline.MESSAGE)
                           if actions.deadline_exceeded else
                           (eviction.REASON, evicted) if evicted is not None else None)
        result.retry_within(actions.requeue_after)
        if any(r.error == "ErrImagePull" for r in result.errors()):
            result.retry_within(IMAGE_RETRY_SECONDS)
        if not (actions.kill_pod and not starts):
            result.retry_within(self.volumes.requeue_after(pod))
        return result

    async def _starts(self, pod: PodView, actions: PodActions, setup: PodSetup,
                      observed: Observed, result: PodSyncResult) -> None:
        """Steps 7 and 8 in the stages of step 6 (:mod:`.pod_setup`, :mod:`.starting`)."""
        if actions.ephemeral_to_start or actions.next_init_container is not None:
            ctx = await asyncio.shield(setup.ready)
            if ctx is None:
                return
            await ephemeral.start_all(  # first, as the kubelet: init errors don't block
                pod, actions.ephemeral_to_start, ctx, puller=self.puller,
                manager=self.containers, recorder=self.recorder,
                containers=observed.containers, result=result)
            if actions.next_init_container is not None:
                await self.starts.init_container(pod, actions.next_init_container, ctx,
                                                 result=result)  # 7
                return
        if actions.first_app_start(pod):  # kubelet: the observed status first
            if await asyncio.shield(setup.ready) is None:
                return
            await self._report(pod, result, None)  # (PodInitializing)
        await self.starts.app_containers(pod, actions.containers_to_start, setup,
                                         result=result)  # 8

    async def _remember_ips(self, pod: PodView, sandbox_id: str, ips: tuple[str, ...]) -> None:
        await self.attachments.remember(pod.metadata.uid, sandbox_id, ips)

    def _downward(self, pod: PodView, ips: list[str]) -> PodContext:
        return PodContext(pod_ips=tuple(ips), host_ips=(self.node_ip,), allocatable=self.host)

    async def _observe(self, pod: PodView) -> Observed:
        uid = pod.metadata.uid
        sandboxes = await self.runtime.list_pod_sandbox({labels.POD_UID: uid})
        containers = await self.runtime.list_containers(labels={labels.POD_UID: uid})
        return Observed(self.attachments.as_observed(uid, sandboxes), containers)

    async def _admit(self, pod: PodView, observed: Observed, result: PodSyncResult) -> bool:
        """True to go on; else the sync ends here (refused: its status is reported)."""
        decision = await self.admitter.decide(pod, has_sandbox=bool(observed.sandboxes),
                                              now=self.clock())
        if decision.admit:
            result.add(SyncAction.ADMIT)
            return True
        if decision.retry:
            result.add(SyncAction.ADMIT, error="NodeUnknown",
                       message=f"node {self.config.node_name} could not be read")
            result.requeue_after = RETRY_SECONDS
            return False
        if decision.new:
            self.recorder.event(pod.raw, "Warning", decision.reason, decision.message)
        result.add(SyncAction.ADMIT, error=decision.reason, message=decision.message)
        assert decision.status is not None
        await self.status.set_status(pod.raw, decision.status)
        result.add(SyncAction.REPORT_STATUS)
        return False

    async def _kill(self, pod: PodView, actions: PodActions, observed: Observed, *,
                    result: PodSyncResult) -> None:
        """The containers to kill, concurrently; then each sandbox to kill, once."""
        by_id = {c.id: c for c in observed.containers}
        kills = [(by_id[cid], kill) for cid, kill in actions.containers_to_kill.items()
                 if cid in by_id]
        for _, kill in kills:
            self.prober.stop_container(pod.metadata.uid, kill.name)
        await stopping.kill_planned(pod, kills, containers=self.containers, now=self.clock,
                                    result=result)
        by_sandbox_id = {s.id: s for s in observed.sandboxes}
        for sandbox_id in actions.kill_sandboxes:
            sandbox = by_sandbox_id.get(sandbox_id)
            if sandbox is not None:
                await self.attachments.detach(pod.metadata.uid, sandbox_id)
                await self.sandboxes.stop(pod, sandbox)
                result.add(SyncAction.KILL_POD_SANDBOX, sandbox_id)

    def _back_off(self, pod: PodView, actions: PodActions, result: PodSyncResult) -> None:
        """The kubelet's Warning BackOff for each container CrashLoopBackOff holds."""
        for name, (reason, message) in actions.waiting.items():
            if reason == CRASH_LOOP_BACK_OFF:
                self.recorder.event(
                    pod.raw, "Warning", "BackOff",
                    f"Back-off restarting failed container {name} in pod "
                    f"{labels.format_pod(pod)}", field_path=pod.spec.field_path(name))
            result.add(SyncAction.BACK_OFF, name, error=reason, message=message)

    async def _report(self, pod: PodView, result: PodSyncResult,
                      observed: Observed | None, *,
                      evicted: tuple[str, str] | None = None) -> None:
        """Write the pod's status from ``observed`` (listed afresh when None). The status
        the agent wrote before is read as the raw dict (its states and conditions carry
        over as written)."""
        sandboxes, containers = observed or await self._observe(pod)
        pod_dir = podfiles.pod_dir(self.config.pods_dir, pod.metadata.uid)
        containers = await asyncio.to_thread(with_messages, pod_dir, pod, containers)
        live = [s for s in sandboxes if s.state == SandboxState.READY]
        written = self.status.previous(  # as written: carried over, not read
            pod.raw, own_conditions=(*KUBELET_CONDITIONS, "PodScheduled"))
        ips = self._ips(pod)
        self.prober.sync_pod(pod, containers, pod_ip=ips[0] if ips else "")
        ready, started = self.prober.container_states(pod, containers)
        status = pod_status(pod, live or sandboxes, containers, now=self.clock(),
                            waiting=result.waiting(), pod_ips=ips, host_ip=self.node_ip,
                            previous_status=written, evicted=evicted, readiness=ready,
                            started=started)
        await self.status.set_status(pod.raw, status)
        result.add(SyncAction.REPORT_STATUS)

    def _ips(self, pod: PodView) -> list[str]:
        """The pod's IPs: the node's under hostNetwork; else those its attached sandbox got
        (:mod:`.attachments`), or else those the API has."""
        if pod.spec.host_network:
            return [self.node_ip]
        return self.attachments.ips(pod.metadata.uid) or list(pod.status.pod_ips)

    async def _read_node(self) -> Obj | None:
        try:
            node: Obj = await self.client.get(NODES, self.config.node_name)
            return node
        except Exception as exc:  # API trouble: admit later
            log.warning("reading node %s for admission failed: %s", self.config.node_name, exc)
            return None
