"""The CRI-shaped RuntimeService protocol (docs/architecture.md §3) and the values it deals in.

The agent uses the container runtime only through this module. Implementations:
``podling.runtime.fake.FakeRuntime`` (in memory, for unit tests) and
``podling.runtime.oci.service.OciRuntime`` (runc + conmon + a catatonit pause sandbox).

Identity and crash safety: the runtime is the source of truth. Pod identity (name,
namespace, uid, container name) travels in ``labels``; restart count and spec hash in
``annotations``. A restarted agent rebuilds its view by ``list_pod_sandbox`` /
``list_containers``; containers keep running while no agent process exists.

Times are float seconds since the Unix epoch (``0.0`` = not yet).

Sandbox state machine::

    run_pod_sandbox            stop_pod_sandbox             remove_pod_sandbox
    ───────────────▶ READY ───────────────────▶ NOTREADY ─────────────────────▶ (gone)
                       │    (pause process died)    ▲
                       └────────────────────────────┘

Container state machine::

    create_container          start_container            process exits
    ────────────────▶ CREATED ───────────────▶ RUNNING ─────────────────▶ EXITED
                         │ start fails: reason StartError, exit 128 ──────▶ EXITED
                         └ stop_container ────────────────────────────────▶ EXITED
    EXITED ── remove_container ──▶ (gone)
    UNKNOWN: the runtime lost track of the process (its monitor died without an exit record);
    stop/remove still work on it.

Every stop and remove is idempotent: stopping a stopped object and removing a missing one
succeed. Operations on one object are serialized by the implementation; callers may call
methods for different objects concurrently.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol, runtime_checkable

# -- errors ---------------------------------------------------------------------------------


class RuntimeError_(Exception):
    """Base of every error the runtime raises (named with ``_`` to avoid the builtin)."""


class NotFound(RuntimeError_):
    """The object does not exist (never raised by stop/remove, which are idempotent)."""


class ContainerNotFound(NotFound):
    """No container with this id."""


class SandboxNotFound(NotFound):
    """No pod sandbox with this id."""


class InvalidState(RuntimeError_):
    """The operation does not apply in the object's current state (e.g. starting twice)."""


class SandboxNotReady(InvalidState):
    """Creating a container in a sandbox that is not READY."""


class InvalidConfig(RuntimeError_):
    """The config cannot be turned into a container (bad path, bad signal, …)."""


class ContainerStartError(RuntimeError_):
    """The OCI runtime failed to start the process; the container is EXITED/StartError."""


class ExecTimeout(RuntimeError_):
    """``exec_sync`` did not finish within its timeout; the exec'd process was killed."""


class RuntimeUnavailable(RuntimeError_):
    """The host cannot run containers as configured (missing binary, unsupported cgroups)."""


class RuntimeCommandError(RuntimeError_):
    """An OCI runtime / monitor subprocess failed or timed out (message holds its stderr)."""


# -- enums ----------------------------------------------------------------------------------


class NamespaceMode(str, enum.Enum):
    """Who owns a namespace (CRI ``NamespaceMode``).

    POD: shared by the pod (owned by the pause process). CONTAINER: each container its own.
    NODE: the host's (hostNetwork / hostPID / hostIPC).
    """

    POD = "POD"
    CONTAINER = "CONTAINER"
    NODE = "NODE"


class SandboxState(str, enum.Enum):
    READY = "READY"
    NOTREADY = "NOTREADY"


