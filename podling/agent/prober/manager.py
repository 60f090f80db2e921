"""The prober manager and its results (kubelet prober/prober_manager.go, results/).

    sync_pod ──(each sync, from what the runtime reports)──▶ one worker task per probe of
       every running app container: started for a new container ID (a fresh start or an
       adopted one), cancelled when the container stops or is replaced
    worker ──set_result──▶ results[(uid, name, kind)] = (container ID, result)
                              └─ changed ─▶ notify(uid): the pod's worker syncs again
    sync_pod's plan ◀── failures(uid): {container ID: "liveness" | "startup"}
    pod status      ◀── container_states(...): started / ready per container name
    remove_pod(uid) ──▶ every worker of the pod cancelled, its results forgotten

Initial results when a worker starts (as the kubelet's): readiness Failure, liveness
Success, startup none (the container is not started until its startup probe succeeds).

``started`` of a running container: its startup probe succeeded, or it has none. ``ready``:
started and its readiness probe's result is Success, or it has no readiness probe.
Sidecars (init containers with ``restartPolicy: Always``) are probed as app containers
are; ordinary init containers are not probed.

All methods run on the agent's event loop; ``close`` cancels every worker and closes the
HTTP session (idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import aiohttp

from podling.agent.prober.handlers import FAILURE, SUCCESS, ProbeTarget
from podling.agent.prober.worker import (LIVENESS, READINESS, STARTUP, ProbeWorker,
                                         WorkerKey, WorkerSpec)
from podling.api.views import ContainerView, PodView, ProbeView
from podling.runtime.interface import ContainerState, ContainerStatus, RuntimeService
from podling.client.events import EventRecorder
from podling.util.clock import Clock

log = logging.getLogger(__name__)

KILL_KINDS = {LIVENESS: "liveness", STARTUP: "startup"}


def probes_of(container: ContainerView) -> dict[str, ProbeView]:
    """The container's probes by kind."""
    found = {STARTUP: container.startup_probe, LIVENESS: container.liveness_probe,
             READINESS: container.readiness_probe}
    return {kind: probe for kind, probe in found.items() if probe is not None}


def probed(pod: PodView) -> list[ContainerView]:
    """The containers probes run in: the sidecars, then the app containers."""
    return [c for c in pod.spec.init_containers if c.is_sidecar] + list(pod.spec.containers)


def _running_by_name(containers: list[ContainerStatus]) -> dict[str, ContainerStatus]:
    """The newest running instance of each container name."""
    out: dict[str, ContainerStatus] = {}
    for c in sorted(containers, key=lambda c: (c.created_at, c.attempt)):
        if c.state == ContainerState.RUNNING:
            out[c.name] = c
    return out


