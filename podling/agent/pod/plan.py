"""What one sync of a pod must do: a pure plan (docs/architecture.md §5, kubelet computePodActions).

``compute_pod_actions`` looks at the pod from the API and what the runtime reports and
returns a ``PodActions``; :meth:`podling.agent.pod.sync.PodSyncer.sync_pod` executes it:

1. kill: ``containers_to_kill`` (each with its message for the Killing event, preStop,
   grace), then stop ``kill_sandboxes`` (with ``kill_pod`` these are all the READY ones,
   and every one, dead too, when a new sandbox replaces them).
2. back-off: ``waiting`` lists the containers held by CrashLoopBackOff.
3. sandbox: if ``create_sandbox``, remove ``purge_init_containers``, run a new sandbox with
   ``sandbox_attempt`` (SandboxChanged when ``sandbox_changed``) and set up its network.
4. start ``next_init_container`` (then stop: the next sync looks again), else start
   ``containers_to_start`` in order; a start whose reason is ``REASON_RESTART`` steps the
   container's back-off (the executor does that, not the plan).
5. report ``waiting`` to the status generator; resync after ``requeue_after`` seconds when
   it is set.

The function only *reads* the back-off; it never mutates anything and does no I/O. It
assumes the inputs are already filtered to this pod (labels ``io.kubernetes.pod.uid``).

Sandbox decision (kubelet ``PodSandboxChanged``)::

    no sandbox ─────────────────────────────────────────▶ create, attempt 0
    >1 READY, newest not READY, or network mode changed ▶ kill all, create, attempt n+1
    newest READY and unique ─────────────────────────────▶ keep it

Container decision for each app container (kubelet ``ShouldContainerBeRestarted``)::

    never ran ──────────────────────────▶ start ("new")
    CREATED / UNKNOWN ──────────────────▶ kill the leftover, start ("restart")
    RUNNING, spec hash unchanged ───────▶ keep
    RUNNING, spec hash changed ─────────▶ kill + start ("spec changed"), no back-off
    EXITED: Always, or OnFailure ∧ exit≠0 ▶ start ("restart") unless in back-off, then
                                              waiting CrashLoopBackOff
    EXITED: Never, or OnFailure ∧ exit 0 ─▶ leave it
    nothing kept and nothing to (re)start ▶ kill_pod (the sandbox is stopped)

Init containers run one at a time in spec order; a failed one is restarted (with back-off)
unless restartPolicy is Never, which kills the pod (``init_failed``). Only the kept
sandbox's init containers count (after a sandbox change they all run again; the old ones
are listed in ``purge_init_containers``). Sidecars (init containers with ``restartPolicy:
Always``) follow :mod:`.sidecars`.

A pod with ``metadata.deletionTimestamp`` or a terminal ``status.phase`` is killed and
nothing is started. Containers whose name is not in the spec are killed. A running app
container whose liveness (else startup) probe failed (``probe_failures``: container ID →
kind) is killed and restarted as a crash. A pod past its ``activeDeadlineSeconds`` is killed
(``deadline_exceeded``); before it, the plan requeues at the deadline (:mod:`.deadline`).
An evicted pod (``evict``, :mod:`.eviction`) is killed at once (grace 0).
Ephemeral containers that never ran are started once (:mod:`.ephemeral`), alongside the
rest, unless the pod is killed; they count for nothing else here. In-place resize is out of
scope.
"""

from __future__ import annotations

import dataclasses

from podling.agent.backoff import Backoff, go_duration
from podling.agent.kuberuntime import labels as L
from podling.agent.pod import deadline, ephemeral, sidecars
from podling.agent.pod.actions import (CRASH_LOOP_BACK_OFF, KILL_NOT_IN_SPEC, KILL_PROBE,
                                       KILL_SPEC_CHANGED, KILL_UNKNOWN, REASON_NEW, REASON_RESTART,
                                       REASON_SPEC_CHANGED, ContainerKill, ContainerStart,
                                       PodActions)
from podling.agent.pod.restart import (after_probe_failure, backoff_key, is_terminating,
                                       latest_by_name, never_ran, restart_count_of, restart_policy,
                                       should_restart)
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import (ContainerState, ContainerStatus, NamespaceMode,
                                       PodSandboxStatus, SandboxState)

_LIVE = (ContainerState.RUNNING, ContainerState.CREATED, ContainerState.UNKNOWN)


# -- the plan ---------------------------------------------------------------------------------