class ContainerState(str, enum.Enum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    UNKNOWN = "UNKNOWN"


class MountPropagation(str, enum.Enum):
    """CRI propagation: PRIVATE (rprivate), HOST_TO_CONTAINER (rslave), BIDIRECTIONAL (rshared)."""

    PRIVATE = "PRIVATE"
    HOST_TO_CONTAINER = "HOST_TO_CONTAINER"
    BIDIRECTIONAL = "BIDIRECTIONAL"


# Terminated reasons, as containerd reports them (docs/kubernetes-fidelity.md §2.2).
REASON_COMPLETED = "Completed"
REASON_ERROR = "Error"
REASON_OOM_KILLED = "OOMKilled"
REASON_START_ERROR = "StartError"
START_ERROR_EXIT_CODE = 128


def exit_reason(exit_code: int, *, oom: bool = False) -> str:
    """The terminated reason for an exit: OOMKilled, else Completed (0) or Error."""
    if oom:
        return REASON_OOM_KILLED
    return REASON_COMPLETED if exit_code == 0 else REASON_ERROR


# -- sandbox values -------------------------------------------------------------------------


@dataclass(frozen=True)
class NamespaceOptions:
    """Namespace modes of a pod (CRI ``NamespaceOption``).

    network: POD, or NODE for hostNetwork (which also means the host's UTS namespace).
    pid: CONTAINER (default), POD for shareProcessNamespace, NODE for hostPID.
    ipc: POD, or NODE for hostIPC.
    """

    network: NamespaceMode = NamespaceMode.POD
    pid: NamespaceMode = NamespaceMode.CONTAINER
    ipc: NamespaceMode = NamespaceMode.POD


@dataclass(frozen=True)
class PodSandboxMetadata:
    name: str
    namespace: str
    uid: str
    attempt: int = 0


@dataclass(frozen=True)
class PodSandboxConfig:
    """What ``run_pod_sandbox`` needs. /etc/hosts, resolv.conf and hostname files are not
    here: the agent bind-mounts them into each container as ordinary mounts.

    ``hostname`` (default: ``name``) is ignored with network NODE (the host's UTS namespace).
    ``cgroup_parent`` is an absolute cgroup path for the pod; empty = runtime default.
    ``sysctls`` are set in the pod's namespaces (the agent admitted them). ``pids_limit``
    (> 0) caps the processes of the whole pod (the kubelet's ``--pod-max-pids``).
    """

    name: str
    namespace: str
    uid: str
    attempt: int = 0
    hostname: str = ""
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    namespace_options: NamespaceOptions = field(default_factory=NamespaceOptions)
    cgroup_parent: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)  # dotted name -> value
    pids_limit: int = 0  # 0: no pod-wide limit

    @property
    def metadata(self) -> PodSandboxMetadata:
        return PodSandboxMetadata(self.name, self.namespace, self.uid, self.attempt)


@dataclass(frozen=True)
class PodSandboxStatus:
    """A sandbox as the runtime sees it now. ``pid`` is the pause process (0 when not running);
    ``network_namespace_path`` is empty with network NODE."""

    id: str
    metadata: PodSandboxMetadata
    state: SandboxState
    created_at: float
    network_namespace_path: str
    pid: int
    labels: dict[str, str]
    annotations: dict[str, str]
    namespace_options: NamespaceOptions = field(default_factory=NamespaceOptions)
    hostname: str = ""
    log_directory: str = ""


# -- container values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """A bind mount of ``host_path`` at ``container_path`` (SELinux relabelling: not supported)."""

    host_path: str
    container_path: str
    readonly: bool = False
    propagation: MountPropagation = MountPropagation.PRIVATE


@dataclass(frozen=True)
class Resources:
    """cgroup limits; 0 means unset. cpu_quota/cpu_period in microseconds."""

    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    memory_limit_bytes: int = 0


SECCOMP_RUNTIME_DEFAULT = "runtime/default"
SECCOMP_LOCALHOST = "localhost/"


@dataclass(frozen=True)
class SecurityOptions:
    """Security settings. ``masked_paths`` / ``readonly_paths`` None = the runtime defaults;
    privileged containers get neither, all capabilities and a writable /sys.
    Capability names are ``CAP_X`` or ``X`` (Kubernetes style); ``ALL`` is accepted in drop/add."""

    privileged: bool = False
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    no_new_privs: bool = False
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    #: "" (Unconfined), SECCOMP_RUNTIME_DEFAULT or SECCOMP_LOCALHOST + an absolute path
    #: (CRI's names; see podling.runtime.oci.seccomp)
    seccomp: str = ""


