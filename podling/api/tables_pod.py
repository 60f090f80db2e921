"""The pod row of ``kubectl get pods``: READY, STATUS, RESTARTS and the wide columns.

A faithful port of the rules in Kubernetes' ``printPod`` (pkg/printers/internalversion):

    STATUS = status.reason or status.phase
        → "SchedulingGated" when PodScheduled has reason SchedulingGated
        → first unfinished init container: Init:<reason> | Init:Signal:N | Init:ExitCode:N
                                           | Init:<waiting reason> | Init:i/n
        → else app containers, last to first: waiting reason > terminated reason
                                              > Signal:N / ExitCode:N
        → "Completed" with a ready running container: Running (Ready=True) or NotReady
        → deleted: "Unknown" when status.reason is NodeLost, else "Terminating" unless terminal

RESTARTS counts restarts (of restartable init containers and app containers once init is
done) and reads ``N (<age> ago)`` when a container has ``lastState.terminated.finishedAt``.
Everything here is pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podling.util.timefmt import human_duration, parse_rfc3339

from .pods import is_terminal_phase

NODE_LOST = "NodeLost"  # node.NodeUnreachablePodReason
_ROW_CONDITIONS = {
    "Succeeded": [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}],
    "Failed": [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}],
}


def parse_time(value: Any) -> datetime | None:
    """A metav1.Time / MicroTime string as an aware datetime; None when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def since(value: Any, now: datetime) -> str:
    """kubectl's translateTimestampSince: ``<unknown>`` for a missing time, else its age."""
    when = value if isinstance(value, datetime) else parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


@dataclass
class PodSummary:
    """What printPod accumulates while walking the container statuses."""

    reason: str
    ready: int = 0
    total: int = 0
    restarts: int = 0
    last_restart: datetime | None = None


def _later(current: datetime | None, status: Mapping[str, Any]) -> datetime | None:
    """The later of ``current`` and the container's last termination time."""
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    finished = parse_time(terminated.get("finishedAt"))
    if finished is None or (current is not None and finished <= current):
        return current
    return finished


def _condition_true(pod: Mapping[str, Any], ctype: str) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions)


def _exit_reason(prefix: str, terminated: Mapping[str, Any]) -> str:
    """``<prefix>Signal:N`` or ``<prefix>ExitCode:N`` for a termination without a reason."""
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode') or 0}"


def _init_reason(index: int, count: int, cstatus: Mapping[str, Any]) -> str:
    """The STATUS of a pod whose init container ``index`` (of ``count``) has not finished."""
    state = cstatus.get("state") or {}
    terminated, waiting = state.get("terminated"), state.get("waiting")
    if terminated is not None:
        reason = terminated.get("reason") or ""
        return f"Init:{reason}" if reason else _exit_reason("Init:", terminated)
    if waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
        return f"Init:{waiting['reason']}"
    return f"Init:{index}/{count}"


def _walk_init_containers(pod: Mapping[str, Any],
                          summary: PodSummary) -> tuple[bool, int, datetime | None]:
    """Count init restarts and set the ``Init:`` reason of the first unfinished init container.

    Returns (initializing, restarts of restartable init containers, their last restart).
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = spec.get("initContainers") or []
    restartable = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    summary.total += len(restartable)
    sidecar_restarts, sidecar_last = 0, None
    for index, cstatus in enumerate(status.get("initContainerStatuses") or []):
        summary.restarts += cstatus.get("restartCount") or 0
        summary.last_restart = _later(summary.last_restart, cstatus)
        is_sidecar = cstatus.get("name") in restartable
        if is_sidecar:
            sidecar_restarts += cstatus.get("restartCount") or 0
            sidecar_last = _later(sidecar_last, cstatus)
        terminated = (cstatus.get("state") or {}).get("terminated")
        if terminated is not None and (terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and cstatus.get("started") is True:
            summary.ready += 1 if cstatus.get("ready") else 0
            continue
        summary.reason = _init_reason(index, len(init_specs), cstatus)
        return True, sidecar_restarts, sidecar_last
    return False, sidecar_restarts, sidecar_last


def _walk_app_containers(pod: Mapping[str, Any], summary: PodSummary) -> None:
    """Walk app container statuses last to first; the first one listed with a reason wins."""
    has_running = False
    for cstatus in reversed((pod.get("status") or {}).get("containerStatuses") or []):
        summary.restarts += cstatus.get("restartCount") or 0
        summary.last_restart = _later(summary.last_restart, cstatus)
        state = cstatus.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            summary.reason = waiting["reason"]
        elif terminated is not None:
            summary.reason = terminated.get("reason") or _exit_reason("", terminated)
        elif cstatus.get("ready") and state.get("running") is not None:
            has_running = True
            summary.ready += 1
    if summary.reason == "Completed" and has_running:
        summary.reason = "Running" if _condition_true(pod, "Ready") else "NotReady"


def summarize(pod: Mapping[str, Any]) -> PodSummary:
    """READY counts, STATUS reason and RESTARTS of ``pod`` (a v1 Pod as a dict)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    summary = PodSummary(reason=status.get("reason") or phase,
                       total=len(spec.get("containers") or []))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            summary.reason = "SchedulingGated"
    initializing, sidecar_restarts, sidecar_last = _walk_init_containers(pod, summary)
    if not initializing or _condition_true(pod, "Initialized"):
        summary.restarts, summary.last_restart = sidecar_restarts, sidecar_last
        _walk_app_containers(pod, summary)
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        if status.get("reason") == NODE_LOST:
            summary.reason = "Unknown"
        elif not is_terminal_phase(phase):
            summary.reason = "Terminating"
    return summary


def pod_status(pod: Mapping[str, Any]) -> str:
    """The STATUS column kubectl shows for ``pod`` (``Running``, ``Init:0/2``, ...)."""
    return summarize(pod).reason


def _readiness_gates(pod: Mapping[str, Any]) -> str:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = (pod.get("status") or {}).get("conditions") or []
    passed = 0
    for gate in gates:
        match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
        passed += 1 if match is not None and match.get("status") == "True" else 0
    return f"{passed}/{len(gates)}"


def pod_row(pod: Mapping[str, Any],
            now: datetime) -> tuple[list[Any], list[dict[str, str]] | None]:
    """The cells (Name, Ready, Status, Restarts, Age, IP, Node, Nominated Node, Readiness Gates)
    and the row conditions (``Completed`` for a terminal pod, else None) of ``pod``."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    summary = summarize(pod)
    restarts = str(summary.restarts)
    if summary.restarts and summary.last_restart is not None:
        restarts = f"{summary.restarts} ({since(summary.last_restart, now)} ago)"
    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    cells = [
        meta.get("name") or "", f"{summary.ready}/{summary.total}", summary.reason, restarts,
        since(meta.get("creationTimestamp"), now), pod_ip, spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>", _readiness_gates(pod),
    ]
    return cells, _ROW_CONDITIONS.get(status.get("phase") or "")
