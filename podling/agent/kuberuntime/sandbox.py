"""The pod sandbox and its network (kubelet kuberuntime_sandbox.go; the network part is what a
CRI runtime does behind ``RunPodSandbox``).

    run:   run_pod_sandbox ─▶ (not hostNetwork) pod_sandbox_status ─▶ network setup_pod
                                                 └─ failure: remove the sandbox (undo)
    stop:  (pod network) network teardown_pod ─▶ stop_pod_sandbox
    release: stop + remove every sandbox ─▶ remove the pod's rootfs ─▶ volumes ─▶ pod dir

``stop`` and ``release`` are idempotent. Failures to make a sandbox are values (with the
kubelet's ``FailedCreatePodSandBox`` event); runtime and network errors of ``stop`` and
``release`` propagate to the caller, which retries on its next pass.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass

from podling.agent.kuberuntime import labels, podfiles, volumes
from podling.api.views import PodSpecView, PodView
from podling.client.events import EventRecorder
from podling.images.interface import RootfsService
from podling.network.interface import NetworkError, NetworkPlugin, PodNetworkInfo, PortMapping
from podling.runtime.interface import (NamespaceMode, NamespaceOptions, PodSandboxConfig,
                                       PodSandboxStatus, RuntimeError_, RuntimeService)
from podling.util import timeline


@dataclass(frozen=True)
class SandboxStart:
    """The outcome of :meth:`SandboxManager.run`: the new sandbox's id and the pod IPs the
    network plugin gave it (None under hostNetwork), or ``error``, the event message."""

    sandbox_id: str = ""
    pod_ips: tuple[str, ...] | None = None
    error: str = ""


class SandboxManager:
    """Runs, stops and releases the sandboxes of this node's pods."""

    def __init__(self, *, runtime: RuntimeService, network: NetworkPlugin,
                 rootfs: RootfsService, recorder: EventRecorder, node_name: str) -> None:
        self.runtime = runtime
        self.network = network
        self.rootfs = rootfs
        self.recorder = recorder
        self.node_name = node_name

    async def run(self, pod: PodView, *, attempt: int, pod_dir: str) -> SandboxStart:
        """A new sandbox (attempt ``attempt``) with its network set up."""
        spec, meta = pod.spec, pod.metadata
        config = PodSandboxConfig(
            name=meta.name, namespace=labels.namespace(pod), uid=meta.uid,
            attempt=attempt, hostname=podfiles.hostname_for(pod, self.node_name),
            log_directory=os.path.join(pod_dir, "logs"),
            labels=labels.pod_labels(pod, self.node_name),
            namespace_options=namespace_options(spec))
        try:
            sandbox_id = await self.runtime.run_pod_sandbox(config)
        except RuntimeError_ as exc:
            return self._failed(pod, exc)
        timeline.mark(meta.uid, "sandbox.started")
        if spec.host_network:
            return SandboxStart(sandbox_id)
        status = await self.runtime.pod_sandbox_status(sandbox_id)
        try:
            ips = await self.network.setup_pod(status.network_namespace_path,
                                               network_info(pod, sandbox_id))
        except NetworkError as exc:
            failed = self._failed(pod, exc)
            await self.runtime.remove_pod_sandbox(sandbox_id)  # undo the acquire
            return failed
        timeline.mark(meta.uid, "network.ready")
        return SandboxStart(sandbox_id, tuple(ips.ips))

    def _failed(self, pod: PodView, exc: Exception) -> SandboxStart:
        message = f"Failed to create pod sandbox: {exc}"
        self.recorder.event(pod.raw, "Warning", "FailedCreatePodSandBox", message)
        return SandboxStart(error=message)

    async def stop(self, pod: PodView, sandbox: PodSandboxStatus) -> None:
        """Tear down the sandbox's pod network (not under hostNetwork), then stop it."""
        if sandbox.namespace_options.network != NamespaceMode.NODE:
            await self.network.teardown_pod(sandbox.network_namespace_path or None,
                                            network_info(pod, sandbox.id))
        await self.runtime.stop_pod_sandbox(sandbox.id)

    async def release(self, pod: PodView, sandboxes: list[PodSandboxStatus], *,
                      pod_dir: str) -> None:
        """Stop and remove ``sandboxes``, then the pod's rootfs, volumes and directory."""
        for sandbox in sandboxes:
            await self.stop(pod, sandbox)
            await self.runtime.remove_pod_sandbox(sandbox.id)
        uid = pod.metadata.uid
        for key in await self.rootfs.list_rootfs():
            if key.startswith(uid + "-"):
                await self.rootfs.remove_rootfs(key)
        await asyncio.to_thread(volumes.cleanup_volumes, pod_dir)
        await asyncio.to_thread(shutil.rmtree, pod_dir, True)


def namespace_options(spec: PodSpecView) -> NamespaceOptions:
    """hostNetwork / hostPID / hostIPC / shareProcessNamespace as CRI namespace modes."""
    if spec.host_pid:
        pid = NamespaceMode.NODE
    elif spec.share_process_namespace:
        pid = NamespaceMode.POD
    else:
        pid = NamespaceMode.CONTAINER
    return NamespaceOptions(
        network=NamespaceMode.NODE if spec.host_network else NamespaceMode.POD,
        pid=pid, ipc=NamespaceMode.NODE if spec.host_ipc else NamespaceMode.POD)


def network_info(pod: PodView, sandbox_id: str) -> PodNetworkInfo:
    """The pod as the network plugin sees it: identity and the hostPorts of its app
    containers."""
    meta = pod.metadata
    ports = tuple(PortMapping(container_port=p.container_port, host_port=p.host_port,
                              protocol=p.protocol, host_ip=p.host_ip)
                  for c in pod.spec.containers for p in c.ports if p.host_port)
    return PodNetworkInfo(namespace=labels.namespace(pod), name=meta.name,
                          uid=meta.uid, sandbox_id=sandbox_id, port_mappings=ports)