@dataclass(frozen=True)
class ContainerConfig:
    """What ``create_container`` needs; everything already resolved by the caller.

    ``rootfs``: a prepared directory (the image snapshot, made by the caller; the runtime never
    removes it). ``command``: the full argv (image ENTRYPOINT/CMD + spec already applied).
    ``env``: ``KEY=value`` strings. ``log_path``: where CRI-format log lines go (its parent
    directory is created if missing). ``pid_target``: the id of a running container of the
    same sandbox whose PID namespace this one joins (CRI namespace mode TARGET: an ephemeral
    container's ``targetContainerName``); ignored unless the sandbox's pid mode is CONTAINER;
    ``create_container`` raises InvalidState when that container is not running.
    """

    name: str
    rootfs: str
    command: list[str]
    attempt: int = 0
    env: list[str] = field(default_factory=list)
    working_dir: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    log_path: str = ""
    mounts: list[Mount] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    security: SecurityOptions = field(default_factory=SecurityOptions)
    stop_signal: str = "SIGTERM"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pid_target: str = ""


@dataclass(frozen=True)
class ContainerStatus:
    """A container as the runtime sees it now.

    ``exit_code``/``reason``/``message``/``finished_at`` are meaningful only when EXITED;
    ``pid`` only when RUNNING (0 otherwise).
    """

    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: ContainerState
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class ContainerExit:
    """An exit event: the container's process ended (PLEG uses it as a hint to relist).

    A runtime that sees its sandboxes' pause processes also reports a pause that died on its
    own (not through ``stop_pod_sandbox``), with ``container_id == sandbox_id``."""

    container_id: str
    sandbox_id: str
    exit_code: int
    finished_at: float


def labels_match(labels: dict[str, str], selector: dict[str, str] | None) -> bool:
    """True when every ``selector`` key/value is in ``labels`` (None/empty matches all)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# -- the protocol ---------------------------------------------------------------------------

NetnsCallback = Callable[[str, str], None]  # (sandbox id, network namespace path)
CreatedCallback = Callable[[str], None]  # (sandbox id)


@runtime_checkable
class RuntimeService(Protocol):
    """CRI-shaped runtime. All methods are coroutines and may be cancelled; a cancelled call
    leaves the object either untouched or in a state the next stop/remove cleans up."""

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              on_network_namespace: NetnsCallback | None = None,
                              on_created: CreatedCallback | None = None) -> str:
        """Create and start the pause sandbox; returns its id. The network namespace exists
        (and its path is in the status) when this returns, ready for CNI.
        ``on_network_namespace(sandbox_id, path)`` (not with network NODE) is called as soon as
        the namespace exists, before the pause process starts, so that the caller can set up
        the network meanwhile; when this then raises, the namespace is gone again.
        ``on_created(sandbox_id)`` is called once containers may be created in the sandbox:
        with a runtime that can, before the pause process runs (``create_container`` then
        accepts the sandbox while this call is still running; when this then raises, the
        containers created in it are removed first), else just before this returns."""
        ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Kill every container of the sandbox and the pause process. Idempotent; a missing
        sandbox is success. The network namespace stays until remove (for CNI DEL)."""
        ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop (if needed) and remove the sandbox, its containers, netns, shm and cgroups.
        Idempotent."""
        ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        """Raises SandboxNotFound."""
        ...

    async def list_pod_sandbox(self, labels: dict[str, str] | None = None
                               ) -> list[PodSandboxStatus]:
        """Every sandbox whose labels include ``labels``, oldest first."""
        ...

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        """Create (not start) a container in a READY sandbox; returns its id.
        Raises SandboxNotFound, SandboxNotReady, InvalidConfig."""
        ...

    async def start_container(self, container_id: str) -> None:
        """Start a CREATED container. Raises ContainerNotFound, InvalidState, or
        ContainerStartError (the container is then EXITED with reason StartError)."""
        ...

    async def stop_container(self, container_id: str, timeout: float,
                             signal: str = "SIGTERM") -> None:
        """Send ``signal``; after ``timeout`` seconds send SIGKILL; return once EXITED.
        Idempotent; a missing container is success. A CREATED container becomes EXITED."""
        ...

    async def remove_container(self, container_id: str) -> None:
        """Kill (if running) and forget the container; its log file stays. Idempotent."""
        ...

    async def container_status(self, container_id: str) -> ContainerStatus:
        """Raises ContainerNotFound."""
        ...

    async def list_containers(self, sandbox_id: str | None = None,
                              labels: dict[str, str] | None = None) -> list[ContainerStatus]:
        """Containers filtered by sandbox and labels, oldest first."""
        ...

    async def exec_sync(self, container_id: str, argv: list[str],
                        timeout: float | None) -> ExecResult:
        """Run ``argv`` in a RUNNING container and collect its output; ``timeout`` None
        waits as long as it runs (CRI's timeout 0). Raises ContainerNotFound, InvalidState
        (not running), ExecTimeout."""
        ...

    async def exec(self, container_id: str, argv: list[str], *, stdin: bool,
                   tty: bool) -> "ExecSession":
        """Start ``argv`` in a RUNNING container (its environment, cwd and user) and return
        the session streaming its stdio (docs/streaming.md §3). With ``tty`` the process gets
        a terminal (stdout only; resize applies); without ``stdin`` writes are ignored and the
        process reads EOF. A program that cannot be started is not an error here: the session
        reports exit code 127 (not found) or 126 (permission denied) with the runtime's
        message as output. The caller must ``close()`` the session (kills the process).
        Raises ContainerNotFound, InvalidState (not running)."""
        ...

    async def attach(self, container_id: str, *, stdin: bool) -> "ExecSession":
        """Attach to the stdio of a RUNNING container's main process (tty as the container
        was created; stdin only if the container was created with ``stdin``). ``close()``
        detaches; ``wait()`` returns None. Raises ContainerNotFound, InvalidState."""
        ...

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to localhost:``port`` inside the sandbox's network namespace
        (IPv4, then IPv6; the host's for network NODE). The caller closes the writer.
        Raises SandboxNotFound, PortForwardError (message for the user)."""
        ...

    async def wait_container(self, container_id: str) -> ContainerStatus:
        """Return the status once the container is EXITED (immediately if it already is).
        Event-driven, never a polling loop. Raises ContainerNotFound."""
        ...

    def exit_events(self) -> AsyncIterator[ContainerExit]:
        """An async iterator of exits seen from now on, for one subscriber; ends when the
        runtime is closed. Exits that happened while nobody listened are found by listing."""
        ...

    async def close(self) -> None:
        """Release watchers and end ``exit_events`` iterators. Containers keep running."""
        ...

    async def container_stats(self, container_id: str) -> ContainerStats:
        """Cumulative CPU time and current memory of the container's cgroup, read now (no
        rate: callers keep the previous sample). Raises ContainerNotFound; a container
        whose cgroup is gone (not running) reports zeros."""
        ...


