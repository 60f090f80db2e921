"""What a plan tells ``sync_pod`` to do: :class:`PodActions` and its parts, and the reason
constants they carry (see :mod:`.plan`, which makes them). Values only, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

from podling.api.views import ContainerView, PodView

REASON_NEW = "new"
REASON_RESTART = "restart"
REASON_SPEC_CHANGED = "spec changed"

KILL_STOP = "stop"  # ordinary stop: pod killed, deleted, sandbox changed
KILL_SPEC_CHANGED = "spec changed"
KILL_UNKNOWN = "unknown state"  # CREATED / UNKNOWN leftover before a restart
KILL_NOT_IN_SPEC = "not in spec"
KILL_PROBE = "probe failed"  # liveness or startup

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
SANDBOX_CHANGED_MESSAGE = "Pod sandbox changed, it will be killed and re-created."

@dataclass(frozen=True)
class ContainerStart:
    """Start ``container`` (spec index ``index``) with this restart count / attempt.

    ``backoff_since`` is the finish time of the instance it replaces (0 when none);
    ``init``: a sidecar restarted beside the app containers (index of initContainers)."""

    index: int
    container: ContainerView
    reason: str
    restart_count: int = 0
    backoff_since: float = 0.0
    init: bool = False

    @property
    def name(self) -> str:
        return self.container.name


@dataclass(frozen=True)
class ContainerKill:
    """Stop a container. ``container`` is its spec (None when it is not in the spec, then
    there is no preStop hook). ``message`` is the Killing event text. ``grace`` overrides
    the pod's grace period (a probe's terminationGracePeriodSeconds) when not None."""

    name: str
    container: ContainerView | None
    message: str
    reason: str = KILL_STOP
    grace: float | None = None


@dataclass
class PodActions:
    """The plan of one sync.

    kill_pod: stop every live container (all listed in ``containers_to_kill``) and every
    READY sandbox (``kill_sandboxes``; with ``create_sandbox`` every sandbox), tear the
    pod network down. create_sandbox: then run
    a new sandbox with ``sandbox_attempt``; ``sandbox_changed`` says an old one existed
    (SandboxChanged event). sandbox_id: the sandbox to keep and start containers in
    ("" when a new one is created). init_failed: the last init container failed (the pod
    is killed under restartPolicy Never, else it is restarted). waiting: container name →
    (reason, message) for containers held by back-off; requeue_after: seconds until the
    first of them may start (or the active deadline, if sooner). deadline_exceeded: the
    pod is past ``activeDeadlineSeconds`` (:mod:`.deadline`): killed, reported Failed.
    ephemeral_to_start: ephemeral containers to start once, before the others
    (:mod:`.ephemeral`).
    evicted: the node evicts the pod (:mod:`.eviction`): killed with grace 0, reported
    Failed.
    """

    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_changed: bool = False
    sandbox_attempt: int = 0
    sandbox_id: str = ""
    kill_sandboxes: list[str] = field(default_factory=list)
    purge_init_containers: list[str] = field(default_factory=list)
    next_init_container: ContainerStart | None = None
    init_failed: bool = False
    containers_to_start: list[ContainerStart] = field(default_factory=list)
    ephemeral_to_start: list[ContainerStart] = field(default_factory=list)
    containers_to_kill: dict[str, ContainerKill] = field(default_factory=dict)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    requeue_after: float | None = None
    deadline_exceeded: bool = False
    evicted: bool = False

    def first_app_start(self, pod: PodView) -> bool:
        """The plan starts the app containers of a pod with init containers for the first
        time (the pod was PodInitializing)."""
        return bool(pod.spec.init_containers) and any(
            s.reason == REASON_NEW and not s.init for s in self.containers_to_start)
