"""``sync_pod``: observe the runtime, plan (:func:`.plan.compute_pod_actions`), execute, report.

    sync(pod) ──▶ list sandboxes + containers of the pod (labels)
              ──▶ compute_pod_actions (pure)
              ──▶ kill what must go ─▶ new sandbox + network ─▶ next init / app containers
              ──▶ pod_status (pure) ──▶ StatusManager
    terminate(pod) ──▶ kill every container (preStop, grace) ─▶ network DEL ─▶ remove
                   ──▶ rootfs, volumes, pod dir ──▶ grace-0 delete of the pod in the API

Every step is idempotent and a failed step is retried on the next sync (level-triggered).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from typing import Any, Awaitable, Callable

from podling.api import errors
from podling.api.resources import NODES, PODS
from podling.images.interface import ImageService, RootfsService
from podling.network.interface import NetworkError, NetworkPlugin, PodNetworkInfo, PortMapping
from podling.runtime.interface import (ContainerState, NamespaceMode, NamespaceOptions,
                                 PodSandboxConfig, PodSandboxStatus, RuntimeError_,
                                 RuntimeService, SandboxState)
from podling.agent.node import admission
from podling.agent.kuberuntime import labels
from podling.agent.kuberuntime import lifecycle
from podling.agent.kuberuntime import podfiles
from podling.agent.kuberuntime import volumes
from podling.agent.backoff import Backoff
from podling.agent.config import AgentConfig
from podling.agent.kuberuntime.containers import ContainerManager, PodContextInfo
from podling.agent.images import ImagePuller
from podling.agent.pod.plan import compute_pod_actions
from podling.agent.pod.pod_workers import DONE
from podling.agent.pod.status import pod_status, ts
from podling.agent.pod.status_manager import StatusManager
from podling.agent.kuberuntime.termination import with_messages

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0


class PodSyncer:
    """Syncs and terminates pods of one node; called by the pod workers, one call per pod at
    a time."""

    def __init__(self, config: AgentConfig, *, client, runtime: RuntimeService,
                 images: ImageService, rootfs: RootfsService, network: NetworkPlugin,
                 recorder, status: StatusManager, backoff: Backoff, node_ip: str,
                 get_node: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
                 ) -> None:
        self.config = config
        self.client = client
        self.runtime = runtime
        self.rootfs = rootfs
        self.network = network
        self.recorder = recorder
        self.status = status
        self.backoff = backoff
        self.node_ip = node_ip
        self.containers = ContainerManager(
            runtime=runtime, rootfs=rootfs, puller=ImagePuller(images, recorder, backoff),
            recorder=recorder, backoff=backoff, node_name=config.node_name)
        self._pod_ips: dict[str, list[str]] = {}
        # admission: the Node now (default: read it from the API), the pods admitted here
        # (latest copy, by uid) and the status of each pod refused
        self._get_node = get_node or self._read_node
        self._admitted: dict[str, dict[str, Any]] = {}
        self._rejected: dict[str, dict[str, Any]] = {}

    async def readiness_problems(self) -> list[str]:
        if await self.network.ready():
            return []
        return ["container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin "
                "not initialized"]

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, pod: dict[str, Any], terminating: bool) -> float:
        if terminating:
            return await self.terminate(pod)
        uid = pod["metadata"]["uid"]
        if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            self._admitted.setdefault(uid, pod)  # ran here before (a restart): counts at once
        sandboxes, containers = await self._observe(uid)
        refused = await self._admit(pod, bool(sandboxes))
        if refused is not None:
            return refused
        actions = compute_pod_actions(pod, sandboxes, containers, now=time.time(),
                                      backoff=self.backoff)
        by_id = {c.id: c for c in containers}
        grace = lifecycle.grace_period_seconds(pod)
        await asyncio.gather(*(self.containers.stop(pod, by_id[cid], kill.container, grace=grace,
                                                    message=kill.message)
                               for cid, kill in actions.containers_to_kill.items()
                               if cid in by_id))
        for sandbox_id in actions.kill_sandboxes:
            await self._stop_sandbox(pod, _find(sandboxes, sandbox_id))
        waiting = dict(actions.waiting)
        self._back_off_events(pod, waiting)
        if actions.kill_pod:  # kill what exists; a new sandbox may follow (create_sandbox)
            for sandbox in sandboxes:
                if sandbox.state == SandboxState.READY:
                    await self._stop_sandbox(pod, sandbox)
        starts = actions.create_sandbox or actions.next_init_container is not None \
            or bool(actions.containers_to_start)
        if starts:  # volumes and pod files are (re)made only when something starts
            ctx = await self._sandbox(pod, actions, sandboxes, waiting)
            if ctx is not None:
                await self._start_containers(pod, actions, ctx, waiting)
        acted = starts or actions.kill_pod or bool(actions.containers_to_kill
                                                   or actions.kill_sandboxes)
        await self._report(pod, waiting, None if acted else (sandboxes, containers))
        return actions.requeue_after or self.config.resync_seconds

    async def _admit(self, pod: dict[str, Any], has_sandbox: bool) -> float | None:
        """The kubelet's admission of a pod before its first sync (:mod:`.admission`): None
        to go on syncing; else the requeue delay of a pod that must not start (refused, or
        the Node could not be read)."""
        uid = pod["metadata"]["uid"]
        if uid in self._rejected:
            await self.status.set_status(pod, self._rejected[uid])
            return self.config.resync_seconds
        if uid not in self._admitted and admission.needs_admission(pod, has_sandbox):
            node = await self._get_node()
            if node is None:
                return RETRY_SECONDS
            # no await from here on: admitting is atomic among the pods synced concurrently
            refusal = admission.admit(pod, node, self._admitted.values())
            if refusal is not None:
                log.info("pod %s/%s rejected: %s", pod["metadata"].get("namespace"),
                         pod["metadata"]["name"], refusal.message)
                status = refusal.status(pod.get("status"), start_time=ts(time.time()))
                self._rejected[uid] = status
                self.recorder.event(pod, "Warning", refusal.reason, refusal.message)
                await self.status.set_status(pod, status)
                return self.config.resync_seconds
        self._admitted[uid] = pod
        return None

    async def _read_node(self) -> dict[str, Any] | None:
        try:
            return await self.client.get(NODES, self.config.node_name)
        except Exception as exc:  # API trouble: admit later
            log.warning("reading node %s for admission failed: %s", self.config.node_name, exc)
            return None

    def _back_off_events(self, pod: dict[str, Any], waiting: dict) -> None:
        """The kubelet's Warning BackOff for each container held back by CrashLoopBackOff."""
        meta = pod["metadata"]
        who = f"{meta['name']}_{meta.get('namespace', 'default')}({meta['uid']})"
        for name, (reason, _message) in waiting.items():
            if reason == "CrashLoopBackOff":
                self.recorder.event(pod, "Warning", "BackOff",
                                    f"Back-off restarting failed container {name} in pod {who}",
                                    field_path=f"spec.containers{{{name}}}")

    async def _observe(self, uid: str):
        sandboxes = await self.runtime.list_pod_sandbox({labels.POD_UID: uid})
        containers = await self.runtime.list_containers(labels={labels.POD_UID: uid})
        return sandboxes, containers

    async def _report(self, pod: dict[str, Any], waiting: dict,
                      observed: tuple[list, list] | None = None) -> None:
        """Write the pod's status from ``observed`` runtime state (listed afresh if None)."""
        uid = pod["metadata"]["uid"]
        sandboxes, containers = observed or await self._observe(uid)
        containers = await asyncio.to_thread(with_messages, self.pod_dir(pod), pod, containers)
        live = [s for s in sandboxes if s.state == SandboxState.READY]
        status = pod_status(pod, live or sandboxes, containers, now=time.time(), waiting=waiting,
                            pod_ips=self._ips(pod), host_ip=self.node_ip,
                            previous_status=pod.get("status") or {})
        await self.status.set_status(pod, status)

    def _ips(self, pod: dict[str, Any]) -> list[str]:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return [self.node_ip]
        known = self._pod_ips.get(pod["metadata"]["uid"])
        if known:
            return known
        return [p["ip"] for p in (pod.get("status") or {}).get("podIPs") or [] if p.get("ip")]

    # -- sandbox ---------------------------------------------------------------------------

    def pod_dir(self, pod: dict[str, Any]) -> str:
        return os.path.join(self.config.pods_dir, pod["metadata"]["uid"])

    async def _sandbox(self, pod: dict[str, Any], actions, sandboxes: list[PodSandboxStatus],
                       waiting: dict) -> PodContextInfo | None:
        """The pod's context with its (new or kept) sandbox; None when that failed."""
        pod_dir = self.pod_dir(pod)
        try:
            prepared = await asyncio.to_thread(volumes.prepare_volumes, pod, pod_dir)
        except volumes.VolumeError as exc:
            self.recorder.event(pod, "Warning", "FailedMount", exc.message)
            return None
        if actions.create_sandbox:
            for cid in actions.purge_init_containers:
                await self.runtime.remove_container(cid)
            if actions.sandbox_changed:
                self.recorder.event(pod, "Normal", "SandboxChanged",
                                    "Pod sandbox changed, it will be killed and re-created.")
            sandbox_id = await self._create_sandbox(pod, actions.sandbox_attempt)
            if sandbox_id is None:
                return None
        else:
            sandbox_id = actions.sandbox_id
        files = await asyncio.to_thread(
            podfiles.write_pod_files, pod_dir, pod, self._ips(pod),
            node_name=self.config.node_name, cluster_domain=self.config.cluster_domain,
            cluster_dns=self.config.cluster_dns)
        return PodContextInfo(sandbox_id=sandbox_id, pod_dir=pod_dir, pod_ips=self._ips(pod),
                              host_ip=self.node_ip, volumes=prepared, files=files)

    async def _create_sandbox(self, pod: dict[str, Any], attempt: int) -> str | None:
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        config = PodSandboxConfig(
            name=meta["name"], namespace=meta.get("namespace", "default"), uid=meta["uid"],
            attempt=attempt, hostname=podfiles.hostname_for(pod, self.config.node_name),
            log_directory=os.path.join(self.pod_dir(pod), "logs"),
            labels=labels.pod_labels(pod, self.config.node_name),
            namespace_options=namespace_options(spec))
        try:
            sandbox_id = await self.runtime.run_pod_sandbox(config)
        except RuntimeError_ as exc:
            self.recorder.event(pod, "Warning", "FailedCreatePodSandBox",
                                f"Failed to create pod sandbox: {exc}")
            return None
        if spec.get("hostNetwork"):
            return sandbox_id
        status = await self.runtime.pod_sandbox_status(sandbox_id)
        try:
            ips = await self.network.setup_pod(status.network_namespace_path,
                                               network_info(pod, sandbox_id))
        except NetworkError as exc:
            self.recorder.event(pod, "Warning", "FailedCreatePodSandBox",
                                f"Failed to create pod sandbox: {exc}")
            await self.runtime.remove_pod_sandbox(sandbox_id)  # undo the acquire
            return None
        self._pod_ips[meta["uid"]] = list(ips.ips)
        return sandbox_id

    async def _stop_sandbox(self, pod: dict[str, Any], sandbox: PodSandboxStatus | None) -> None:
        if sandbox is None:
            return
        if sandbox.namespace_options.network != NamespaceMode.NODE:
            await self.network.teardown_pod(sandbox.network_namespace_path or None,
                                            network_info(pod, sandbox.id))
        await self.runtime.stop_pod_sandbox(sandbox.id)

    # -- containers ------------------------------------------------------------------------

    async def _start_containers(self, pod: dict[str, Any], actions, ctx: PodContextInfo,
                                waiting: dict) -> None:
        if actions.next_init_container is not None:
            start = actions.next_init_container
            why = await self.containers.start(pod, start, ctx, init=True)
            if why:
                waiting[start.container["name"]] = why
            return
        for start in actions.containers_to_start:
            why = await self.containers.start(pod, start, ctx)
            if why:
                waiting[start.container["name"]] = why

    # -- termination -----------------------------------------------------------------------

    async def terminate(self, pod: dict[str, Any]) -> float:
        """Stop everything of the pod, release its resources, and finish its deletion."""
        meta = pod["metadata"]
        sandboxes, containers = await self._observe(meta["uid"])
        grace = lifecycle.grace_period_seconds(pod)
        specs = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        running = [c for c in containers if c.state in (ContainerState.RUNNING,
                                                        ContainerState.CREATED)]
        await asyncio.gather(*(self.containers.stop(
            pod, c, specs.get(c.labels.get(labels.CONTAINER_NAME, "")), grace=grace)
            for c in running))
        await self._release(pod, sandboxes)
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"), grace_period=0,
                                     preconditions={"uid": meta["uid"]})
        except errors.ApiError as exc:
            if exc.code not in (403, 404, 409):  # gone, replaced, or no longer ours
                log.warning("final delete of pod %s failed: %s", meta["name"], exc.message)
                return RETRY_SECONDS
        self.status.forget(meta["uid"])
        self._pod_ips.pop(meta["uid"], None)
        self._admitted.pop(meta["uid"], None)
        self._rejected.pop(meta["uid"], None)
        return DONE

    async def _release(self, pod: dict[str, Any], sandboxes: list[PodSandboxStatus]) -> None:
        for sandbox in sandboxes:
            await self._stop_sandbox(pod, sandbox)
            await self.runtime.remove_pod_sandbox(sandbox.id)
        uid = pod["metadata"]["uid"]
        for key in await self.rootfs.list_rootfs():
            if key.startswith(uid + "-"):
                await self.rootfs.remove_rootfs(key)
        pod_dir = self.pod_dir(pod)
        await asyncio.to_thread(volumes.cleanup_volumes, pod_dir)
        await asyncio.to_thread(shutil.rmtree, pod_dir, True)

    async def remove_orphans(self, live_uids: set[str]) -> None:
        """Remove sandboxes this node made for pods it no longer has."""
        mine = await self.runtime.list_pod_sandbox({labels.MANAGED_BY: self.config.node_name})
        by_pod: dict[str, list[PodSandboxStatus]] = {}
        for sandbox in mine:
            uid = sandbox.labels.get(labels.POD_UID, "")
            if uid and uid not in live_uids:
                by_pod.setdefault(uid, []).append(sandbox)
        for uid, sandboxes in by_pod.items():
            ghost = {"metadata": {"uid": uid, "name": sandboxes[0].metadata.name,
                                  "namespace": sandboxes[0].metadata.namespace}}
            log.info("removing orphaned pod %s/%s", ghost["metadata"]["namespace"],
                     ghost["metadata"]["name"])
            await self._release(ghost, sandboxes)