# -- stats (kubectl top) --------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerStats:
    """One sample of a container's cgroup. ``timestamp``: when it was read (epoch seconds).
    Working set = usage − inactive file pages (clamped at 0), as the kubelet computes it."""

    container_id: str
    timestamp: float
    cpu_usage_core_nanoseconds: int
    memory_usage_bytes: int
    memory_working_set_bytes: int


# -- streaming (docs/streaming.md §3) --------------------------------------------------------

STDOUT = 1
STDERR = 2


class PortForwardError(RuntimeError_):
    """``port_forward`` could not connect; the message is shown to the user as is."""


@runtime_checkable
class ExecSession(Protocol):
    """One exec'd process, or one attachment to a container's main process.

    ``read`` and ``write`` may run concurrently (one reader task, one writer task); every
    method may be cancelled. ``close`` may be called at any time, from any task, repeatedly::

        exec:   running ──output ends──▶ read() → None ──▶ wait() → exit code ──▶ close()
                   └──────────── close(): process killed and reaped ─────────────────┘
        attach: attached ──container exits / close()──▶ read() → None, wait() → None
    """

    tty: bool

    async def read(self) -> tuple[int, bytes] | None:
        """The next output chunk as (STDOUT | STDERR, data); None once all output ended
        (and after ``close``). With a tty everything is STDOUT."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data`` to stdin (ignored without stdin or after ``close_stdin``)."""
        ...

    async def close_stdin(self) -> None:
        """Half-close stdin: the process reads EOF (with a tty: an EOF character)."""
        ...

    async def resize(self, width: int, height: int) -> None:
        """Set the terminal size (ignored without a tty)."""
        ...

    async def wait(self) -> int | None:
        """exec: the process's exit code once it ended; attach: None once the session ended."""
        ...

    async def close(self) -> None:
        """exec: kill and reap the process and free its resources; attach: detach (the
        container keeps running). Idempotent."""
        ...
