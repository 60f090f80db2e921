"""The pod conditions the kubelet owns (PodReadyToStartContainers, Initialized, Ready,
ContainersReady) with Kubernetes' reasons and messages, and how they merge with the
conditions already written. Pure; :mod:`.status` calls them."""

from __future__ import annotations

from typing import Any

from podling.api.views import PodView
from podling.runtime.interface import NamespaceMode, PodSandboxStatus, SandboxState
from podling.util.timefmt import epoch_rfc3339

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


def container_state(status: dict[str, Any] | None) -> str:
    """'running' | 'terminated' | 'waiting' | 'unknown' of an API container status."""
    for key in ("running", "terminated", "waiting"):
        if status is not None and key in (status.get("state") or {}):
            return key
    return "unknown"




def any_app_started(pod: PodView, app_statuses: list[dict[str, Any]]) -> bool:
    names = {c.name for c in pod.spec.containers}
    return any(container_state(s) in ("running", "terminated") for s in app_statuses
               if s["name"] in names)


def _cond(kind: str, ok: bool, reason: str = "", *, message: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def ready_to_start_condition(pod: PodView, sandboxes: list[PodSandboxStatus],
                    ips: list[str]) -> dict[str, Any]:
    ordered = sorted(sandboxes, key=lambda s: (s.created_at, s.metadata.attempt), reverse=True)
    host_net = pod.spec.host_network
    want = NamespaceMode.NODE if host_net else NamespaceMode.POD
    ok = bool(ordered) and ordered[0].state == SandboxState.READY \
        and sum(s.state == SandboxState.READY for s in ordered) == 1 \
        and ordered[0].namespace_options.network == want and (host_net or bool(ips))
    return _cond("PodReadyToStartContainers", ok)


def initialized_condition(pod: PodView, init_statuses: list[dict[str, Any]],
                          app_statuses: list[dict[str, Any]], *, phase: str) -> dict[str, Any]:
    """Initialized: False/ContainersNotInitialized until every init container exited 0."""
    inits = pod.spec.init_containers
    if not inits:
        return _cond("Initialized", True)
    by_name = {s["name"]: s for s in init_statuses}
    unknown = [c.name for c in inits if c.name not in by_name]
    incomplete = [c.name for c in inits if c.name in by_name and (
        "running" not in by_name[c.name]["state"] if c.is_sidecar else
        (by_name[c.name]["state"].get("terminated") or {}).get("exitCode", 1) != 0)]
    if phase == "Succeeded" and not unknown:
        return _cond("Initialized", True, "PodCompleted")
    if any_app_started(pod, app_statuses):
        return _cond("Initialized", True)
    msgs = []
    if unknown:
        msgs.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        msgs.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if msgs:
        return _cond("Initialized", False, "ContainersNotInitialized", message=", ".join(msgs))
    return _cond("Initialized", True)


def ready_conditions(pod: PodView, statuses: list[dict[str, Any]], *, phase: str,
                      prev: dict[str, Any]) -> list[dict[str, Any]]:
    """[Ready, ContainersReady] (kubelet GeneratePodReadyCondition / ContainersReady):
    the sidecars (in initContainers order), then the app containers, must be ready.
    ``statuses``: the init and the app container statuses."""
    by_name = {s["name"]: s for s in statuses}
    names = [c.name for c in pod.spec.init_containers if c.is_sidecar] + \
        [c.name for c in pod.spec.containers]
    unknown = [n for n in names if n not in by_name]
    unready = [n for n in names if n in by_name and not by_name[n].get("ready")]
    if phase == "Succeeded" and not unknown:
        cr = _cond("ContainersReady", False, "PodCompleted")
    else:
        msgs = []
        if unknown:
            msgs.append(f"containers with unknown status: {_go_list(unknown)}")
        if unready:
            msgs.append(f"containers with unready status: {_go_list(unready)}")
        cr = _cond("ContainersReady", not msgs, "ContainersNotReady" if msgs else "",
                   message=", ".join(msgs))
    if cr["status"] != "True":
        ready = {**cr, "type": "Ready"}
    else:
        ready = _readiness_gates(pod, prev)
    return [ready, cr]


def _readiness_gates(pod: PodView, prev: dict[str, Any]) -> dict[str, Any]:
    conds = {c.get("type"): c for c in prev.get("conditions") or []}
    msgs = []
    for kind in pod.spec.readiness_gates:
        c = conds.get(kind)
        if c is None:
            msgs.append(f'corresponding condition of pod readiness gate "{kind}" does not exist.')
        elif c.get("status") != "True":
            msgs.append(f'the status of pod readiness gate "{kind}" is not "True", '
                        f'but {c.get("status")}')
    if msgs:
        return _cond("Ready", False, "ReadinessGatesNotReady", message=", ".join(msgs))
    return _cond("Ready", True)


def merge_conditions(new: list[dict[str, Any]], old: list[dict[str, Any]],
                     now: float) -> list[dict[str, Any]]:
    """The kubelet's conditions in its order, then PodScheduled (kept, else True now) and
    any other condition another writer owns. ``lastTransitionTime`` is kept while a
    condition's status is unchanged, else ``now``."""
    old_by_type = {c.get("type"): c for c in old}
    out = []
    for c in new:
        before = old_by_type.get(c["type"])
        kept = before.get("lastTransitionTime") if before is not None \
            and before.get("status") == c["status"] else None
        when = kept or epoch_rfc3339(now)
        out.append({**c, "lastProbeTime": None, "lastTransitionTime": when})
    out.append(old_by_type.get("PodScheduled") or {
        "type": "PodScheduled", "status": "True", "lastProbeTime": None,
        "lastTransitionTime": epoch_rfc3339(now)})
    out.extend(c for c in old if c.get("type") not in (*KUBELET_CONDITIONS, "PodScheduled"))
    return out