class ProbeManager:
    """Probe workers and their results for the pods of one node (see the module
    docstring). ``notify(uid)`` is called when a result of the pod changes."""

    def __init__(self, *, runtime: RuntimeService, recorder: EventRecorder, clock: Clock,
                 notify: Callable[[str], None] | None = None) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._clock = clock
        self.notify: Callable[[str], None] = notify or (lambda uid: None)
        self._workers: dict[WorkerKey, tuple[ProbeWorker, asyncio.Task[None]]] = {}
        self._results: dict[WorkerKey, tuple[str, str]] = {}
        self._session: aiohttp.ClientSession | None = None

    # -- workers -------------------------------------------------------------------------

    def sync_pod(self, pod: PodView, containers: list[ContainerStatus], *,
                 pod_ip: str) -> None:
        """Start the workers of the pod's running sidecars and app containers that have
        none for their current container ID; cancel the others (idempotent).
        ``containers`` are the runtime's containers of this pod."""
        uid = pod.metadata.uid
        running = _running_by_name(containers)
        wanted: set[WorkerKey] = set()
        if not pod.metadata.deleting:
            for spec in probed(pod):
                st = running.get(spec.name)
                for kind, probe in (probes_of(spec).items() if st is not None else ()):
                    key = WorkerKey(uid, spec.name, kind)
                    wanted.add(key)
                    assert st is not None
                    self._ensure(key, probe, pod=pod, spec=spec, status=st, pod_ip=pod_ip)
        for key in [k for k in self._workers if k.uid == uid and k not in wanted]:
            self._stop(key)

    def _ensure(self, key: WorkerKey, probe: ProbeView, *, pod: PodView,
                spec: ContainerView, status: ContainerStatus, pod_ip: str) -> None:
        current = self._workers.get(key)
        if current is not None and current[0].spec.container_id == status.id:
            return
        if current is not None:
            self._stop(key)
        cid = status.id
        target = ProbeTarget(container=spec, pod_ip=pod_ip, session=self._http(),
                             exec_sync=lambda argv, t: self._runtime.exec_sync(cid, argv, t))
        worker = ProbeWorker(
            WorkerSpec(key, probe, cid, status.started_at or self._clock.now(), pod.raw,
                       target, pod.spec.field_path(key.container)),
            clock=self._clock, recorder=self._recorder,
            is_started=lambda: self._started(key.uid, key.container, cid),
            set_result=self._set_result)
        if key.kind == READINESS:
            self._results[key] = (cid, FAILURE)
        elif key.kind == LIVENESS:
            self._results[key] = (cid, SUCCESS)
        task = asyncio.get_running_loop().create_task(
            self._run(worker), name=f"probe-{key.uid}-{key.container}-{key.kind}")
        self._workers[key] = (worker, task)

    async def _run(self, worker: ProbeWorker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end probing silently for ever
            log.exception("probe worker %s failed", worker.spec.key)

    def _stop(self, key: WorkerKey) -> None:
        entry = self._workers.pop(key, None)
        if entry is not None:
            entry[1].cancel()
        self._results.pop(key, None)

    def stop_container(self, uid: str, name: str) -> None:
        """Cancel the workers of the pod's container ``name`` and forget their results:
        it is about to be killed (no probe runs into a stopping container). Idempotent."""
        for key in [k for k in self._workers if k.uid == uid and k.container == name]:
            self._stop(key)

    def remove_pod(self, uid: str) -> None:
        """Cancel every worker of the pod and forget its results (idempotent)."""
        for key in [k for k in self._workers if k.uid == uid]:
            self._stop(key)
        for key in [k for k in self._results if k.uid == uid]:
            del self._results[key]

    def worker_count(self) -> int:
        """How many workers are still probing (not ended, not cancelled)."""
        return sum(1 for _, task in self._workers.values() if not task.done())

    # -- results ---------------------------------------------------------------------------

    def _set_result(self, key: WorkerKey, container_id: str, result: str) -> None:
        entry = self._workers.get(key)
        if entry is None or entry[0].spec.container_id != container_id:
            return  # a stopped worker's late result
        before = self._results.get(key)
        self._results[key] = (container_id, result)
        if before != (container_id, result):
            self.notify(key.uid)

    def _result(self, key: WorkerKey, container_id: str) -> str | None:
        found = self._results.get(key)
        return found[1] if found is not None and found[0] == container_id else None

    def _started(self, uid: str, name: str, container_id: str) -> bool:
        key = WorkerKey(uid, name, STARTUP)
        if key not in self._workers and key not in self._results:
            return True
        return self._result(key, container_id) == SUCCESS

    def failures(self, uid: str) -> dict[str, str]:
        """Container ID → "liveness" or "startup" for the pod's containers whose liveness
        (else startup) probe failed: the plan kills (and restarts) them."""
        out: dict[str, str] = {}
        for kind in (STARTUP, LIVENESS):  # liveness wins, as in the kubelet
            for key, (cid, result) in self._results.items():
                if key.uid == uid and key.kind == kind and result == FAILURE:
                    out[cid] = KILL_KINDS[kind]
        return out

    def unstarted(self, pod: PodView, containers: list[ContainerStatus]) -> set[str]:
        """IDs of the pod's running sidecars and app containers that have a startup probe
        which has not succeeded yet (also before its worker runs): a sidecar among them
        holds back the next init container."""
        running = _running_by_name(containers)
        out: set[str] = set()
        for spec in probed(pod):
            st = running.get(spec.name)
            if st is not None and spec.startup_probe is not None and self._result(
                    WorkerKey(pod.metadata.uid, spec.name, STARTUP), st.id) != SUCCESS:
                out.add(st.id)
        return out

    def container_states(self, pod: PodView, containers: list[ContainerStatus]
                         ) -> tuple[dict[str, bool], dict[str, bool]]:
        """(ready, started) by sidecar and app container name for the pod's running
        containers (the kubelet's UpdatePodStatus); names without a running instance are
        absent."""
        uid = pod.metadata.uid
        ready: dict[str, bool] = {}
        started: dict[str, bool] = {}
        running = _running_by_name(containers)
        for spec in probed(pod):
            st = running.get(spec.name)
            if st is None:
                continue
            started[spec.name] = ok = self._started(uid, spec.name, st.id)
            key = WorkerKey(uid, spec.name, READINESS)
            if spec.readiness_probe is None:
                ready[spec.name] = ok
            else:
                ready[spec.name] = ok and self._result(key, st.id) == SUCCESS
        return ready, started

    # -- resources -------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        """The HTTP session every httpGet probe shares: no keep-alive (a connection per
        probe, as the kubelet's), no cookies."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def close(self) -> None:
        """Cancel every worker and close the HTTP session (idempotent)."""
        tasks = [task for _, task in self._workers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._results.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
