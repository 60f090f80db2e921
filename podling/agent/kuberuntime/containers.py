"""Configuring, running and stopping one container of a pod, with the kubelet's events and
hooks (kubelet kuberuntime_container.go).

    configure:  env (once; ConfigMaps and Secrets read here) → rootfs → volume + pod file
                mounts → termination-log file → ContainerConfig
    run:        create → Created → start → Started → postStart (no time limit, as in the
                kubelet; the next container waits for it; a failure kills this one)
    stop:       Killing event → preStop (within the grace period) → stop signal → SIGKILL
                after the remaining grace (at least 2 s)

Failures that leave the container waiting are returned as :class:`Waiting` values; they
become the ``waiting`` state of the container status (CreateContainerConfigError,
PostStartHookError, …); ``retry_soon`` marks those that may clear by themselves (a missing
ConfigMap or Secret). Image pulling, back-off and retries are the caller's business.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import NamedTuple

from podling.agent.held_events import EventSink
from podling.agent.kuberuntime import labels, lifecycle, podfiles, volumes
from podling.agent.kuberuntime.container_config import build_container_config
from podling.agent.kuberuntime.env import PodContext, container_env
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.termination import create_message_file
from podling.agent.objects import ObjectSource
from podling.api.views import ContainerView, PodView
from podling.client.events import EventRecorder
from podling.images.interface import Image, RootfsService
from podling.runtime.interface import (ContainerConfig, ContainerStartError, ContainerStatus,
                                       Mount, RuntimeError_, RuntimeService)
from podling.util import timeline


class Waiting(NamedTuple):
    """Why a container is not running: its waiting ``reason`` and ``message``;
    ``retry_soon``: try again within seconds (:class:`.errors.ContainerConfigError`)."""

    reason: str
    message: str
    retry_soon: bool = False


@dataclass(frozen=True)
class SandboxContext:
    """What starting a container in the pod's sandbox needs beyond its spec. ``downward``
    carries the pod and host IPs and the node's CPU and memory for the downward API."""

    sandbox_id: str
    pod_dir: str
    pod_ips: list[str]
    host_ip: str
    volumes: dict[str, str]
    files: podfiles.PodFiles
    downward: PodContext


def rootfs_key(pod: PodView, name: str, attempt: int) -> str:
    """The rootfs of one attempt of one container; prefixed by the pod uid."""
    return f"{pod.metadata.uid}-{name}-{attempt}"


