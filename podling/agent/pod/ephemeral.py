"""Ephemeral containers: planned, started and reported apart from the pod's other containers
(kubelet: computePodActions' ``EphemeralContainersToStart``, ``startContainer`` with a target,
the ephemeral part of ``generateAPIPodStatus``).

Life of one ephemeral container (added through ``pods/ephemeralcontainers``)::

    never ran in this pod (no instance in any sandbox) ─▶ start it, once
    running ─▶ kept; exited ─▶ left exited (never restarted, whatever restartPolicy says)
    the pod is killed (deleted, finished, sandbox replaced) ─▶ stopped with everything else

* **plan** (:func:`plan_starts`, called by :mod:`.plan` for a kept sandbox that goes on
  running): the starts go to ``PodActions.ephemeral_to_start``. They are not counted by the
  restart logic (an ephemeral container keeps no pod alive) nor by Ready / ContainersReady,
  have no probes and no hooks, and may start while init containers still run.
* **start** (:func:`start_all`, step 6½ of ``sync_pod``, before the init and app starts, as
  the kubelet does): image (pull policy, Pulling / Pulled events) → the target, the running
  container named ``targetContainerName`` in the sandbox (none: Warning ``Failed`` ``Error:
  unable to find target container X``, waiting ``CreateContainerConfigError``; the next sync
  tries again) → config (container type ``ephemeral``; with a target, the target's PID
  namespace unless the pod shares one or uses the host's) → Created → Started. Events carry
  the field path ``spec.ephemeralContainers{NAME}``.
* **status** (:func:`api_statuses`): ``status.ephemeralContainerStatuses`` in spec order,
  states as for other containers (waiting ``ContainerCreating`` until it exists), ``ready``
  always false, no ``started`` (the kubelet's prober never looks at them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from podling.agent.images import ImagePuller, ImagePullFailure
from podling.agent.kuberuntime.containers import ContainerManager, SandboxContext, Waiting
from podling.agent.pod.actions import REASON_NEW, ContainerStart, PodActions
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.api.views import ContainerView, PodView
from podling.client.events import EventRecorder
from podling.runtime.interface import ContainerState, ContainerStatus

CREATE_CONFIG_ERROR = "CreateContainerConfigError"


def plan_starts(pod: PodView, latest: dict[str, ContainerStatus], actions: PodActions) -> None:
    """Add a start for each ephemeral container with no instance in ``latest`` (the newest
    runtime instance of each container name, every sandbox of the pod)."""
    for idx, container in enumerate(pod.spec.ephemeral_containers):
        if container.name not in latest:
            actions.ephemeral_to_start.append(ContainerStart(idx, container, REASON_NEW, 0))


def target_id(container: ContainerView, containers: list[ContainerStatus],
              sandbox_id: str) -> str | None:
    """The id of the running container ``targetContainerName`` names in ``sandbox_id``;
    "" without a target; None when the target does not run there."""
    name = container.target_container_name
    if not name:
        return ""
    return next((c.id for c in containers if c.name == name and c.sandbox_id == sandbox_id
                 and c.state == ContainerState.RUNNING), None)


async def start_all(pod: PodView, starts: list[ContainerStart], ctx: SandboxContext, *,
                    puller: ImagePuller, manager: ContainerManager, recorder: EventRecorder,
                    containers: list[ContainerStatus], result: PodSyncResult) -> None:
    """Start each of ``starts`` in ``ctx``'s sandbox; ``containers`` are the runtime's
    containers of the pod (to find targets). Failures are results (waiting reasons)."""
    for start in starts:
        waiting = await _start(pod, start.container, ctx, puller=puller, manager=manager,
                               recorder=recorder, containers=containers)
        result.add(SyncAction.START_CONTAINER, start.name,
                   error=waiting.reason if waiting else "",
                   message=waiting.message if waiting else "")


async def _start(pod: PodView, container: ContainerView, ctx: SandboxContext, *,
                 puller: ImagePuller, manager: ContainerManager, recorder: EventRecorder,
                 containers: list[ContainerStatus]) -> Waiting | None:
    try:
        image = await puller.ensure(pod, container)
    except ImagePullFailure as exc:
        return Waiting(exc.reason, exc.message)
    target = target_id(container, containers, ctx.sandbox_id)
    if target is None:
        message = f"unable to find target container {container.target_container_name}"
        recorder.event(pod.raw, "Warning", "Failed", f"Error: {message}",
                       field_path=pod.spec.field_path(container.name))
        return Waiting(CREATE_CONFIG_ERROR, message)
    config = await manager.configure(pod, container, image=image, restart_count=0, ctx=ctx,
                                     ephemeral=True)
    if isinstance(config, Waiting):
        return config
    if target and not (pod.spec.share_process_namespace or pod.spec.host_pid):
        config = dataclasses.replace(config, pid_target=target)
    return await manager.run(pod, container, config, ctx=ctx)


def api_statuses(pod: PodView,
                 convert: Callable[[ContainerView], dict[str, Any]]) -> list[dict[str, Any]]:
    """``status.ephemeralContainerStatuses``: ``convert`` builds a container's status as for
    an init container (no probes, not restarted); the ephemeral differences are applied here."""
    out = []
    for container in pod.spec.ephemeral_containers:
        status = convert(container)
        status.pop("started", None)
        status["ready"] = False
        waiting = (status.get("state") or {}).get("waiting")
        if waiting is not None and waiting.get("reason") == "PodInitializing":
            waiting["reason"] = "ContainerCreating"
        out.append(status)
    return out
