"""Starting and stopping one container of a pod, with the kubelet's events and hooks.

    start:  image (pull policy) → rootfs → pod files + mounts → config → create → start
            → postStart (the next container waits for it; a failure kills this one)
    stop:   Killing event → preStop (within the grace period) → stop signal → SIGKILL after
            the remaining grace (at least 2 s)

Failures that leave the container waiting are returned as (reason, message); they are the
``waiting`` entries of the pod status (ErrImagePull, CreateContainerConfigError, …).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

from podling.images.interface import Image, RootfsService
from podling.runtime.interface import (ContainerStartError, ContainerStatus, Mount, RuntimeError_,
                                 RuntimeService)
from podling.agent.kuberuntime import labels
from podling.agent.kuberuntime import lifecycle
from podling.agent.kuberuntime import podfiles
from podling.agent.kuberuntime import volumes
from podling.agent.backoff import Backoff
from podling.agent.kuberuntime.container_config import (ContainerConfigError, PodContext, build_container_config,
                               container_env)
from podling.agent.images import ImagePuller, ImagePullFailure
from podling.agent.pod.plan import ContainerStart, note_start
from podling.agent.pod.status import IMAGE_ANNOTATION, IMAGE_ID_ANNOTATION
from podling.agent.kuberuntime.termination import message_file

STOP_SIGNAL = "io.podling.container.stopSignal"
Waiting = tuple[str, str]


@dataclass
class PodContextInfo:
    """What starting containers needs to know about the pod beyond its spec."""

    sandbox_id: str
    pod_dir: str
    pod_ips: list[str]
    host_ip: str
    volumes: dict[str, str]
    files: podfiles.PodFiles


def rootfs_key(pod: dict[str, Any], name: str, attempt: int) -> str:
    return f"{pod['metadata']['uid']}-{name}-{attempt}"


class ContainerManager:
    """Starts and stops containers; shared by every pod of the node."""

    def __init__(self, *, runtime: RuntimeService, rootfs: RootfsService, puller: ImagePuller,
                 recorder, backoff: Backoff, node_name: str) -> None:
        self.runtime = runtime
        self.rootfs = rootfs
        self.puller = puller
        self.recorder = recorder
        self.backoff = backoff
        self.node_name = node_name

    def _event(self, pod: dict, type_: str, reason: str, message: str, name: str,
               init: bool = False) -> None:
        path = f"spec.{'initContainers' if init else 'containers'}{{{name}}}"
        self.recorder.event(pod, type_, reason, message, field_path=path)

    async def start(self, pod: dict[str, Any], start: ContainerStart, ctx: PodContextInfo, *,
                    init: bool = False) -> Waiting | None:
        """Start ``start.container``; None when it runs, else why it waits."""
        container, name = start.container, start.container["name"]
        try:
            image = await self.puller.ensure(pod, container)
        except ImagePullFailure as exc:
            return exc.reason, exc.message
        try:
            config = await self._config(pod, container, image, start.restart_count, ctx, init)
        except (ContainerConfigError, volumes.VolumeError) as exc:
            self._event(pod, "Warning", "Failed", f"Error: {exc.message}", name, init)
            return exc.reason, exc.message
        note_start(self.backoff, pod, start, time.time())
        try:
            cid = await self.runtime.create_container(ctx.sandbox_id, config)
        except RuntimeError_ as exc:
            self._event(pod, "Warning", "Failed", f"Error: {exc}", name, init)
            return "CreateContainerError", str(exc)
        self._event(pod, "Normal", "Created", f"Created container: {name}", name, init)
        try:
            await self.runtime.start_container(cid)
        except (ContainerStartError, RuntimeError_) as exc:
            self._event(pod, "Warning", "Failed", f"Error: {exc}", name, init)
            return None  # the container is EXITED with StartError; the restart policy decides
        self._event(pod, "Normal", "Started", f"Started container {name}", name, init)
        return await self._post_start(pod, container, cid, ctx, init,
                                      stop_signal=config.stop_signal)

    async def _config(self, pod: dict, container: dict, image: Image, restart_count: int,
                      ctx: PodContextInfo, init: bool):
        name = container["name"]
        key = rootfs_key(pod, name, restart_count)
        rootfs = await self.rootfs.prepare_rootfs(image, key)
        env = container_env(pod, container, _pod_context(ctx))
        mounts = await asyncio.to_thread(volumes.volume_mounts, pod, container, ctx.volumes,
                                         env=env, pod_dir=ctx.pod_dir)
        mounts += podfiles.pod_file_mounts(ctx.files, container)
        mounts.append(self._termination_log(container, ctx.pod_dir, restart_count))
        log_path = os.path.join(ctx.pod_dir, "logs", name, f"{restart_count}.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        config = build_container_config(
            pod, container, image=image.config, rootfs=rootfs,
            pod_ip=ctx.pod_ips[0] if ctx.pod_ips else "", host_ip=ctx.host_ip,
            node_name=self.node_name, restart_count=restart_count, log_path=log_path,
            mounts=mounts, container_type="init" if init else "app",
            pod_ips=tuple(ctx.pod_ips), host_ips=(ctx.host_ip,))
        annotations = dict(config.annotations, **{
            STOP_SIGNAL: config.stop_signal, IMAGE_ANNOTATION: container.get("image", ""),
            IMAGE_ID_ANNOTATION: image.repo_digests[0] if image.repo_digests else image.id})
        return dataclasses.replace(config, annotations=annotations)

    @staticmethod
    def _termination_log(container: dict, pod_dir: str, restart_count: int) -> Mount:
        """A fresh file for the container's termination message."""
        host = message_file(pod_dir, container["name"], restart_count)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "w"):
            pass
        path = container.get("terminationMessagePath") or "/dev/termination-log"
        return Mount(host_path=host, container_path=path)

    async def _post_start(self, pod: dict, container: dict, cid: str, ctx: PodContextInfo,
                          init: bool, *, stop_signal: str) -> Waiting | None:
        hook = (container.get("lifecycle") or {}).get("postStart")
        if not hook:
            return None
        result = await lifecycle.run_hook(
            hook, container=container, pod=pod, pod_ip=ctx.pod_ips[0] if ctx.pod_ips else "",
            exec_sync=lambda argv, timeout: self.runtime.exec_sync(cid, argv, timeout),
            timeout=lifecycle.grace_period_seconds(pod) or 30.0)
        if result.ok:
            return None
        name = container["name"]
        self._event(pod, "Warning", "FailedPostStartHook", result.message, name, init)
        self._event(pod, "Normal", "Killing", "FailedPostStartHook", name, init)
        await self.runtime.stop_container(cid, lifecycle.MINIMUM_GRACE_SECONDS,
                                          signal=stop_signal)
        return "PostStartHookError", result.message

    async def stop(self, pod: dict[str, Any], status: ContainerStatus,
                   spec: dict[str, Any] | None, *, grace: float, message: str = "") -> None:
        """The kubelet's kill sequence for one container (idempotent)."""
        name = status.labels.get(labels.CONTAINER_NAME, status.name)
        init = status.labels.get(labels.CONTAINER_TYPE) == "init"
        self._event(pod, "Normal", "Killing", message or f"Stopping container {name}", name, init)
        elapsed = 0.0
        if lifecycle.should_run_prestop(spec, grace) and status.state.value == "RUNNING":
            started = time.monotonic()
            result = await lifecycle.run_hook(
                spec["lifecycle"]["preStop"], container=spec, pod=pod,
                pod_ip=((pod.get("status") or {}).get("podIP") or ""),
                exec_sync=lambda argv, t: self.runtime.exec_sync(status.id, argv, t),
                timeout=grace)
            elapsed = time.monotonic() - started
            if not result.ok:
                self._event(pod, "Warning", "FailedPreStopHook", result.message, name, init)
        remaining = lifecycle.kill_sequence_plan(grace, elapsed)
        signal = status.annotations.get(STOP_SIGNAL, "SIGTERM")
        try:
            await self.runtime.stop_container(status.id, remaining, signal=signal)
        except RuntimeError_:
            pass  # gone already


def _pod_context(ctx: PodContextInfo) -> PodContext:
    cpus = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return PodContext(pod_ips=tuple(ctx.pod_ips), host_ips=(ctx.host_ip,),
                      node_cpu_milli=cpus * 1000, node_memory_bytes=memory)
