"""The API PodStatus of a pod from what the runtime reports (pure; kubelet
``generateAPIPodStatus`` / ``convertToAPIContainerStatuses`` / ``getPhase`` / status/generate).

Only the status manager writes the result to the API. Inputs are the pod from the API (its
view; the status the agent wrote before comes as the raw ``previous_status`` dict, since its
container states and conditions are carried over as written), the
runtime's sandboxes and containers of this pod (every attempt, every sandbox), the agent's
``waiting`` reasons (last start failure per container name: ErrImagePull, ImagePullBackOff,
CrashLoopBackOff, CreateContainerConfigError, …; the kubelet's reason cache) and
``readiness`` / ``started`` (container name → bool for running app containers and sidecars, from
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
passed its startup probe; ``ready`` also needs ``started``. The conditions come from
:mod:`.conditions`. Ephemeral containers get ``ephemeralContainerStatuses`` (built as an init
container's, adjusted by :func:`.ephemeral.api_statuses`) and count for neither the phase
nor the conditions.
"""

from __future__ import annotations

from typing import Any

from podling.agent.kuberuntime.labels import IMAGE_ANNOTATION, IMAGE_ID_ANNOTATION
from podling.agent.pod import ephemeral
from podling.agent.pod.conditions import (any_app_started, container_state, initialized_condition,
                                          merge_conditions, ready_conditions,
                                          ready_to_start_condition)
from podling.agent.pod.restart import (latest_by_name, never_ran, restart_count_of,
                                       should_restart)
from podling.api.pods import is_terminal_phase
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import ContainerState, ContainerStatus, PodSandboxStatus
from podling.util.timefmt import epoch_rfc3339

CONTAINER_ID_SCHEME = "podling://"
STATUS_UNKNOWN = "ContainerStatusUnknown"
MSG_GONE_DELETED = ("The container could not be located when the pod was deleted.  "
                    "The container used to be Running")
MSG_GONE_TERMINATED = "The container could not be located when the pod was terminated"



def pod_status(pod: PodView, sandboxes: list[PodSandboxStatus],
               containers: list[ContainerStatus], *, now: float,
               waiting: dict[str, tuple[str, str]], pod_ips: list[str], host_ip: str,
               previous_status: dict[str, Any],
               readiness: dict[str, bool] | None = None,
               evicted: tuple[str, str] | None = None,
               started: dict[str, bool] | None = None) -> dict[str, Any]:
    """The PodStatus to write (see the module docstring). Pure; ``now`` stamps new
    transitions and a first startTime. ``evicted`` (reason, message): the kubelet ends the
    pod (activeDeadlineSeconds): phase Failed with that reason and message."""
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
    elif evicted is not None:
        phase = "Failed"
    ips = list(pod_ips) or [p["ip"] for p in prev.get("podIPs") or [] if p.get("ip")]
    status: dict[str, Any] = {"phase": phase}
    conds = [ready_to_start_condition(pod, sandboxes, ips),
             initialized_condition(pod, init_statuses, app_statuses, phase=phase),
             *ready_conditions(pod, init_statuses + app_statuses, phase=phase, prev=prev)]
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
    if evicted is not None and not is_terminal_phase(prev.get("phase")):
        status["reason"], status["message"] = evicted
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = app_statuses
    ephemeral_statuses = ephemeral.api_statuses(
        pod, lambda c: ctx.container_status(c, init=True))
    if ephemeral_statuses:
        status["ephemeralContainerStatuses"] = ephemeral_statuses
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
                    + (prev.get("containerStatuses") or [])
                    + (prev.get("ephemeralContainerStatuses") or [])}
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
        plain_init = init and not spec.is_sidecar  # a sidecar is ready as an app container is
        started = running and (plain_init or self.started.get(name, True))
        status["started"] = started
        if plain_init:
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
        elif c.state == ContainerState.EXITED and not never_ran(c):
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
        if name not in self.waiting or not (spec.is_sidecar or should_restart(self.pod, latest)):
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


def _stopped_before(status: dict[str, Any]) -> dict[str, Any] | None:
    return (status.get("lastState") or {}).get("terminated")


def get_phase(pod: PodView, init_statuses: list[dict[str, Any]],
              app_statuses: list[dict[str, Any]], *, terminal: bool = False) -> str:
    """kubelet getPhase over API container statuses (see the module docstring)."""
    policy = pod.spec.restart_policy
    by_name = {s["name"]: s for s in init_statuses + app_statuses}
    pending_init = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in pod.spec.init_containers:
        st = by_name.get(c.name)
        kind = container_state(st)
        before = _stopped_before(st) if st is not None else None
        if c.is_sidecar:  # kubelet: running counts, stopped sidecars do not
            running += kind == "running"
            unknown += st is None or kind == "unknown"
            pending_init += kind == "waiting" and before is None
            waiting += kind == "waiting" and before is None
        elif st is not None and kind == "terminated":
            failed_init += st["state"]["terminated"].get("exitCode", 0) != 0
        elif kind == "waiting" and before is not None:
            failed_init += before.get("exitCode", 0) != 0
        else:
            pending_init += 1
    for c in pod.spec.containers:
        st = by_name.get(c.name)
        kind = container_state(st)
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
    if (pending_init and not any_app_started(pod, app_statuses)) or waiting:
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