def compute_pod_actions(pod: PodView, sandboxes: list[PodSandboxStatus],
                        containers: list[ContainerStatus], *, now: float,
                        backoff: Backoff, probe_failures: dict[str, str] | None = None,
                        evict: bool = False, unstarted: set[str] | None = None
                        ) -> PodActions:
    """The actions that move the pod towards its spec; pure (see the module docstring).
    ``unstarted``: IDs of running containers whose startup probe has not succeeded yet
    (a sidecar among them holds back the next init container).
    The starts and kills carry the containers' views; a running container's recorded spec
    hash is compared with the hash of ``ContainerView.raw``, the spec as received.
    ``evict``: the node evicts the pod (every container killed with grace 0)."""
    ordered = sorted(sandboxes, key=lambda s: (s.created_at, s.metadata.attempt), reverse=True)
    if is_terminating(pod):
        actions = PodActions(kill_pod=True)
    elif evict:
        actions = PodActions(kill_pod=True, evicted=True)
    elif deadline.past_deadline(pod, now):  # kubelet: evicted, then killed
        actions = PodActions(kill_pod=True, deadline_exceeded=True)
    else:
        create, attempt, keep = _sandbox_decision(pod, ordered)
        if create or keep is None:
            actions = _plan_new_sandbox(pod, ordered, containers, attempt=attempt, now=now,
                                        backoff=backoff)
        else:
            actions = _plan_existing(pod, ordered, keep, containers=containers, now=now,
                                     backoff=backoff, failures=probe_failures or {},
                                     unstarted=unstarted or set())
        actions.requeue_after = deadline.requeue_after(pod, now, actions.requeue_after)
    if actions.kill_pod:
        _kill_everything(ordered, containers, actions)
    _attach_specs(pod, actions)
    if actions.evicted:
        actions.containers_to_kill = {cid: dataclasses.replace(kill, grace=0.0)
                                      for cid, kill in actions.containers_to_kill.items()}
    return actions


def _plan_existing(pod: PodView, ordered: list[PodSandboxStatus],
                   keep: PodSandboxStatus, *, containers: list[ContainerStatus], now: float,
                   backoff: Backoff, failures: dict[str, str], unstarted: set[str]
                   ) -> PodActions:
    actions = PodActions(sandbox_id=keep.id, sandbox_attempt=keep.metadata.attempt)
    _kill_strays(pod, ordered, keep, containers=containers, actions=actions)
    kept = [c for c in containers if c.sandbox_id == keep.id]
    latest = latest_by_name(containers)
    probes = sidecars.Probes(failures, unstarted, lambda i, c, st, kind: _sidecar_probe_failure(
        pod, i, c, st, kind, now=now, backoff=backoff, actions=actions))
    if _plan_init(pod, latest_by_name(kept), latest, now=now, backoff=backoff, actions=actions,
                  probes=probes):
        _plan_app(pod, latest, now=now, backoff=backoff, actions=actions, failures=failures)
        if actions.kill_pod:
            sidecars.drop_sidecar_restarts(actions)
    if not actions.kill_pod:
        ephemeral.plan_starts(pod, latest, actions)
    return actions


def _sandbox_decision(pod: PodView, ordered: list[PodSandboxStatus]
                      ) -> tuple[bool, int, PodSandboxStatus | None]:
    """(create a new one?, its attempt, the sandbox to keep)."""
    if not ordered:
        return True, 0, None
    newest = ordered[0]
    ready = sum(1 for s in ordered if s.state == SandboxState.READY)
    want_net = NamespaceMode.NODE if pod.spec.host_network else NamespaceMode.POD
    if ready > 1 or newest.state != SandboxState.READY or \
            newest.namespace_options.network != want_net:
        return True, newest.metadata.attempt + 1, None
    return False, newest.metadata.attempt, newest


def _kill_everything(ordered: list[PodSandboxStatus], containers: list[ContainerStatus],
                     actions: PodActions) -> PodActions:
    """Every live container and READY sandbox goes (kept entries keep their messages); a
    sandbox about to be replaced goes even when it died, so that its network (its pod IP)
    is given back before the new sandbox takes one."""
    for c in containers:
        if c.state in _LIVE and c.id not in actions.containers_to_kill:
            actions.containers_to_kill[c.id] = ContainerKill(
                c.name, None, f"Stopping container {c.name}")
    actions.kill_sandboxes = [s.id for s in ordered
                              if actions.create_sandbox or s.state == SandboxState.READY]
    return actions


def _spec_by_name(pod: PodView) -> dict[str, ContainerView]:
    return {c.name: c for c in pod.spec.all_containers() + pod.spec.ephemeral_containers}


def _attach_specs(pod: PodView, actions: PodActions) -> None:
    specs = _spec_by_name(pod)
    for cid, kill in list(actions.containers_to_kill.items()):
        if kill.container is None and kill.name in specs:
            actions.containers_to_kill[cid] = ContainerKill(
                kill.name, specs[kill.name], kill.message, kill.reason)


