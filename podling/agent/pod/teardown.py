"""The end of a pod on this node (kubelet ``SyncTerminatingPod`` + ``SyncTerminatedPod``):

    terminate(pod)
      1 observe ── list the pod's sandboxes and containers
      2 kill ───── every RUNNING / CREATED container (Killing, preStop, grace): the app
                   containers concurrently, then the sidecars one at a time in reverse order
      3 release ── the sandboxes (network DEL while each is stopped, then removed) while
                   the pod's rootfs are removed; then its volumes and directory
      4 delete ─── the grace-0 delete of the pod in the API (uid precondition)
                   ─▶ done; an API error other than gone / replaced / forbidden ─▶ retry

Nothing of the pod is left on the node when it leaves the API (``kubectl delete`` returns).

``remove_orphans`` releases the sandboxes of pods this node no longer has. Both are
idempotent; runtime and network errors propagate and the caller retries.
"""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

from podling.agent.config import AgentConfig
from podling.agent.kuberuntime import labels, lifecycle, podfiles
from podling.agent.kuberuntime.containers import ContainerManager
from podling.agent.kuberuntime.sandbox import SandboxManager
from podling.agent.pod.stopping import stop_in_order
from podling.agent.pod.sync_result import PodSyncResult, SyncAction
from podling.api import errors
from podling.api.resources import PODS
from podling.api.views import ContainerView, PodView
from podling.client import ApiClient
from podling.runtime.interface import (ContainerState, ContainerStatus, PodSandboxStatus,
                                       RuntimeService)
from podling.util import timeline

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # after a failed final delete


def _name(c: ContainerStatus) -> str:
    return c.labels.get(labels.CONTAINER_NAME, c.name)


class PodTeardown:
    """Terminates pods being deleted and removes orphaned sandboxes."""

    def __init__(self, *, client: ApiClient, runtime: RuntimeService,
                 containers: ContainerManager, sandboxes: SandboxManager,
                 config: AgentConfig) -> None:
        self.client = client
        self.runtime = runtime
        self.containers = containers
        self.sandboxes = sandboxes
        self.config = config

    async def terminate(self, pod: PodView) -> PodSyncResult:
        """Steps 1-4 (module docstring); ``done`` once the pod is gone from the API."""
        meta = pod.metadata
        result = PodSyncResult()
        timeline.mark(meta.uid, "delete.terminating")
        sandboxes = await self.runtime.list_pod_sandbox({labels.POD_UID: meta.uid})
        containers = await self.runtime.list_containers(labels={labels.POD_UID: meta.uid})
        grace = lifecycle.grace_period_seconds(pod)
        specs = {c.name: c for c in pod.spec.all_containers()}  # sidecars have preStop too
        running = [c for c in containers if c.state in (ContainerState.RUNNING,
                                                        ContainerState.CREATED)]
        await stop_in_order(pod, [(_name(c), self._stopper(pod, c, specs.get(_name(c))))
                                  for c in running], grace=grace, now=time.monotonic)
        for c in running:
            result.add(SyncAction.KILL_CONTAINER, _name(c))
        timeline.mark(meta.uid, "delete.containers.stopped")
        await self._release(pod, sandboxes)
        result.add(SyncAction.RELEASE_POD)
        try:
            await self.client.delete(PODS, meta.name, meta.namespace or None, grace_period=0,
                                     preconditions={"uid": meta.uid})
        except errors.ApiError as exc:
            if exc.code not in (403, 404, 409):  # gone, replaced, or no longer ours
                log.warning("final delete of pod %s failed: %s", meta.name, exc.message)
                result.add(SyncAction.DELETE_POD, error=str(exc.code), message=exc.message)
                result.requeue_after = RETRY_SECONDS
                return result
        timeline.mark(meta.uid, "delete.done")
        result.add(SyncAction.DELETE_POD)
        result.done = True
        return result

    def _stopper(self, pod: PodView, status: ContainerStatus, spec: ContainerView | None
                 ) -> Callable[[float], Awaitable[None]]:
        return lambda grace: self.containers.stop(pod, status, spec, grace=grace)

    async def _release(self, pod: PodView, sandboxes: list[PodSandboxStatus]) -> None:
        await self.sandboxes.release(
            pod, sandboxes, pod_dir=podfiles.pod_dir(self.config.pods_dir, pod.metadata.uid))

    async def remove_orphans(self, live_uids: set[str]) -> None:
        """Release the sandboxes this node made for pods not in ``live_uids``, and the
        directories (volumes, mounts) of such pods that have no sandbox left: an agent
        killed between a pod's sandbox removal and its directory's (the kubelet's
        cleanupOrphanedPodDirs); then the network attachments of sandboxes that no longer
        exist (CNI's GC: a plugin killed with the agent)."""
        mine = await self.runtime.list_pod_sandbox({labels.MANAGED_BY: self.config.node_name})
        by_pod: dict[str, list[PodSandboxStatus]] = {}
        for sandbox in mine:
            uid = sandbox.labels.get(labels.POD_UID, "")
            if uid and uid not in live_uids:
                by_pod.setdefault(uid, []).append(sandbox)
        with_sandbox = {s.labels.get(labels.POD_UID, "") for s in mine}
        for uid in podfiles.pod_uids(self.config.pods_dir):
            if uid not in live_uids and uid not in with_sandbox:
                by_pod.setdefault(uid, [])
        for uid, sandboxes in by_pod.items():
            first = sandboxes[0].metadata if sandboxes else None
            ghost = PodView.from_obj({"metadata": {
                "uid": uid, "name": first.name if first else uid,
                "namespace": first.namespace if first else ""}})
            log.info("removing orphaned pod %s/%s", ghost.metadata.namespace,
                     ghost.metadata.name)
            await self._release(ghost, sandboxes)
        for sid in await self.sandboxes.network.collect_garbage(self._sandbox_ids):
            log.info("released the network of sandbox %s, which no longer exists", sid)

    async def _sandbox_ids(self) -> set[str]:
        return {s.id for s in await self.runtime.list_pod_sandbox()}
