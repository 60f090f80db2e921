"""One probe worker: one asyncio task probing one container instance with one probe
(kubelet prober/worker.go).

A worker is bound to a container ID: the manager starts it when it sees the container
running (a fresh start or a container an agent restart adopted) and cancels it when the
container stops, is replaced, or the pod goes. Each tick (the first at once, then every
``periodSeconds`` of the injected clock on a fixed cadence aligned to a 100 ms grid, see
``ProbeWorker.run``)::

    less than initialDelaySeconds since the container started ─▶ skip
    startup probe, container started ─▶ the worker ends (nothing left to do)
    liveness / readiness, container not started yet ─▶ skip
    run the handler ─▶ an Unhealthy / ProbeWarning event as the kubelet records it
        error ─▶ result thrown away
        success / failure ─▶ counts towards successThreshold / failureThreshold;
                             a threshold reached ─▶ ``set_result`` (the manager wakes the
                             pod's worker when the result changes)
    liveness / startup failure reached ─▶ the worker ends (on hold: the container will
                                           be killed; its replacement gets a new worker)

Events: ``<Kind> probe failed: <output>``, ``<Kind> probe errored: <error>`` (Warning
Unhealthy) and ``<Kind> probe warning: <output>`` (Warning ProbeWarning); Kind is
Liveness, Readiness or Startup.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

from podling.agent.prober.handlers import (ERROR, FAILURE, SUCCESS, WARNING, PreparedProbe,
                                           ProbeOutcome, ProbeTarget)
from podling.api.types import ObjMap
from podling.api.views import ProbeView
from podling.client.events import EventRecorder
from podling.util.clock import Clock

log = logging.getLogger(__name__)

LIVENESS = "Liveness"
READINESS = "Readiness"
STARTUP = "Startup"
GRID_MS = 100  # the probes' beats fall on multiples of this (ms of monotonic time)


@dataclass(frozen=True)
class WorkerKey:
    """(pod uid, container name, probe kind)."""

    uid: str
    container: str
    kind: str


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker probes: ``probe`` of container ``container_id`` (running since
    ``started_at``, epoch seconds) of ``pod`` (the raw object, for events, which name the
    container by ``field_path``, e.g. ``spec.initContainers{proxy}`` for a sidecar)."""

    key: WorkerKey
    probe: ProbeView
    container_id: str
    started_at: float
    pod: ObjMap
    target: ProbeTarget
    field_path: str


class ProbeWorker:
    """Runs :meth:`run` as one task; ``is_started()`` answers "has the container passed
    its startup probe (or has none)"; ``set_result(key, container_id, result)`` publishes
    a result that reached its threshold (SUCCESS or FAILURE)."""

    def __init__(self, spec: WorkerSpec, *, clock: Clock, recorder: EventRecorder,
                 is_started: Callable[[], bool],
                 set_result: Callable[[WorkerKey, str, str], None]) -> None:
        self.spec = spec
        self._clock = clock
        self._recorder = recorder
        self._is_started = is_started
        self._set_result = set_result
        self._last = ""
        self._run_length = 0
        self._probe = PreparedProbe(spec.probe, spec.target)  # worked out at its first run

    async def run(self) -> None:
        """Tick at once, then on a fixed cadence of ``periodSeconds`` (a ticker, as the
        kubelet's: a run's own duration does not shift the next; ticks missed by a late
        run are skipped) whose beats fall on multiples of GRID_MS of the clock's
        monotonic time, so that the workers of a node share the loop's wake-ups; until
        the worker ends (see the module docstring). Cancel to stop it."""
        period_ms = max(1, self.spec.probe.period_seconds) * 1000
        due_ms = math.ceil(self._clock.monotonic() * 1000 / GRID_MS) * GRID_MS
        while await self.tick():
            now_ms = self._clock.monotonic() * 1000
            due_ms += period_ms
            while due_ms <= now_ms:
                due_ms += period_ms
            await self._clock.sleep((due_ms - now_ms) / 1000)

    async def tick(self) -> bool:
        """One probe period; False when the worker has nothing left to do."""
        spec, kind = self.spec, self.spec.key.kind
        if int(self._clock.now() - spec.started_at) < spec.probe.initial_delay_seconds:
            return True
        started = self._is_started()
        if kind == STARTUP and started:
            return False
        if kind != STARTUP and not started:
            return True
        outcome = await self._probe.run()
        self._record(outcome)
        if outcome.result == ERROR:
            return True
        result = FAILURE if outcome.result == FAILURE else SUCCESS
        if result == self._last:
            self._run_length += 1
        else:
            self._last, self._run_length = result, 1
        threshold = spec.probe.failure_threshold if result == FAILURE \
            else spec.probe.success_threshold
        if self._run_length < threshold:
            return True
        self._set_result(spec.key, spec.container_id, result)
        return not (kind in (LIVENESS, STARTUP) and result == FAILURE)

    def _record(self, outcome: ProbeOutcome) -> None:
        kind, name = self.spec.key.kind, self.spec.key.container
        if outcome.result == FAILURE:
            message = f"{kind} probe failed: {outcome.output}"
            reason = "Unhealthy"
        elif outcome.result == ERROR:
            message = f"{kind} probe errored: {outcome.output}"
            reason = "Unhealthy"
        elif outcome.result == WARNING:
            message = f"{kind} probe warning: {outcome.output}"
            reason = "ProbeWarning"
        else:
            return
        log.debug("%s probe of %s/%s: %s", kind, self.spec.key.uid, name, message)
        self._recorder.event(self.spec.pod, "Warning", reason, message,
                             field_path=self.spec.field_path)
