"""The API PodStatus of a pod from what the runtime reports (pure; kubelet
``generateAPIPodStatus`` / ``convertToAPIContainerStatuses`` / ``getPhase`` / status/generate).

Only the status manager writes the result to the API. Inputs are the pod from the API (its
view; the status the agent wrote before comes as the raw ``previous_status`` dict, since its
container states and conditions are carried over as written), the
runtime's sandboxes and containers of this pod (every attempt, every sandbox), the agent's
``waiting`` reasons (last start failure per container name: ErrImagePull, ImagePullBackOff,
CrashLoopBackOff, CreateContainerConfigError, …; the kubelet's reason cache) and
``readiness`` / ``started`` (container name → bool for running app containers, from
:mod:`podling.agent.prober`; a running container missing from them is started, and ready
unless it has a readinessProbe).

Container status state (per spec container, newest runtime instance first)::

    no instance ─▶ waiting ContainerCreating (PodInitializing when the pod has init containers)
    CREATED ─────▶ waiting {}          RUNNING ─▶ running {startedAt}
    EXITED ──────▶ terminated {exitCode, reason, message, startedAt, finishedAt, containerID}
    UNKNOWN (was running) ─▶ terminated ContainerStatusUnknown, exit 137
    the 2nd newest instance ─▶ lastState
    will be restarted ∧ name in ``waiting`` ─▶ waiting {reason, message}, lastState = the
                                               terminated state it replaces

Phase (kubelet getPhase)::

    a failed init container ∧ restartPolicy Never ─────────────────────▶ Failed
    init pending ∧ no app container started, or an app container waiting ▶ Pending
    an app container running, none unknown ────────────────────────────▶ Running
    all stopped: terminal (deleted, all stopped) ─▶ Succeeded if all exit 0 else Failed
                 Always ─▶ Running; all exit 0 ─▶ Succeeded; Never ─▶ Failed;
                 OnFailure ─▶ Running
    otherwise ─────────────────────────────────────────────────────────▶ Pending
    a terminal phase in ``previous_status`` never changes.

Choices (documented deviations): ``containerID`` is ``podling://<runtime id>``; the image
and imageID come from the container annotations ``io.podling.container.image`` /
``io.podling.container.imageID`` (falling back to the spec image and ""); ``podIPs`` keep
their previous value when ``pod_ips`` is empty; PodReadyToStartContainers also requires a
pod IP for non-hostNetwork pods. ``started`` is false unless the container runs and has
passed its startup probe; ``ready`` also needs ``started``.
"""

from __future__ import annotations

from typing import Any

from podling.agent.kuberuntime.labels import IMAGE_ANNOTATION, IMAGE_ID_ANNOTATION
from podling.agent.pod.restart import latest_by_name, restart_count_of, should_restart
from podling.api.pods import is_terminal_phase
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import (ContainerState, ContainerStatus, NamespaceMode,
                                       PodSandboxStatus, SandboxState)
from podling.util.timefmt import epoch_rfc3339

CONTAINER_ID_SCHEME = "podling://"
STATUS_UNKNOWN = "ContainerStatusUnknown"
MSG_GONE_DELETED = ("The container could not be located when the pod was deleted.  "
                    "The container used to be Running")
MSG_GONE_TERMINATED = "The container could not be located when the pod was terminated"

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


def pod_status(pod: PodView, sandboxes: list[PodSandboxStatus],
               containers: list[ContainerStatus], *, now: float,
               waiting: dict[str, tuple[str, str]], pod_ips: list[str], host_ip: str,
               previous_status: dict[str, Any],
               readiness: dict[str, bool] | None = None,
               started: dict[str, bool] | None = None) -> dict[str, Any]:
    """The PodStatus to write (see the module docstring). Pure; ``now`` stamps new
    transitions and a first startTime."""
    prev = previous_status or {}
    ctx = _Ctx(pod, containers, prev=prev, waiting=waiting, readiness=readiness or {},
               started=started or {})
    init_statuses = [ctx.container_status(c, init=True) for c in pod.spec.init_containers]
    app_statuses = [ctx.container_status(c, init=False) for c in pod.spec.containers]
    terminal = pod.metadata.deleting and not any(
        c.state in (ContainerState.RUNNING, ContainerState.CREATED) for c in containers)
    phase = get_phase(pod, init_statuses, app_statuses, terminal=terminal)
    if is_terminal_phase(prev.get("phase")):
        phase = prev["phase"]
    ips = list(pod_ips) or [p["ip"] for p in prev.get("podIPs") or [] if p.get("ip")]
    status: dict[str, Any] = {"phase": phase}
    conds = [_ready_to_start(pod, sandboxes, ips),
             initialized_condition(pod, init_statuses, app_statuses, phase=phase),
             *_ready_conditions(pod, app_statuses, phase=phase, prev=prev)]
    status["conditions"] = merge_conditions(conds, prev.get("conditions") or [], now)
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    status["startTime"] = prev.get("startTime") or epoch_rfc3339(now)
    for key in ("qosClass", "reason", "message", "nominatedNodeName"):
        if prev.get(key):
            status[key] = prev[key]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = app_statuses
    return status


