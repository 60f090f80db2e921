"""The scheduler: informers → cache + queue → one scheduling cycle at a time → bind.

    node informer ──▶ cache.set_node / remove_node ──(scheduling-relevant change)──┐
    pod informer ──▶ assigned pod: cache (confirms "assumed"; terminal frees) ──────┤ queue.move_all()
                 └─▶ pending pod of ours: queue.add / update / delete              │
                                                                                   ▼
    loop: pop ─▶ schedule_one(pod, cache.snapshot()) ─ node ─▶ cache.assume ─▶ bind task:
                                   │                    POST pods/binding, then event Scheduled
                                   │                    (failure: forget, back-off, FailedScheduling)
                                   └─ FitError ─▶ event FailedScheduling, PodScheduled=False
                                                  (when changed), queue.unschedulable

Informer objects are read through :mod:`podling.api.views` (``PodView`` / ``NodeView``) as
they arrive; the cache, the framework and the plugins see only views.

Pods with ``spec.nodeName`` are never scheduled (no event, no status write); they are only
accounted for on their node. Pods of another ``schedulerName`` are ignored.

Who may call: ``start()`` from a running loop (it returns at once; scheduling begins once
both informers have listed); ``await stop()`` to end it. The client stays the caller's.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from ..api.errors import ApiError
from ..api.resources import NODES, PODS
from ..api.types import Obj
from ..api import views
from ..api.views import NodeView, ObjectMetaView, PodStatusView, PodView
from ..client import DELETED, SYNC, ApiClient, ApiConnectionError, Informer
from ..client.events import EventRecorder
from ..util import timeline
from ..util.clock import Clock, SystemClock
from ..util.timefmt import now_rfc3339
from . import podutil
from .cache import SchedulerCache, node_changed
from .framework import Profile, ScheduleResult, schedule_one
from .plugins import default_profile
from .queue import QueuedPod, QueueOptions, SchedulingQueue
from .slim import scheduling_fields

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER = views.DEFAULT_SCHEDULER
SCHEDULED, FAILED_SCHEDULING = "Scheduled", "FailedScheduling"
EVENT_WINDOW = 600.0  # repeats of one FailedScheduling message within it are counted
VIEW_CACHE_SIZE = 256  # pending pods whose current PodView (~24 KiB) is kept, newest first


@dataclass(frozen=True)
class SchedulerOptions:
    """``max_binds``: bind requests in flight at once; ``resync_period``: informer resync."""

    queue: QueueOptions = field(default_factory=QueueOptions)
    max_binds: int = 16
    resync_period: float = 300.0


def is_pending_for(pod: PodView, scheduler_name: str) -> bool:
    """A pod this scheduler must place: its schedulerName, no nodeName, not being deleted,
    not finished."""
    return pod.spec.scheduler_name == scheduler_name and not pod.spec.node_name \
        and not pod.metadata.deleting and not pod.status.terminal


def scheduling_inputs_changed(old: PodView | None, new: PodView) -> bool:
    """A pod update that may change where it fits: its spec (the fields podling reads) or
    its labels."""
    if old is None:
        return True
    return old.spec != new.spec or old.metadata.labels != new.metadata.labels


def unschedulable_condition(pod: PodView, message: str) -> Obj | None:
    """The PodScheduled=False condition to write, or None when the pod already has it with
    this message. The transition time is kept when only the message changes."""
    for condition in pod.status.conditions:
        if condition.type != "PodScheduled":
            continue
        if condition.status == "False" and condition.reason == "Unschedulable":
            if condition.message == message:
                return None
            return {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": condition.last_transition_time or now_rfc3339(),
                    "reason": "Unschedulable", "message": message}
    return {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable", "message": message}


class Scheduler:
    """Binds pending pods whose ``schedulerName`` is ``scheduler_name`` to nodes."""

    def __init__(self, client: ApiClient, *, scheduler_name: str = DEFAULT_SCHEDULER,
                 profile: Profile | None = None, clock: Clock | None = None,
                 options: SchedulerOptions = SchedulerOptions(),
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.profile = profile or default_profile()
        self.options = options
        self.rng = rng
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(clock or SystemClock(), options.queue)
        self.events = EventRecorder(client, scheduler_name, window_seconds=EVENT_WINDOW,
                                    max_queue=10_000, lanes=4)
        self.nodes = Informer(client, NODES, resync_period=options.resync_period)
        # every pod of the cluster, kept encoded (~1.5 KiB a pod instead of ~10 KiB of dicts)
        self.pods = Informer(client, PODS, resync_period=options.resync_period,
                             transform=scheduling_fields, compact=True)
        self.nodes.add_handler(self._on_node)
        self.pods.add_handler(self._on_pod)
        # the view of each pending pod's current version: ((uid, resourceVersion), view), so
        # a pod version is read into a PodView once, not once per handler and cycle
        self._pod_views: collections.OrderedDict[tuple[str, str],
                                                 tuple[tuple[str, str], PodView]] = \
            collections.OrderedDict()
        self._bind_slots = asyncio.Semaphore(options.max_binds)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.scheduled = 0  # pods bound so far (for benchmarks and tests)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informers and the scheduling loop in background tasks. Call once."""
        if self._loop_task is not None:
            raise RuntimeError("scheduler already started")
        self.nodes.start()
        self.pods.start()
        self._loop_task = asyncio.get_running_loop().create_task(self._run(),
                                                                 name="scheduler-loop")

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """True once both informers have listed (scheduling has begun)."""
        return await self.nodes.wait_synced(timeout) and await self.pods.wait_synced(timeout)

    async def stop(self) -> None:
        """Stop scheduling, let bind / status requests in flight finish (cancelled after
        a few seconds), flush events, stop the informers. Idempotent."""
        self.queue.close()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.events.close(timeout=2.0)
        await self.nodes.stop()
        await self.pods.stop()

    # -- informer handlers (level-triggered: SYNC re-applies the same logic) ----------------

    def _on_node(self, type_: str, obj: Obj, old: Obj | None) -> None:
        node = NodeView.from_obj(obj)
        if type_ == DELETED:
            self.cache.remove_node(node.name)
            return
        self.cache.set_node(node)
        if type_ != SYNC and node_changed(None if old is None else NodeView.from_obj(old), node):
            self.queue.move_all()

    def _pod_view(self, obj: Obj, prior: PodView | None = None) -> PodView:
        """The view of ``obj``: the cached one when it was built from the same version (uid
        and resourceVersion); else, when ``prior`` (the view of the version before) has an
        equal spec, that spec view with ``obj``'s metadata and status (a status update,
        e.g. our own condition write, does not read the spec again); else a new view."""
        meta = obj.get("metadata") or {}
        cached = self._pod_views.get((meta.get("namespace") or "", meta.get("name") or ""))
        if cached is not None and cached[0][1] and cached[0] == _version(meta):
            return cached[1]
        if prior is not None and isinstance(obj.get("spec"), dict) \
                and prior.raw.get("spec") == obj["spec"]:
            return dataclasses.replace(prior, metadata=ObjectMetaView.from_obj(meta),
                                       status=PodStatusView.from_obj(obj.get("status")),
                                       raw=obj)
        return PodView.from_obj(obj)

    def _remember_view(self, key: tuple[str, str], obj: Obj, pod: PodView) -> None:
        """Keep the view of a pending pod for the coming cycle and the next update, for
        the last ``VIEW_CACHE_SIZE`` pods (a miss only costs building it again)."""
        self._pod_views[key] = (_version(obj.get("metadata") or {}), pod)
        self._pod_views.move_to_end(key)
        if len(self._pod_views) > VIEW_CACHE_SIZE:
            self._pod_views.popitem(last=False)

    def _on_pod(self, type_: str, obj: Obj, old: Obj | None) -> None:
        old_view = None if old is None or type_ == SYNC else self._pod_view(old)
        pod = self._pod_view(obj, old_view)
        key, uid = pod.key, podutil.pod_uid(pod)
        if type_ == DELETED:
            self._pod_views.pop(key, None)
            self.queue.delete(key)
            if self.cache.remove_pod(uid):
                self.queue.move_all()
            return
        timeline.mark(pod.metadata.uid, "scheduler.received")
        if pod.spec.node_name:
            self._pod_views.pop(key, None)
            self.queue.delete(key)
            if self.cache.update_pod(pod):
                self.queue.move_all()
            return
        if not is_pending_for(pod, self.scheduler_name):
            self._pod_views.pop(key, None)
            self.queue.delete(key)
            return
        self._remember_view(key, obj, pod)
        if self.cache.is_assumed(uid):
            return  # a bind for it is in flight
        if not self.queue.add(key, uid, pod.spec.priority) and type_ != SYNC \
                and scheduling_inputs_changed(old_view, pod):
            self.queue.update(key)

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not await self.wait_synced(timeout=None):
            await asyncio.sleep(1.0)  # an informer was stopped under us; keep trying
        while True:
            entry = await self.queue.pop()
            if entry is None:
                return
            await self._bind_slots.acquire()
            try:
                self._schedule(entry)
            except Exception:  # noqa: BLE001 - one bad pod must not stop scheduling
                log.exception("scheduling %s/%s failed", *entry.key)
                self._bind_slots.release()
                self.queue.retry(entry)
            await asyncio.sleep(0)  # let informer events in between cycles

    def _schedule(self, entry: QueuedPod) -> None:
        """One synchronous cycle; the caller holds a bind slot, which this hands on to the
        bind / status task or releases."""
        obj = self.pods.get(*entry.key)
        pod = None if obj is None else self._pod_view(obj)
        if pod is None or podutil.pod_uid(pod) != entry.uid \
                or not is_pending_for(pod, self.scheduler_name):
            self._bind_slots.release()
            self.queue.delete(entry.key)
            return
        nodes = self.cache.snapshot()
        result = schedule_one(pod, nodes, self.profile, rng=self.rng)
        timeline.mark(entry.uid, "scheduler.decided")
        if result.node is not None:
            self.cache.assume(pod, result.node)
            self._spawn(self._bind(entry, pod, result.node))
        else:
            self._unschedulable(entry, pod, result, len(nodes))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, entry: QueuedPod, pod: PodView, node: str) -> None:
        namespace, name = entry.key
        try:
            await self.client.bind(namespace, name, node, uid=entry.uid)
        except (ApiError, ApiConnectionError) as exc:
            self.cache.forget(pod)
            self._bind_failed(entry, pod, exc)
            return
        finally:
            self._bind_slots.release()
        timeline.mark(entry.uid, "scheduler.bound")
        self.scheduled += 1
        self.queue.done(entry)
        self.events.event(dict(pod.raw), "Normal", SCHEDULED,
                          f"Successfully assigned {namespace}/{name} to {node}")

    def _bind_failed(self, entry: QueuedPod, pod: PodView, exc: Exception) -> None:
        if isinstance(exc, ApiError) and exc.code in (404, 409):
            log.info("binding %s/%s dropped: %s", *entry.key, exc)
            self.queue.delete(entry.key)  # gone, bound elsewhere or being deleted
            return
        log.warning("binding %s/%s failed: %s", *entry.key, exc)
        self.queue.retry(entry)
        self.events.event(dict(pod.raw), "Warning", FAILED_SCHEDULING,
                          f"Binding rejected: {exc}")

    def _unschedulable(self, entry: QueuedPod, pod: PodView, result: ScheduleResult,
                       num_nodes: int) -> None:
        assert result.fit_error is not None
        message = result.fit_error.message(num_nodes)
        # debug, like Kubernetes' V(2) "Unable to schedule pod": one line per attempt of
        # every pending pod was a measurable part of the server's CPU per create
        log.debug("pod %s/%s is unschedulable: %s", *entry.key, message)
        self.queue.unschedulable(entry)
        self.events.event(dict(pod.raw), "Warning", FAILED_SCHEDULING, message)
        condition = unschedulable_condition(pod, message)
        if condition is None:
            self._bind_slots.release()
        else:
            self._spawn(self._write_condition(pod, condition))

    async def _write_condition(self, pod: PodView, condition: Obj) -> None:
        """PATCH pods/status with the condition (strategic merge: other conditions stay);
        releases the caller's slot."""
        namespace, name = pod.key
        try:
            await self.client.patch(PODS, name, {"status": {"conditions": [condition]}},
                                    namespace, patch_type="strategic", subresource="status")
        except (ApiError, ApiConnectionError) as exc:
            log.info("PodScheduled condition of %s/%s not written: %s", namespace, name, exc)
        finally:
            self._bind_slots.release()


def _version(meta: Obj) -> tuple[str, str]:
    """What identifies one version of an object: its uid and resourceVersion."""
    return (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
