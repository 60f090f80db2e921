"""What one sync of a pod did, step by step (kubelet ``PodSyncResult`` / ``SyncResult``).

Each step of :meth:`.sync.PodSyncer.sync_pod` and of the termination appends one
:class:`SyncResult` per thing it acted on (a container, a sandbox, the pod). A result with an
``error`` is an expected failure already reported as an event or a waiting reason; the next
sync retries it. Unexpected errors are exceptions, not results: they abort the sync and the
pod worker retries it.

The pod worker reads only ``done`` and ``requeue_after``; the status step reads
:meth:`PodSyncResult.waiting`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class SyncAction(str, Enum):
    """What a step did to its target (the kubelet's ``SyncAction`` names where it has one)."""

    ADMIT = "Admit"
    KILL_CONTAINER = "KillContainer"
    KILL_POD_SANDBOX = "KillPodSandbox"
    BACK_OFF = "BackOff"
    CONFIG_POD_SANDBOX = "ConfigPodSandbox"  # volumes and pod files
    CREATE_POD_SANDBOX = "CreatePodSandbox"  # with its network
    INIT_CONTAINER = "InitContainer"
    START_CONTAINER = "StartContainer"
    REPORT_STATUS = "ReportStatus"
    RELEASE_POD = "ReleasePod"  # sandboxes, rootfs, volumes, pod dir
    DELETE_POD = "DeletePod"  # the final grace-0 delete in the API


@dataclass(frozen=True)
class SyncResult:
    """One action on one ``target`` (container name, sandbox id, or "" for the pod);
    ``error`` is the reason (ErrImagePull, CrashLoopBackOff, FailedMount, …), "" on success,
    and ``message`` its text."""

    action: SyncAction
    target: str = ""
    error: str = ""
    message: str = ""


@dataclass
class PodSyncResult:
    """The results of one sync, in the order the steps ran.

    ``requeue_after``: seconds until the pod must be synced again at the latest (a back-off
    expiring, a retry); None means "at the next periodic resync". ``done``: the pod is
    terminated and deleted, its worker can stop.
    """

    results: list[SyncResult] = field(default_factory=list)
    requeue_after: float | None = None
    done: bool = False

    def add(self, action: SyncAction, target: str = "", *, error: str = "",
            message: str = "") -> SyncResult:
        result = SyncResult(action, target, error, message)
        self.results.append(result)
        return result

    def retry_within(self, seconds: float | None) -> None:
        """Sync again after ``seconds`` at the latest (keeps a sooner requeue; None: no
        constraint)."""
        if seconds is not None and (self.requeue_after is None or seconds < self.requeue_after):
            self.requeue_after = seconds

    def errors(self) -> list[SyncResult]:
        return [r for r in self.results if r.error]

    def waiting(self) -> dict[str, tuple[str, str]]:
        """Container name → (reason, message) of each container this sync left waiting:
        held by back-off, or its start failed before it could run."""
        starts = (SyncAction.BACK_OFF, SyncAction.INIT_CONTAINER, SyncAction.START_CONTAINER)
        return {r.target: (r.error, r.message) for r in self.results
                if r.action in starts and r.error}

    def acted(self) -> bool:
        """Whether this sync changed anything in the runtime (then the status step lists
        the runtime afresh)."""
        changes = (SyncAction.KILL_CONTAINER, SyncAction.KILL_POD_SANDBOX,
                   SyncAction.CONFIG_POD_SANDBOX, SyncAction.CREATE_POD_SANDBOX,
                   SyncAction.INIT_CONTAINER, SyncAction.START_CONTAINER)
        return any(r.action in changes for r in self.results)