def _find(sandboxes: list[PodSandboxStatus], sandbox_id: str) -> PodSandboxStatus | None:
    return next((s for s in sandboxes if s.id == sandbox_id), None)


def namespace_options(spec: dict[str, Any]) -> NamespaceOptions:
    """hostNetwork / hostPID / hostIPC / shareProcessNamespace as CRI namespace modes."""
    if spec.get("hostPID"):
        pid = NamespaceMode.NODE
    elif spec.get("shareProcessNamespace"):
        pid = NamespaceMode.POD
    else:
        pid = NamespaceMode.CONTAINER
    return NamespaceOptions(
        network=NamespaceMode.NODE if spec.get("hostNetwork") else NamespaceMode.POD,
        pid=pid, ipc=NamespaceMode.NODE if spec.get("hostIPC") else NamespaceMode.POD)


def network_info(pod: dict[str, Any], sandbox_id: str) -> PodNetworkInfo:
    """The pod as the network plugin sees it: identity and its hostPorts."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    ports = tuple(PortMapping(container_port=p["containerPort"], host_port=p["hostPort"],
                              protocol=p.get("protocol", "TCP"), host_ip=p.get("hostIP", ""))
                  for c in spec.get("containers") or [] for p in c.get("ports") or []
                  if p.get("hostPort"))
    return PodNetworkInfo(namespace=meta.get("namespace", "default"), name=meta["name"],
                          uid=meta["uid"], sandbox_id=sandbox_id, port_mappings=ports)
