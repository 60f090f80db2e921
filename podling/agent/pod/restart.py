"""The kubelet's restart rules over what the runtime reports of a pod's containers: which
instance of a container is current, its restart count, whether it should be restarted.

Pure; shared by the plan (:mod:`.plan`) and the status generator (:mod:`.status`).
"""

from __future__ import annotations

from dataclasses import dataclass

from podling.agent.backoff import Backoff
from podling.agent.kuberuntime import labels as L
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import REASON_START_ERROR, ContainerState, ContainerStatus


def restart_policy(pod: PodView) -> str:
    """``spec.restartPolicy`` (default Always)."""
    return pod.spec.restart_policy


def backoff_key(pod: PodView, container_name: str) -> tuple[str, str]:
    """The CrashLoopBackOff key of one container of the pod."""
    return (pod.metadata.uid, container_name)


def restart_count_of(status: ContainerStatus) -> int:
    """The restart count stamped on a container (annotation; the attempt as a fallback)."""
    try:
        return int(status.annotations.get(L.RESTART_COUNT, status.attempt))
    except ValueError:
        return status.attempt


def latest_by_name(containers: list[ContainerStatus]) -> dict[str, ContainerStatus]:
    """The newest instance of each container name."""
    out: dict[str, ContainerStatus] = {}
    for c in sorted(containers, key=lambda c: (c.created_at, c.attempt)):
        out[c.name] = c
    return out


def never_ran(status: ContainerStatus) -> bool:
    """A container stopped after it was created and before it started (the agent was
    killed in between): it did not run, whatever its exit code says; a start that failed
    (StartError) did run into its failure."""
    return status.state == ContainerState.EXITED and not status.started_at and \
        status.reason != REASON_START_ERROR


def should_restart(pod: PodView, status: ContainerStatus | None) -> bool:
    """kubelet ``ShouldContainerBeRestarted`` for the newest instance ``status`` (one that
    :func:`never_ran` counts as still created)."""
    if pod.metadata.deleting:
        return False
    if status is None:
        return True
    if status.state == ContainerState.RUNNING:
        return False
    if status.state in (ContainerState.UNKNOWN, ContainerState.CREATED) or never_ran(status):
        return True
    policy = restart_policy(pod)
    if policy == "Never":
        return False
    return not (policy == "OnFailure" and status.exit_code == 0)


def is_terminating(pod: PodView) -> bool:
    """Deleted, or already in a terminal phase: kill, start nothing."""
    return pod.metadata.deleting or pod.status.terminal


@dataclass(frozen=True)
class ProbeRestart:
    """What a failed liveness / startup probe means for its running container: the
    Killing ``message``, the ``grace`` period (the probe's terminationGracePeriodSeconds,
    None for the pod's), whether it ``restart``s, and for how many seconds an earlier
    restart's back-off still ``hold``s it (0: start at once)."""

    message: str
    grace: float | None
    restart: bool
    hold: float


def after_probe_failure(pod: PodView, container: ContainerView, kind: str, *, now: float,
                        backoff: Backoff, sidecar: bool = False) -> ProbeRestart:
    """kubelet computePodActions for a container whose ``kind`` ("liveness" | "startup")
    probe failed: "Container <name> failed <kind> probe[, will be restarted]" (restarted
    unless restartPolicy is Never). The restart counts as a crash: the back-off counted
    from ``now`` holds it while an earlier restart's delay runs. A ``sidecar`` is always
    restarted: "Init container <name> failed <kind> probe"."""
    restart = sidecar or restart_policy(pod) != "Never"
    probe = container.liveness_probe if kind == "liveness" else container.startup_probe
    grace = None if probe is None or probe.termination_grace_period_seconds is None \
        else float(probe.termination_grace_period_seconds)
    message = f"Container {container.name} failed {kind} probe"
    if sidecar:
        message = f"Init container {container.name} failed {kind} probe"
    elif restart:
        message += ", will be restarted"
    held, remaining = backoff.in_backoff(backoff_key(pod, container.name), now, since=now) \
        if restart else (False, 0.0)
    return ProbeRestart(message, grace, restart, remaining if held else 0.0)