def _plan_new_sandbox(pod: PodView, ordered: list[PodSandboxStatus],
                      containers: list[ContainerStatus], *, attempt: int, now: float,
                      backoff: Backoff) -> PodActions:
    actions = PodActions(
        kill_pod=True, create_sandbox=True, sandbox_attempt=attempt,
        sandbox_changed=bool(ordered))
    policy = restart_policy(pod)
    if policy == "Never" and attempt != 0 and any(_ran(c) for c in containers):
        actions.create_sandbox = actions.sandbox_changed = False
        return actions
    latest = latest_by_name(containers)
    apps = list(enumerate(pod.spec.containers))
    if policy == "OnFailure":
        apps = [(i, c) for i, c in apps if not _succeeded(latest.get(c.name))]
    inits = pod.spec.init_containers
    if not apps and _find_next_init(pod, latest, latest)[2]:
        actions.create_sandbox = actions.sandbox_changed = False
        return actions
    if inits:
        actions.purge_init_containers = [c.id for c in containers
                                         if c.name in {i.name for i in inits}]
        actions.next_init_container = _start_or_wait(
            pod, 0, inits[0], st=latest.get(inits[0].name), now=now, backoff=backoff,
            actions=actions)
        if inits[0].is_sidecar:
            sidecars.recheck(actions)
        return actions
    for idx, c in apps:
        start = _start_or_wait(pod, idx, c, st=latest.get(c.name), now=now,
                               backoff=backoff, actions=actions)
        if start:
            actions.containers_to_start.append(start)
    return actions


def _ran(status: ContainerStatus) -> bool:
    """Whether a container got to run (kubelet: it has a status at all; here, where a
    killed agent leaves containers it never started, one created but not started, or
    stopped before it started, did not: the pod's sandbox may be made again for it)."""
    return status.state != ContainerState.CREATED and not never_ran(status)


def _succeeded(status: ContainerStatus | None) -> bool:
    return status is not None and status.state == ContainerState.EXITED and \
        status.exit_code == 0


def _init_failed(status: ContainerStatus) -> bool:
    if status.state == ContainerState.UNKNOWN:
        return True
    return status.state == ContainerState.EXITED and (
        status.exit_code != 0 or status.reason == "OOMKilled")


def _find_next_init(pod: PodView, init_latest: dict[str, ContainerStatus],
                    app_latest: dict[str, ContainerStatus]
                    ) -> tuple[ContainerStatus | None, int | None, bool]:
    """kubelet ``findNextInitContainerToRun``: (last failed status, next index, done)."""
    inits = pod.spec.init_containers
    if not inits:
        return None, None, True
    for c in pod.spec.containers:
        st = app_latest.get(c.name)
        if st is not None and st.state == ContainerState.RUNNING:
            return None, None, True
    for i in range(len(inits) - 1, -1, -1):
        st = init_latest.get(inits[i].name)
        if st is not None and _init_failed(st):
            return st, i, False
    for i in range(len(inits) - 1, -1, -1):
        st = init_latest.get(inits[i].name)
        if st is None:
            continue
        if st.state == ContainerState.RUNNING:
            return None, None, False
        if st.state == ContainerState.EXITED:
            return (None, None, True) if i == len(inits) - 1 else (None, i + 1, False)
    return None, 0, False


def _plan_init(pod: PodView, init_latest: dict[str, ContainerStatus],
               latest: dict[str, ContainerStatus], *, now: float, backoff: Backoff,
               actions: PodActions, probes: sidecars.Probes) -> bool:
    """Plan the init step; True when initialization is done and app containers may run."""
    if sidecars.has_sidecars(pod):
        return sidecars.plan_init(
            pod, init_latest, never=restart_policy(pod) == "Never", actions=actions,
            probes=probes,
            start_or_wait=lambda i, c, st: _start_or_wait(pod, i, c, st=st, now=now,
                                                          backoff=backoff, actions=actions))
    last, nxt, done = _find_next_init(pod, init_latest, latest)
    if done:
        return True
    if nxt is None:
        return False
    container = pod.spec.init_containers[nxt]
    if last is not None and _init_failed(last):
        actions.init_failed = True
        if restart_policy(pod) == "Never":
            actions.kill_pod = True
            return False
    actions.next_init_container = _start_or_wait(
        pod, nxt, container, st=init_latest.get(container.name), now=now, backoff=backoff,
        actions=actions)
    return False