# -- container statuses ----------------------------------------------------------------------


class _Ctx:
    """What every container status needs; a bag of inputs, no state of its own."""

    def __init__(self, pod: PodView, containers: list[ContainerStatus], *,
                 prev: dict[str, Any], waiting: dict[str, tuple[str, str]],
                 readiness: dict[str, bool], started: dict[str, bool]) -> None:
        self.pod = pod
        self.deleted = pod.metadata.deleting
        self.has_init = bool(pod.spec.init_containers)
        self.by_name: dict[str, list[ContainerStatus]] = {}
        for c in sorted(containers, key=lambda c: (c.created_at, c.attempt), reverse=True):
            self.by_name.setdefault(c.name, []).append(c)
        self.latest = latest_by_name(containers)
        self.old = {s["name"]: s for s in (prev.get("initContainerStatuses") or [])
                    + (prev.get("containerStatuses") or [])}
        self.waiting = waiting
        self.readiness = readiness
        self.started = started

    def container_status(self, spec: ContainerView, *, init: bool) -> dict[str, Any]:
        name = spec.name
        status = self._default(spec)
        instances = self.by_name.get(name, [])[:2]
        if instances:
            status = self._convert(spec, instances[0])
            if len(instances) > 1:
                status["lastState"] = self._convert(spec, instances[1])["state"]
        self._apply_waiting(spec, status, init=init)
        running = "running" in status["state"]
        started = running and (init or self.started.get(name, True))
        status["started"] = started
        if init:
            term = status["state"].get("terminated")
            status["ready"] = bool(term and term.get("exitCode") == 0)
        else:
            has_probe = spec.readiness_probe is not None
            status["ready"] = started and self.readiness.get(name, not has_probe)
        return status

    def _default(self, spec: ContainerView) -> dict[str, Any]:
        reason = "PodInitializing" if self.has_init else "ContainerCreating"
        status: dict[str, Any] = {
            "name": spec.name, "image": spec.image, "imageID": "",
            "state": {"waiting": {"reason": reason}}, "lastState": {}, "restartCount": 0}
        old = self.old.get(spec.name)
        if old is None:
            return status
        if "terminated" in (old.get("state") or {}):
            return {**status, **old}
        status["restartCount"] = old.get("restartCount", 0)
        status["lastState"] = old.get("lastState") or {}
        if "running" in (old.get("state") or {}) and "terminated" not in status["lastState"]:
            # It ran and vanished from the runtime: stopped, not "never started".
            status["lastState"] = {"terminated": {
                "exitCode": 137, "reason": STATUS_UNKNOWN, "message": MSG_GONE_DELETED}}
            if not self.deleted:
                status["restartCount"] += 1
        return status

    def _convert(self, spec: ContainerView, c: ContainerStatus) -> dict[str, Any]:
        cid = CONTAINER_ID_SCHEME + c.id
        status: dict[str, Any] = {
            "name": spec.name,
            "image": c.annotations.get(IMAGE_ANNOTATION, spec.image),
            "imageID": c.annotations.get(IMAGE_ID_ANNOTATION, ""), "containerID": cid,
            "lastState": {}, "restartCount": restart_count_of(c)}
        old = self.old.get(spec.name) or {}
        if c.state == ContainerState.RUNNING:
            status["state"] = {"running": _times({}, startedAt=c.started_at)}
        elif c.state == ContainerState.EXITED:
            term: dict[str, Any] = {"exitCode": c.exit_code}
            if c.reason:
                term["reason"] = c.reason
            if c.message:
                term["message"] = c.message
            _times(term, startedAt=c.started_at, finishedAt=c.finished_at)
            term["containerID"] = cid
            status["state"] = {"terminated": term}
        elif c.state == ContainerState.UNKNOWN and "running" in (old.get("state") or {}):
            status["state"] = {"terminated": {
                "exitCode": 137, "reason": STATUS_UNKNOWN, "message": MSG_GONE_TERMINATED}}
            if not self.deleted:
                status["restartCount"] += 1
        else:
            status["state"] = {"waiting": {}}
        return status

    def _apply_waiting(self, spec: ContainerView, status: dict[str, Any], *, init: bool) -> None:
        name = spec.name
        latest = self.latest.get(name)
        if init and latest is not None and latest.state == ContainerState.EXITED \
                and latest.exit_code == 0:
            return
        if name not in self.waiting or not should_restart(self.pod, latest):
            return
        if "terminated" in status["state"]:
            status["lastState"] = status["state"]
        reason, message = self.waiting[name]
        status["state"] = {"waiting": {k: v for k, v in
                                       (("reason", reason), ("message", message)) if v}}


