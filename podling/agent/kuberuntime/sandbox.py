"""The pod sandbox and its network (kubelet kuberuntime_sandbox.go; the network part is what a
CRI runtime does behind ``RunPodSandbox``).

    run:     run_pod_sandbox ─┬─ pause started ───────────────▶ SandboxStart (network running)
                              ├─ netns made: network setup_pod (a task, concurrently)
                              └─ namespaces pinned: on_created (containers may be created)
    attach:  await that setup ─▶ the pod IPs │ failure: FailedCreatePodSandBox; the caller
                                             │ removes the sandbox (discard)
    stop:    network teardown_pod ─▶ stop_pod_sandbox
    release: stop + remove every sandbox ─▶ remove the pod's rootfs ─▶ volumes ─▶ pod dir

The CNI ADD runs while the pause process is started (and while the caller prepares the
containers); containers are started only once :meth:`attach` returned, as the kubelet starts
them only after ``RunPodSandbox`` returned with the network done. The teardown stays one
step after the other: run concurrently (CNI DEL while the pause stops, rootfs while the
sandbox is removed) it gained nothing for one pod and made deleting 10 pods at once slower
on two loaded cores (bench/README.md). ``stop`` and ``release`` are idempotent. Failures to
make a sandbox are values (with the kubelet's ``FailedCreatePodSandBox`` event); runtime and
network errors of ``stop`` and ``release`` propagate to the caller, which retries on its
next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass, field

from podling.agent.kuberuntime import labels, podfiles, volumes
from podling.agent.kuberuntime.sysctls import dotted
from podling.api.views import PodSpecView, PodView
from podling.client.events import EventRecorder
from podling.images.interface import RootfsService
from podling.network.interface import (NetworkError, NetworkPlugin, PodIPs, PodNetworkInfo,
                                       PortMapping)
from podling.runtime.interface import (CreatedCallback, NamespaceMode, NamespaceOptions,
                                       PodSandboxConfig, PodSandboxStatus, RuntimeError_,
                                       RuntimeService)
from podling.util import timeline


@dataclass(frozen=True)
class SandboxStart:
    """The outcome of :meth:`SandboxManager.run`: the new sandbox's id and its network setup
    in progress (None under hostNetwork), or ``error``, the event message."""

    sandbox_id: str = ""
    network: asyncio.Task[PodIPs] | None = field(default=None, compare=False)
    error: str = ""


class SandboxManager:
    """Runs, stops and releases the sandboxes of this node's pods."""

    def __init__(self, *, runtime: RuntimeService, network: NetworkPlugin,
                 rootfs: RootfsService, recorder: EventRecorder, node_name: str,
                 pod_max_pids: int = -1) -> None:
        self.runtime = runtime
        self.pod_max_pids = pod_max_pids  # processes per pod (-1: unlimited)
        self.network = network
        self.rootfs = rootfs
        self.recorder = recorder
        self.node_name = node_name

    async def run(self, pod: PodView, *, attempt: int, pod_dir: str,
                  on_created: CreatedCallback | None = None) -> SandboxStart:
        """A new sandbox (attempt ``attempt``), its pause running; the network is being set
        up from the moment its namespace existed (:meth:`attach` waits for it).
        ``on_created(sandbox_id)``: containers may be created in it (the runtime's
        ``run_pod_sandbox``: possibly while the pause is still starting)."""
        spec, meta = pod.spec, pod.metadata
        if not spec.host_users:  # runc could, but podling does not map user ids yet
            return self._failed(pod, RuntimeError_(
                "the runtime does not support user namespaces (spec.hostUsers: false)"))
        config = PodSandboxConfig(
            name=meta.name, namespace=labels.namespace(pod), uid=meta.uid,
            attempt=attempt, hostname=podfiles.hostname_for(pod, self.node_name),
            log_directory=os.path.join(pod_dir, "logs"),
            labels=labels.pod_labels(pod, self.node_name),
            namespace_options=namespace_options(spec),
            sysctls={dotted(name): value for name, value in spec.security_context.sysctls},
            pids_limit=max(self.pod_max_pids, 0))
        setups: list[tuple[str, asyncio.Task[PodIPs]]] = []

        def netns_made(sandbox_id: str, path: str) -> None:
            setups.append((sandbox_id, asyncio.create_task(
                self.network.setup_pod(path, network_info(pod, sandbox_id)),
                name=f"cni-add-{sandbox_id}")))
        try:
            sandbox_id = await self.runtime.run_pod_sandbox(
                config, on_network_namespace=None if spec.host_network else netns_made,
                on_created=on_created)
        except BaseException as exc:
            for sid, setup in setups:  # the namespace is gone: undo what the plugin did
                await self._abandon(pod, sid, setup)
            if isinstance(exc, RuntimeError_):
                return self._failed(pod, exc)
            raise
        timeline.mark(meta.uid, "sandbox.started")
        if spec.host_network:
            return SandboxStart(sandbox_id)
        if not setups:  # a runtime that does not report the namespace early
            status = await self.runtime.pod_sandbox_status(sandbox_id)
            netns_made(sandbox_id, status.network_namespace_path)
        return SandboxStart(sandbox_id, network=setups[-1][1])

    async def attach(self, pod: PodView, started: SandboxStart) -> tuple[str, ...] | str:
        """The pod IPs once the network of ``started`` is set up (() under hostNetwork), or
        the error message (after the FailedCreatePodSandBox event); the caller then removes
        the sandbox (:meth:`discard`)."""
        if started.network is None:
            return ()
        try:
            ips = await started.network
        except NetworkError as exc:
            return self._failed(pod, exc).error
        timeline.mark(pod.metadata.uid, "network.ready")
        return tuple(ips.ips)

    async def discard(self, started: SandboxStart) -> None:
        """Remove a sandbox whose network failed (the plugin undid its part)."""
        await self.runtime.remove_pod_sandbox(started.sandbox_id)

    async def _abandon(self, pod: PodView, sandbox_id: str,
                       setup: asyncio.Task[PodIPs]) -> None:
        setup.cancel()  # cancelled, the plugin undoes its partial work
        with contextlib.suppress(asyncio.CancelledError, NetworkError):
            await setup
        if not setup.cancelled() and setup.exception() is None:  # it had finished
            with contextlib.suppress(NetworkError):
                await self.network.teardown_pod(None, network_info(pod, sandbox_id))

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
        uid = pod.metadata.uid
        for sandbox in sandboxes:
            await self.stop(pod, sandbox)
            timeline.mark(uid, "delete.sandbox.stopped")  # its network torn down first
            await self.runtime.remove_pod_sandbox(sandbox.id)
            timeline.mark(uid, "delete.sandbox.removed")
        for key in await self.rootfs.list_rootfs():
            if key.startswith(uid + "-"):
                await self.rootfs.remove_rootfs(key)
        timeline.mark(uid, "delete.rootfs.removed")
        await asyncio.to_thread(volumes.cleanup_volumes, pod_dir)
        await asyncio.to_thread(shutil.rmtree, pod_dir, True)
        timeline.mark(uid, "delete.released")


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
