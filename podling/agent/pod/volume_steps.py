"""The volume parts of a pod's sync (:mod:`.sync`), with their events:

    setup      step 6 before anything starts: every volume (.volume_sources); a failure is a
               Warning FailedMount event with the kubelet's message, a CONFIG_POD_SANDBOX
               error result and a requeue after a short back-off (2 s doubling to 30 s)
    refresh    step 6 of a running pod with nothing to start: configMap, secret,
               downwardAPI and projected volumes rewritten in place when they changed; a
               failure is a FailedMount event (the old files stay)
    evicted    before the plan: the emptyDir sizeLimit check (.eviction); an Evicted
               Warning event when first found
    forget     the pod is gone
"""

from __future__ import annotations

from podling.agent.kuberuntime import podfiles, volumes
from podling.agent.kuberuntime.env import PodContext
from podling.agent.kuberuntime.volume_sources import VolumeSources
from podling.agent.pod import eviction
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.api.views import PodView
from podling.client.events import EventRecorder
from podling.util import timeline


class VolumeSteps:
    """One per agent; calls for one pod never overlap (its worker is serial)."""

    def __init__(self, sources: VolumeSources, *, recorder: EventRecorder,
                 pods_dir: str) -> None:
        self.sources = sources
        self.eviction = eviction.EmptyDirEviction()
        self.recorder = recorder
        self.pods_dir = pods_dir

    def _pod_dir(self, pod: PodView) -> str:
        return podfiles.pod_dir(self.pods_dir, pod.metadata.uid)

    async def setup(self, pod: PodView, ctx: PodContext,
                    result: PodSyncResult) -> dict[str, str] | None:
        """``{volume: host path}``, or None after a FailedMount (``result`` has it)."""
        try:
            prepared = await self.sources.setup(pod, self._pod_dir(pod), ctx)
        except volumes.VolumeError as exc:
            self._failed(pod, exc, result)
            result.requeue_after = self.sources.retry_after(pod.metadata.uid)
            return None
        timeline.mark(pod.metadata.uid, "volumes.ready")
        return prepared

    async def refresh(self, pod: PodView, ctx: PodContext, result: PodSyncResult) -> None:
        try:
            await self.sources.refresh(pod, self._pod_dir(pod), ctx)
        except volumes.VolumeError as exc:  # the next sync retries
            self._failed(pod, exc, result)

    def _failed(self, pod: PodView, exc: volumes.VolumeError, result: PodSyncResult) -> None:
        self.recorder.event(pod.raw, "Warning", volumes.FAILED_MOUNT, exc.message)
        result.add(SyncAction.CONFIG_POD_SANDBOX, error=volumes.FAILED_MOUNT,
                   message=exc.message)

    async def evicted(self, pod: PodView) -> str | None:
        """The eviction message when the node evicts the pod (an event the first time)."""
        if pod.metadata.deleting or pod.status.terminal:
            return None
        found = await self.eviction.check(pod, self._pod_dir(pod))
        if found is None:
            return None
        if found.new:
            self.recorder.event(pod.raw, "Warning", eviction.REASON, found.message)
        return found.message

    def requeue_after(self, pod: PodView) -> float | None:
        """When a running pod must be synced again for the eviction check."""
        return self.eviction.requeue_after(pod)

    def forget(self, uid: str) -> None:
        self.sources.forget(uid)
        self.eviction.forget(uid)