def _plan_app(pod: PodView, latest: dict[str, ContainerStatus], *, now: float,
              backoff: Backoff, actions: PodActions, failures: dict[str, str]) -> None:
    keep = wanted = 0
    for idx, c in enumerate(pod.spec.containers):
        st = latest.get(c.name)
        if st is None or st.state != ContainerState.RUNNING:
            if should_restart(pod, st):
                wanted += 1
                start = _start_or_wait(pod, idx, c, st=st, now=now, backoff=backoff,
                                       actions=actions)
                if start:
                    actions.containers_to_start.append(start)
            continue
        if st.id in failures:  # killed, restarted as a crash (restart.after_probe_failure)
            after = after_probe_failure(pod, c, failures[st.id], now=now, backoff=backoff)
            actions.containers_to_kill[st.id] = ContainerKill(c.name, c, after.message,
                                                              KILL_PROBE, after.grace)
            if after.restart and after.hold > 0:
                _wait(pod, c.name, actions, now=now, backoff=backoff, remaining=after.hold)
            elif after.restart:
                actions.containers_to_start.append(ContainerStart(
                    idx, c, REASON_RESTART, restart_count_of(st) + 1, now))
            wanted += after.restart
            continue
        recorded = st.annotations.get(L.CONTAINER_HASH)
        if recorded is None or recorded == L.container_hash(c.raw):
            keep += 1
            continue
        actions.containers_to_kill[st.id] = ContainerKill(
            c.name, c, f"Container {c.name} definition changed, will be restarted",
            KILL_SPEC_CHANGED)
        actions.containers_to_start.append(ContainerStart(
            idx, c, REASON_SPEC_CHANGED, restart_count_of(st) + 1))
    if keep == 0 and wanted == 0:
        actions.kill_pod = True


def _sidecar_probe_failure(pod: PodView, idx: int, c: ContainerView, st: ContainerStatus,
                           kind: str, *, now: float, backoff: Backoff,
                           actions: PodActions) -> ContainerStart | None:
    """A running sidecar whose liveness / startup probe failed: killed ("Init container X
    failed liveness probe") and restarted whatever the pod's restartPolicy, as a crash."""
    after = after_probe_failure(pod, c, kind, now=now, backoff=backoff, sidecar=True)
    actions.containers_to_kill[st.id] = ContainerKill(c.name, c, after.message, KILL_PROBE,
                                                      after.grace)
    if after.hold > 0:
        _wait(pod, c.name, actions, now=now, backoff=backoff, remaining=after.hold)
        return None
    return ContainerStart(idx, c, REASON_RESTART, restart_count_of(st) + 1, now)


def _wait(pod: PodView, name: str, actions: PodActions, *, now: float, backoff: Backoff,
          remaining: float) -> None:  # hold ``name`` in CrashLoopBackOff for ``remaining`` s
    delay = go_duration(backoff.current(backoff_key(pod, name), now))
    actions.waiting[name] = (CRASH_LOOP_BACK_OFF, (
        f"back-off {delay} restarting failed container={name} pod={L.format_pod(pod)}"))
    if actions.requeue_after is None or remaining < actions.requeue_after:
        actions.requeue_after = remaining


def _start_or_wait(pod: PodView, idx: int, container: ContainerView, *,
                   st: ContainerStatus | None, now: float, backoff: Backoff,
                   actions: PodActions) -> ContainerStart | None:
    """A start for ``container`` replacing ``st``, or None (and a CrashLoopBackOff waiting
    reason) while its back-off holds it."""
    name = container.name
    if st is None:
        return ContainerStart(idx, container, REASON_NEW, 0)
    if st.state in (ContainerState.CREATED, ContainerState.UNKNOWN):
        actions.containers_to_kill[st.id] = ContainerKill(
            name, container,
            f"Container is in \"{st.state.value.lower()}\" state, try killing it before restart",
            KILL_UNKNOWN)
    since = st.finished_at if st.state == ContainerState.EXITED and not never_ran(st) else 0.0
    if since:
        key = backoff_key(pod, name)
        held, remaining = backoff.in_backoff(key, now, since=since)
        if held:
            _wait(pod, name, actions, now=since, backoff=backoff, remaining=remaining)
            return None
    return ContainerStart(idx, container, REASON_RESTART, restart_count_of(st) + 1, since)


def _kill_strays(pod: PodView, ordered: list[PodSandboxStatus], keep: PodSandboxStatus,
                 *, containers: list[ContainerStatus], actions: PodActions) -> None:
    """Live containers outside the kept sandbox or not in the spec are stopped."""
    specs = _spec_by_name(pod)
    for c in containers:
        if c.state not in _LIVE:
            continue
        if c.name not in specs:
            actions.containers_to_kill[c.id] = ContainerKill(
                c.name, None, f"Container {c.name} is not in the pod spec", KILL_NOT_IN_SPEC)
        elif c.sandbox_id != keep.id:
            actions.containers_to_kill[c.id] = ContainerKill(
                c.name, specs[c.name], f"Stopping container {c.name}")
    actions.kill_sandboxes = [s.id for s in ordered
                              if s.id != keep.id and s.state == SandboxState.READY]