def _times(d: dict[str, Any], **fields: float) -> dict[str, Any]:
    for key, value in fields.items():
        if value:
            d[key] = epoch_rfc3339(value)
    return d


# -- phase -------------------------------------------------------------------------------------


def _state(status: dict[str, Any] | None) -> str:
    """'running' | 'terminated' | 'waiting' | 'unknown' of an API container status."""
    for key in ("running", "terminated", "waiting"):
        if status is not None and key in (status.get("state") or {}):
            return key
    return "unknown"


def _stopped_before(status: dict[str, Any]) -> dict[str, Any] | None:
    return (status.get("lastState") or {}).get("terminated")


def get_phase(pod: PodView, init_statuses: list[dict[str, Any]],
              app_statuses: list[dict[str, Any]], *, terminal: bool = False) -> str:
    """kubelet getPhase over API container statuses (see the module docstring)."""
    policy = pod.spec.restart_policy
    by_name = {s["name"]: s for s in init_statuses + app_statuses}
    pending_init = failed_init = 0
    for c in pod.spec.init_containers:
        st = by_name.get(c.name)
        kind = _state(st)
        before = _stopped_before(st) if st is not None else None
        if st is not None and kind == "terminated":
            failed_init += st["state"]["terminated"].get("exitCode", 0) != 0
        elif kind == "waiting" and before is not None:
            failed_init += before.get("exitCode", 0) != 0
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for c in pod.spec.containers:
        st = by_name.get(c.name)
        kind = _state(st)
        if st is None or kind == "unknown":
            unknown += 1
        elif kind == "running":
            running += 1
        elif kind == "terminated":
            stopped += 1
            succeeded += st["state"]["terminated"].get("exitCode", 0) == 0
        elif _stopped_before(st) is not None:
            stopped += 1
        else:
            waiting += 1
    if failed_init and policy == "Never":
        return "Failed"
    if (pending_init and not _any_app_started(pod, app_statuses)) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _any_app_started(pod: PodView, app_statuses: list[dict[str, Any]]) -> bool:
    names = {c.name for c in pod.spec.containers}
    return any(_state(s) in ("running", "terminated") for s in app_statuses
               if s["name"] in names)


# -- conditions ----------------------------------------------------------------------------------


def _cond(kind: str, ok: bool, reason: str = "", *, message: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def _ready_to_start(pod: PodView, sandboxes: list[PodSandboxStatus],
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
    incomplete = [c.name for c in inits if c.name in by_name and
                  (by_name[c.name]["state"].get("terminated") or {}).get("exitCode", 1) != 0]
    if phase == "Succeeded" and not unknown:
        return _cond("Initialized", True, "PodCompleted")
    if _any_app_started(pod, app_statuses):
        return _cond("Initialized", True)
    msgs = []
    if unknown:
        msgs.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        msgs.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if msgs:
        return _cond("Initialized", False, "ContainersNotInitialized", message=", ".join(msgs))
    return _cond("Initialized", True)


def _ready_conditions(pod: PodView, app_statuses: list[dict[str, Any]], *, phase: str,
                      prev: dict[str, Any]) -> list[dict[str, Any]]:
    """[Ready, ContainersReady] (kubelet GeneratePodReadyCondition / ContainersReady)."""
    by_name = {s["name"]: s for s in app_statuses}
    names = [c.name for c in pod.spec.containers]
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
