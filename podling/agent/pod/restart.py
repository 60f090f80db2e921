"""The kubelet's restart rules over what the runtime reports of a pod's containers: which
instance of a container is current, its restart count, whether it should be restarted.

Pure; shared by the plan (:mod:`.plan`) and the status generator (:mod:`.status`).
"""

from __future__ import annotations

from podling.agent.kuberuntime import labels as L
from podling.api.views import PodView
from podling.runtime.interface import ContainerState, ContainerStatus


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


def should_restart(pod: PodView, status: ContainerStatus | None) -> bool:
    """kubelet ``ShouldContainerBeRestarted`` for the newest instance ``status``."""
    if pod.metadata.deleting:
        return False
    if status is None:
        return True
    if status.state == ContainerState.RUNNING:
        return False
    if status.state in (ContainerState.UNKNOWN, ContainerState.CREATED):
        return True
    policy = restart_policy(pod)
    if policy == "Never":
        return False
    return not (policy == "OnFailure" and status.exit_code == 0)


def is_terminating(pod: PodView) -> bool:
    """Deleted, or already in a terminal phase: kill, start nothing."""
    return pod.metadata.deleting or pod.status.terminal
