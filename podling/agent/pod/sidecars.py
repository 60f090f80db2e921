"""Sidecars: init containers with ``restartPolicy: Always`` (kubelet 1.32
``computeInitContainerActions``).

Pure; :mod:`.plan` calls :func:`plan_init` instead of its one-at-a-time init rule when the
pod has a sidecar. Init containers are walked in spec order::

    sidecar not running ─ before initialization ─▶ start it, wait (resync SIDECAR_RECHECK)
                        └ after initialization ──▶ restart it (back-off), beside the app
    sidecar running, its liveness / startup probe failed ─▶ kill and restart it (as above)
    sidecar running, startup probe not passed yet, before initialization ─▶ wait
    sidecar running (and started) ───────────────▶ next
    ordinary init, before initialization: none ─▶ start it; running ─▶ wait; exited 0 ─▶ next;
                                          failed ─▶ init_failed (Never: kill the pod)
    end of the list ─────────────────────────────▶ initialized: app containers may run

"Initialized" means an app container already ran in the kept sandbox. Sidecars never keep
a pod alive: when no app container is kept or started the plan kills the pod, sidecars
included, and restarts none of them (see ``drop_sidecar_restarts``); the pod's phase ignores
stopped sidecars (:mod:`.status`). Sidecars are stopped after the app containers, one at a
time in reverse order (:func:`stop_groups`), within what is left of the grace period.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from podling.agent.pod.actions import ContainerStart, PodActions
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import ContainerState, ContainerStatus

SIDECAR_RECHECK = 1.0  # seconds: look again after starting a sidecar before the next init
MIN_GRACE = 2.0  # seconds: the kubelet's minimumGracePeriodInSeconds

# the plan's start (or None: held by back-off) of init container ``index``
StartOrWait = Callable[[int, ContainerView, ContainerStatus | None], ContainerStart | None]


@dataclass(frozen=True)
class Probes:
    """What the prober says of the pod's running containers: ``failures`` (container ID →
    "liveness" | "startup"), ``unstarted`` (IDs whose startup probe has not succeeded) and
    ``on_failure(index, container, status, kind)``, the plan's kill of a failed sidecar
    returning its restart (None: held by back-off)."""

    failures: dict[str, str]
    unstarted: set[str]
    on_failure: Callable[[int, ContainerView, ContainerStatus, str], ContainerStart | None]


NO_PROBES = Probes({}, set(), lambda i, c, st, kind: None)


def has_sidecars(pod: PodView) -> bool:
    return any(c.is_sidecar for c in pod.spec.init_containers)


def is_sidecar(pod: PodView, name: str) -> bool:
    return any(c.is_sidecar and c.name == name for c in pod.spec.init_containers)


def _failed(st: ContainerStatus) -> bool:
    return st.state == ContainerState.UNKNOWN or (st.state == ContainerState.EXITED and (
        st.exit_code != 0 or st.reason == "OOMKilled"))


def plan_init(pod: PodView, kept: dict[str, ContainerStatus], *, never: bool,
              start_or_wait: StartOrWait, actions: PodActions,
              probes: Probes = NO_PROBES) -> bool:
    """The init step of a pod with sidecars; True when app containers may run. ``kept``:
    the latest container of each name in the kept sandbox."""
    initialized = any(c.name in kept for c in pod.spec.containers)
    restarts: list[ContainerStart] = []
    for idx, c in enumerate(pod.spec.init_containers):
        st = kept.get(c.name)
        running = st is not None and st.state == ContainerState.RUNNING
        if c.is_sidecar:
            failed = probes.failures.get(st.id) if st is not None and running else None
            if st is not None and running and failed is None:
                if initialized or st.id not in probes.unstarted:
                    continue
                recheck(actions)  # its startup probe holds back the next init container
                return False
            start = probes.on_failure(idx, c, st, failed) if failed and st is not None \
                else start_or_wait(idx, c, st)
            if initialized:
                restarts += [dataclasses.replace(start, init=True)] if start else []
                continue
            actions.next_init_container = start
            recheck(actions)
            return False
        if initialized:
            continue
        if running:
            return False
        if st is not None and st.state == ContainerState.EXITED and not _failed(st):
            continue
        if st is not None and _failed(st):
            actions.init_failed = True
            if never:
                actions.kill_pod = True
                return False
        actions.next_init_container = start_or_wait(idx, c, st)
        return False
    actions.containers_to_start[:0] = restarts
    return True


def recheck(actions: PodActions) -> None:
    """Look again soon: a sidecar just started, the next init container waits for it."""
    if actions.requeue_after is None or actions.requeue_after > SIDECAR_RECHECK:
        actions.requeue_after = SIDECAR_RECHECK


def drop_sidecar_restarts(actions: PodActions) -> None:
    """When the pod is killed (no app container left to run), no sidecar restarts."""
    actions.containers_to_start = [s for s in actions.containers_to_start if not s.init]


def stop_groups(pod: PodView, names: list[str]) -> list[list[str]]:
    """The order the kubelet stops a pod's containers in (kuberuntime termination
    ordering): every container that is not a sidecar at once, then the sidecars one at a
    time in reverse initContainers order. ``names``: the containers to stop (a name may
    repeat: several instances); each comes back once per occurrence."""
    order = [c.name for c in pod.spec.init_containers if c.is_sidecar]
    groups = [[n for n in names if n not in order]]
    groups += [[n for n in names if n == s] for s in reversed(order)]
    return [g for g in groups if g]


def grace_left(grace: float, elapsed: float) -> float:
    """The grace period left for a later stop group after ``elapsed`` seconds of the pod's
    ``grace``; at least 2 s (the kubelet's minimum) unless ``grace`` itself is smaller."""
    return max(min(grace, MIN_GRACE), grace - elapsed)