class ContainerManager:
    """Configures, runs and stops containers; shared by every pod of the node. Each method
    records the kubelet's events for what it did. ``objects``: the ConfigMaps and Secrets
    the containers' environments read."""

    def __init__(self, *, runtime: RuntimeService, rootfs: RootfsService,
                 recorder: EventRecorder, node_name: str, objects: ObjectSource,
                 seccomp_dir: str = "") -> None:
        self.runtime = runtime
        self.seccomp_dir = seccomp_dir
        self.rootfs = rootfs
        self.recorder: EventSink = recorder
        self.node_name = node_name
        self.objects = objects

    def _event(self, pod: PodView, reason: str, message: str, *, name: str,
               init: bool = False, warning: bool = False) -> None:
        """An event about container ``name`` of ``pod`` (Normal unless ``warning``)."""
        path = pod.spec.field_path(name) if not init else f"spec.initContainers{{{name}}}"
        self.recorder.event(pod.raw, "Warning" if warning else "Normal", reason, message,
                            field_path=path)

    async def configure(self, pod: PodView, container: ContainerView, *, image: Image,
                        restart_count: int, ctx: SandboxContext,
                        init: bool = False, ephemeral: bool = False) -> ContainerConfig | Waiting:
        """The runtime config of attempt ``restart_count``; a Waiting (after a Warning
        ``Failed`` event) when the spec cannot be configured."""
        try:
            return await self._config(pod, container, image=image, restart_count=restart_count,
                                      ctx=ctx, kind="ephemeral" if ephemeral
                                      else "init" if init else "app")
        except (ContainerConfigError, volumes.VolumeError) as exc:
            self._event(pod, "Failed", f"Error: {exc.message}",
                        name=container.name, init=init, warning=True)
            return Waiting(exc.reason, exc.message,
                           retry_soon=isinstance(exc, ContainerConfigError) and exc.retry_soon)

    def with_recorder(self, recorder: EventSink) -> "ContainerManager":
        """This manager recording its events into ``recorder`` (e.g. held, to be released
        in spec order: :class:`podling.agent.pod.held_events.HeldEvents`)."""
        clone = copy.copy(self)
        clone.recorder = recorder
        return clone

    async def run(self, pod: PodView, container: ContainerView,
                  config: ContainerConfig, *, ctx: SandboxContext,
                  init: bool = False) -> Waiting | None:
        """:meth:`create` then :meth:`start`. None when it runs, or when it exited at start
        (the restart policy decides); else why it waits."""
        created = await self.create(pod, container, config, ctx=ctx, init=init)
        if isinstance(created, Waiting):
            return created
        return await self.start(pod, container, created, ctx=ctx, init=init)

    async def create(self, pod: PodView, container: ContainerView, config: ContainerConfig,
                     *, ctx: SandboxContext, init: bool = False) -> str | Waiting:
        """Create (not start) the container in ``ctx``'s sandbox: its id, or why it waits."""
        name = container.name
        try:
            cid = await self.runtime.create_container(ctx.sandbox_id, config)
        except RuntimeError_ as exc:
            self._event(pod, "Failed", f"Error: {exc}", name=name, init=init, warning=True)
            return Waiting("CreateContainerError", str(exc))
        self._event(pod, "Created", f"Created container: {name}", name=name, init=init)
        timeline.mark(pod.metadata.uid, f"container.{name}.created")
        return cid

    async def start(self, pod: PodView, container: ContainerView, cid: str, *,
                    ctx: SandboxContext, init: bool = False) -> Waiting | None:
        """Start the created container ``cid``, then run its postStart hook (the caller
        starts the next container only after this returns)."""
        name = container.name
        try:
            await self.runtime.start_container(cid)
        except (ContainerStartError, RuntimeError_) as exc:
            self._event(pod, "Failed", f"Error: {exc}", name=name, init=init, warning=True)
            return None  # the container is EXITED with StartError; the restart policy decides
        self._event(pod, "Started", f"Started container {name}", name=name, init=init)
        timeline.mark(pod.metadata.uid, f"container.{name}.started")
        return await self._post_start(pod, container, cid, ctx=ctx, init=init)

    async def _config(self, pod: PodView, container: ContainerView, *, image: Image,
                      restart_count: int, ctx: SandboxContext, kind: str) -> ContainerConfig:
        name = container.name
        env = await container_env(pod, container, ctx.downward, self.objects)
        rootfs = await self.rootfs.prepare_rootfs(image, rootfs_key(pod, name, restart_count))
        mounts = await asyncio.to_thread(volumes.volume_mounts, pod, container, ctx.volumes,
                                         env=env, pod_dir=ctx.pod_dir)
        mounts += podfiles.pod_file_mounts(ctx.files, container)
        mounts.append(self._termination_log(container, ctx.pod_dir, restart_count))
        log_path = os.path.join(ctx.pod_dir, "logs", name, f"{restart_count}.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        config = build_container_config(
            pod, container, image=image.config, rootfs=rootfs, env=env,
            node_name=self.node_name, restart_count=restart_count, log_path=log_path,
            mounts=mounts, container_type=kind, seccomp_root=self.seccomp_dir)
        annotations = dict(config.annotations, **{
            labels.STOP_SIGNAL_ANNOTATION: config.stop_signal,
            labels.IMAGE_ANNOTATION: container.image,
            labels.IMAGE_ID_ANNOTATION: image.repo_digests[0] if image.repo_digests
            else image.id})
        return dataclasses.replace(config, annotations=annotations)

    @staticmethod
    def _termination_log(container: ContainerView, pod_dir: str, restart_count: int) -> Mount:
        """A fresh file for the container's termination message, writable by any user."""
        host = create_message_file(pod_dir, container.name, restart_count)
        return Mount(host_path=host, container_path=container.termination_message_path)

    async def _post_start(self, pod: PodView, container: ContainerView, cid: str, *,
                          ctx: SandboxContext, init: bool) -> Waiting | None:
        hook = container.lifecycle.post_start
        if hook is None:
            return None
        result = await lifecycle.run_hook(
            hook, container=container, pod=pod, pod_ip=ctx.pod_ips[0] if ctx.pod_ips else "",
            exec_sync=lambda argv, timeout: self.runtime.exec_sync(cid, argv, timeout),
            timeout=None)  # the kubelet puts no limit on postStart (lifecycle.run_hook)
        if result.ok:
            return None
        self._event(pod, "FailedPostStartHook", result.message, name=container.name,
                    init=init, warning=True)
        # killed as any container is (kubelet killContainer): the pod's grace, preStop first
        await self.stop(pod, await self.runtime.container_status(cid), container,
                        grace=lifecycle.grace_period_seconds(pod), message="FailedPostStartHook")
        return Waiting("PostStartHookError", result.message)

    async def stop(self, pod: PodView, status: ContainerStatus,
                   spec: ContainerView | None, *, grace: float, message: str = "") -> None:
        """The kubelet's kill sequence for one container (idempotent)."""
        name = status.labels.get(labels.CONTAINER_NAME, status.name)
        init = status.labels.get(labels.CONTAINER_TYPE) == "init"
        self._event(pod, "Killing", message or f"Stopping container {name}",
                    name=name, init=init)
        elapsed = 0.0
        pre_stop = spec.lifecycle.pre_stop if spec is not None else None
        if spec is not None and pre_stop is not None and lifecycle.should_run_prestop(spec, grace) \
                and status.state.value == "RUNNING":
            started = time.monotonic()
            result = await lifecycle.run_hook(
                pre_stop, container=spec, pod=pod, pod_ip=pod.status.pod_ip,
                exec_sync=lambda argv, t: self.runtime.exec_sync(status.id, argv, t),
                timeout=grace)
            elapsed = time.monotonic() - started
            if not result.ok:
                self._event(pod, "FailedPreStopHook", result.message, name=name,
                            init=init, warning=True)
        remaining = lifecycle.kill_sequence_plan(grace, elapsed)
        signal = status.annotations.get(labels.STOP_SIGNAL_ANNOTATION, "SIGTERM")
        try:
            await self.runtime.stop_container(status.id, remaining, signal=signal)
        except RuntimeError_:
            pass  # gone already
