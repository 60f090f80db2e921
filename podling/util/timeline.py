"""The per-pod stage timeline: when each step of a pod's start happened, process-wide.

    timeline.begin(uid, namespace, name)    the API server, once the create is committed
    timeline.mark(uid, "sandbox.started")   any component, at the end of a step
    timeline.mark_status(uid, status)       the agent, after writing a status (Running, Ready)
    timeline.pods(namespace=…, name=…)      the read side (``GET /debug/pods/timeline``)

A mark is the ``time.monotonic()`` of the call, kept under the pod's UID. Only the *first*
mark of a stage counts (resyncs and restarts repeat steps; the timeline is about how a pod
got going), so a mark costs a dict lookup and, once, an insert. CLOCK_MONOTONIC is
system-wide on Linux, so marks taken by other processes of the same machine (a benchmark
seeing Ready) compare with these; marks from another machine do not.

Bounded: at most :data:`MAX_PODS` pods (the oldest dropped first) and :data:`MAX_STAGES`
stages per pod (later ones ignored). Marks come from the event loop and from worker threads,
so the recorder takes a lock (uncontended: well under a microsecond).

Stage names, in the order a pod normally goes through them (docs/architecture.md §6):
``api.created``, ``scheduler.received``, ``scheduler.decided``, ``scheduler.bound``,
``agent.received``, ``agent.sync``, ``agent.admitted``, ``volumes.ready``,
``sandbox.netns`` (the OCI runtime made the netns), ``sandbox.created`` (pause created by
runc), ``sandbox.started``, ``network.ready`` (CNI ADD done),
``container.<name>.image`` / ``.created`` / ``.started`` per container, ``status.running``
and ``status.ready`` (the first status write showing phase Running / condition Ready).
A deletion on the node adds ``delete.terminating`` (the agent begins), ``.containers.stopped``,
``.sandbox.stopped`` (network torn down, pause killed), ``.sandbox.removed``,
``.rootfs.removed``, ``.released`` (volumes and pod directory) and ``delete.done`` (the final
grace-0 delete answered).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping

log = logging.getLogger(__name__)

MAX_PODS = 1024  # about 1.2 KiB each with ~20 stages: at most ~1.2 MiB
MAX_STAGES = 64
BASE_STAGE = "api.created"


class _Pod:
    __slots__ = ("namespace", "name", "stages")

    def __init__(self) -> None:
        self.namespace = ""
        self.name = ""
        self.stages: dict[str, float] = {}  # stage -> monotonic seconds, first mark only


class Timeline:
    """A bounded recorder of stage marks keyed by pod UID (see the module docstring)."""

    def __init__(self, max_pods: int = MAX_PODS, max_stages: int = MAX_STAGES,
                 clock: Any = time.monotonic) -> None:
        self.max_pods = max_pods
        self.max_stages = max_stages
        self._clock = clock
        self._pods: OrderedDict[str, _Pod] = OrderedDict()
        self._lock = threading.Lock()

    def _pod(self, uid: str) -> _Pod:
        """The pod's record, made (and the oldest dropped beyond max_pods) when new; call
        with the lock held."""
        pod = self._pods.get(uid)
        if pod is None:
            pod = self._pods[uid] = _Pod()
            while len(self._pods) > self.max_pods:
                self._pods.popitem(last=False)
        return pod

    def mark(self, uid: str, stage: str, at: float | None = None) -> None:
        """Record that ``stage`` of pod ``uid`` happened now (or at monotonic ``at``);
        a repeated stage keeps its first time."""
        if not uid:
            return
        when = self._clock() if at is None else at
        with self._lock:
            stages = self._pod(uid).stages
            if stage not in stages and len(stages) < self.max_stages:
                stages[sys.intern(stage)] = when  # container.<name>.* are built per call

    def begin(self, uid: str, namespace: str, name: str) -> None:
        """The API server committed the pod's create: name it and mark ``api.created``."""
        when = self._clock()
        with self._lock:
            pod = self._pod(uid)
            pod.namespace, pod.name = namespace or "", name
            pod.stages.setdefault(BASE_STAGE, when)

    def mark_status(self, uid: str, status: Mapping[str, Any]) -> None:
        """After a status write: mark ``status.running`` / ``status.ready`` the first time
        the written status shows phase Running / condition Ready=True; at Ready, log the
        pod's stages at debug level."""
        if status.get("phase") == "Running":
            self.mark(uid, "status.running")
        if any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or ()):
            first = "status.ready" not in self._stages(uid)
            self.mark(uid, "status.ready")
            if first and log.isEnabledFor(logging.DEBUG):
                found = self.pods(uid=uid)
                if found:
                    log.debug("pod %s/%s ready: %s", found[0]["namespace"], found[0]["name"],
                              ", ".join(f"{k} {v:.1f}ms" for k, v in found[0]["stages"].items()))

    def _stages(self, uid: str) -> dict[str, float]:
        with self._lock:
            pod = self._pods.get(uid)
            return dict(pod.stages) if pod is not None else {}

    def pods(self, *, namespace: str | None = None, name: str | None = None,
             uid: str | None = None) -> list[dict[str, Any]]:
        """The recorded pods (oldest first) matching the filters, each as ``{"uid",
        "namespace", "name", "base", "baseMonotonic", "stages"}``: ``stages`` maps each stage
        to milliseconds since the base, in time order; the base is ``api.created`` when this
        process saw the create, else the pod's earliest mark. ``baseMonotonic`` is the base
        in ``time.monotonic()`` seconds."""
        with self._lock:
            items = [(u, p.namespace, p.name, dict(p.stages)) for u, p in self._pods.items()
                     if (uid is None or u == uid) and (name is None or p.name == name)
                     and (namespace is None or p.namespace == namespace)]
        out = []
        for u, ns, nm, stages in items:
            if not stages:
                continue
            base_stage = BASE_STAGE if BASE_STAGE in stages else min(stages, key=stages.get)
            base = stages[base_stage]
            ordered = sorted(stages.items(), key=lambda kv: kv[1])
            out.append({"uid": u, "namespace": ns, "name": nm, "base": base_stage,
                        "baseMonotonic": base,
                        "stages": {k: round((t - base) * 1000.0, 3) for k, t in ordered}})
        return out

    def clear(self) -> None:
        with self._lock:
            self._pods.clear()


#: the process-wide recorder (API server, scheduler and local agent share a process)
TIMELINE = Timeline()
mark = TIMELINE.mark
begin = TIMELINE.begin
mark_status = TIMELINE.mark_status
pods = TIMELINE.pods
