"""Build OCI runtime-spec ``config.json`` documents (pure functions, no I/O).

Sandbox (pause) namespaces (``pinned``: the sandbox's pinned IPC / UTS namespace files)::

    network  POD: join the named netns bind-mount (path)   NODE: omitted = the host's
    ipc      POD: join the pinned one (new when none)      NODE: omitted
    uts      the pinned one (new when none; hostname set), unless network is NODE (then the
             host's, no hostname)
    pid      new, unless pid is NODE
    mount    new

Container namespaces (the sandbox's: the pinned files, else through the pause process,
``/proc/<pause pid>/ns/*``, as for sandboxes made before namespaces were pinned)::

    network  the sandbox netns path, or omitted with NODE
    ipc      pinned or /proc/<pause>/ns/ipc, or omitted with NODE
    uts      pinned or /proc/<pause>/ns/uts, or omitted with network NODE
    pid      CONTAINER: new   POD: /proc/<pause>/ns/pid   NODE: omitted
    mount    new

Security defaults (our own lists, in the spirit of the common container defaults): a small
capability set, masked and read-only /proc and /sys paths, the device cgroup denying all but
runc's standard devices, and the seccomp filter the container's ``SecurityOptions.seccomp``
names (none unless asked, as Kubernetes; :mod:`.seccomp`). Privileged containers get every
capability the runtime holds, no masked/read-only paths, no seccomp filter, a writable
/sys, an allow-all device cgroup and the host's device nodes in /dev.

rlimits are emitted only clamped to the host's hard limits: raising a hard limit fails with
EPERM here and runc then refuses to start the process (docs/host-notes.md §3).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..interface import (ContainerConfig, InvalidConfig, Mount, MountPropagation,
                         NamespaceMode, NamespaceOptions, PodSandboxConfig, SecurityOptions)

OCI_VERSION = "1.0.2"
RLIM_INFINITY_OCI = 2**64 - 1
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
    "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
)
"""Capabilities a non-privileged container gets unless dropped."""

ALL_CAPABILITIES: tuple[str, ...] = tuple(f"CAP_{n}" for n in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE").split())
"""Every capability of Linux 5.9+, in capability-number order (0–40)."""


def held_capabilities(bounding_set: int) -> tuple[str, ...]:
    """The capabilities whose bits are set in ``bounding_set`` (``CapBnd`` of
    /proc/<pid>/status)."""
    return tuple(name for bit, name in enumerate(ALL_CAPABILITIES) if bounding_set >> bit & 1)

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
)
"""Paths hidden from non-privileged containers (information leaks about the host)."""

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
"""Paths mounted read-only in non-privileged containers (host-wide kernel knobs)."""

DEFAULT_RLIMITS: Mapping[str, tuple[int, int]] = {"RLIMIT_NOFILE": (1048576, 1048576)}
"""What a container asks for by default; always clamped to the host's hard limits."""

_PROPAGATION = {
    MountPropagation.PRIVATE: "rprivate",
    MountPropagation.HOST_TO_CONTAINER: "rslave",
    MountPropagation.BIDIRECTIONAL: "rshared",
}


@dataclass(frozen=True)
class SandboxRef:
    """What a container's config needs to know about its sandbox."""

    options: NamespaceOptions
    netns_path: str  # empty with network NODE
    pause_pid: int
    shm_path: str  # a tmpfs owned by the sandbox; empty with ipc NODE
    cgroup_parent: str
    pinned: Mapping[str, str] = field(default_factory=dict)  # "ipc" / "uts" -> file


# -- small pure pieces ----------------------------------------------------------------------


def host_rlimits(names: list[str]) -> dict[str, tuple[int, int]]:
    """The calling process's (soft, hard) limits; RLIM_INFINITY is -1."""
    out = {}
    for name in names:
        number = getattr(resource, name, None)
        if number is not None:
            out[name] = resource.getrlimit(number)
    return out


def clamp_rlimits(wanted: Mapping[str, tuple[int, int]],
                  host: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """OCI ``process.rlimits`` for ``wanted`` (-1 = unlimited), each clamped so that neither
    value exceeds the host's hard limit. Limits the host does not know are omitted."""
    out = []
    for name in sorted(wanted):
        if name not in host:
            continue
        soft, hard = wanted[name]
        host_hard = host[name][1]
        if host_hard >= 0:
            hard = host_hard if hard < 0 else min(hard, host_hard)
            soft = hard if soft < 0 else min(soft, hard)
        out.append({"type": name, "soft": _oci_limit(soft), "hard": _oci_limit(hard)})
    return out


def _oci_limit(value: int) -> int:
    return RLIM_INFINITY_OCI if value < 0 else value


def normalize_capability(name: str) -> str:
    name = name.strip().upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def capabilities(security: SecurityOptions,
                 host: tuple[str, ...] = ALL_CAPABILITIES) -> list[str]:
    """The effective capability set: defaults (or all when privileged), minus drops, plus adds.

    ``ALL`` in drop empties the set before adds; ``ALL`` in add grants every capability.
    "All" is ``host``: what the runtime itself holds (its bounding set, as containerd grants
    a privileged container), since runc cannot grant more."""
    if security.privileged:
        return list(host)
    drops = {normalize_capability(c) for c in security.capabilities_drop}
    adds = [normalize_capability(c) for c in security.capabilities_add]
    caps = [] if "CAP_ALL" in drops else [c for c in DEFAULT_CAPABILITIES if c not in drops]
    if "CAP_ALL" in adds:
        return list(host)
    for cap in adds:
        if cap not in caps:
            caps.append(cap)
    return caps


def _caps_block(caps: list[str]) -> dict[str, list[str]]:
    return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}


def _ns(kind: str, path: str = "") -> dict[str, str]:
    return {"type": kind, "path": path} if path else {"type": kind}


def sandbox_namespaces(options: NamespaceOptions, netns_path: str,
                       pinned: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Namespaces of the pause container (see the module doc table)."""
    pinned = pinned or {}
    out = [_ns("mount")]
    if options.network is not NamespaceMode.NODE:
        out += [_ns("network", netns_path), _ns("uts", pinned.get("uts", ""))]
    if options.ipc is not NamespaceMode.NODE:
        out.append(_ns("ipc", pinned.get("ipc", "")))
    if options.pid is not NamespaceMode.NODE:
        out.append(_ns("pid"))
    return out


def container_namespaces(sandbox: SandboxRef, pid_target: int = 0) -> list[dict[str, str]]:
    """Namespaces of an app container: it joins the pause process's (see the module doc);
    with pid mode CONTAINER and a ``pid_target`` (a process of the target container), the
    target's PID namespace instead of a new one."""
    options, proc_ns = sandbox.options, f"/proc/{sandbox.pause_pid}/ns"
    out = [_ns("mount")]
    if options.network is not NamespaceMode.NODE:
        out += [_ns("network", sandbox.netns_path),
                _ns("uts", sandbox.pinned.get("uts") or f"{proc_ns}/uts")]
    if options.ipc is not NamespaceMode.NODE:
        out.append(_ns("ipc", sandbox.pinned.get("ipc") or f"{proc_ns}/ipc"))
    if options.pid is NamespaceMode.POD:
        out.append(_ns("pid", f"{proc_ns}/pid"))
    elif options.pid is NamespaceMode.CONTAINER:
        out.append(_ns("pid", f"/proc/{pid_target}/ns/pid" if pid_target else ""))
    return out


def base_mounts(*, shm_path: str, privileged: bool = False) -> list[dict[str, Any]]:
    """The kernel filesystems every container gets; /dev/shm is the sandbox's shm (a bind of
    ``shm_path``) or the host's /dev/shm when ``shm_path`` is empty (ipc NODE)."""
    sys_mode = "rw" if privileged else "ro"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "bind", "source": shm_path or "/dev/shm",
         "options": ["rbind", "nosuid", "noexec", "nodev", "rw"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", sys_mode]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode]},
    ]


def bind_mount(m: Mount) -> dict[str, Any]:
    """An OCI bind mount for a caller's Mount; raises InvalidConfig for relative paths."""
    if not os.path.isabs(m.container_path) or not os.path.isabs(m.host_path):
        raise InvalidConfig(f"mount paths must be absolute: {m.host_path} -> {m.container_path}")
    return {"destination": os.path.normpath(m.container_path), "type": "bind",
            "source": m.host_path,
            "options": ["rbind", "ro" if m.readonly else "rw", _PROPAGATION[m.propagation]]}


def user_mounts(mounts: list[Mount]) -> list[dict[str, Any]]:
    """Caller mounts, parents before children (stable by path depth)."""
    ordered = sorted(mounts, key=lambda m: os.path.normpath(m.container_path).count("/"))
    return [bind_mount(m) for m in ordered]


def rootfs_propagation(mounts: list[Mount]) -> str:
    kinds = {m.propagation for m in mounts}
    if MountPropagation.BIDIRECTIONAL in kinds:
        return "rshared"
    if MountPropagation.HOST_TO_CONTAINER in kinds:
        return "rslave"
    return ""


def resources_block(config: ContainerConfig) -> dict[str, Any]:
    """``linux.resources``: the device cgroup, cpu and memory (zero values omitted)."""
    r = config.resources
    devices = [{"allow": config.security.privileged, "access": "rwm"}]
    out: dict[str, Any] = {"devices": devices}
    cpu = {k: v for k, v in (("shares", r.cpu_shares), ("quota", r.cpu_quota),
                             ("period", r.cpu_period)) if v > 0}
    if cpu:
        out["cpu"] = cpu
    if r.memory_limit_bytes > 0:
        out["memory"] = {"limit": r.memory_limit_bytes}
    return out


def _env_with_path(env: list[str]) -> list[str]:
    if any(e.startswith("PATH=") for e in env):
        return list(env)
    return [f"PATH={DEFAULT_PATH}", *env]


# -- whole documents ------------------------------------------------------------------------


def sandbox_spec(config: PodSandboxConfig, *, netns_path: str, pause_rootfs: str,
                 pause_binary: str, shm_path: str, cgroups_path: str,
                 rlimits: list[dict[str, Any]],
                 pinned: Mapping[str, str] | None = None) -> dict[str, Any]:
    """config.json of the pause container: ``/pause -P`` (catatonit bind-mounted read-only)
    in a read-only minimal root, owning the pod's namespaces."""
    options = config.namespace_options
    spec = _skeleton(args=["/pause", "-P"], env=[f"PATH={DEFAULT_PATH}"], cwd="/",
                     caps=list(DEFAULT_CAPABILITIES), rlimits=rlimits, no_new_privs=True)
    spec["root"] = {"path": pause_rootfs, "readonly": True}
    if options.network is not NamespaceMode.NODE:
        spec["hostname"] = config.hostname or config.name
    spec["mounts"] = base_mounts(shm_path=shm_path) + [
        {"destination": "/pause", "type": "bind", "source": pause_binary,
         "options": ["rbind", "ro", "nosuid", "nodev"]}]
    spec["linux"] = {
        "namespaces": sandbox_namespaces(options, netns_path, pinned),
        "cgroupsPath": cgroups_path,
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "maskedPaths": list(DEFAULT_MASKED_PATHS),
        "readonlyPaths": list(DEFAULT_READONLY_PATHS),
    }
    if config.sysctls:  # written by runc in the pod's namespaces, which the pause owns
        spec["linux"]["sysctl"] = dict(config.sysctls)
    return spec


def container_spec(config: ContainerConfig, sandbox: SandboxRef, *, cgroups_path: str,
                   rlimits: list[dict[str, Any]], pid_target: int = 0,
                   caps: list[str] | None = None, seccomp: dict[str, Any] | None = None,
                   host_devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """config.json of an app container joining ``sandbox``'s namespaces (and the PID
    namespace of process ``pid_target``, see :func:`container_namespaces`). ``caps``: its
    capabilities (default: :func:`capabilities` of its security options); ``seccomp``: the
    filter block (:mod:`.seccomp`); ``host_devices``: the device nodes a privileged
    container gets."""
    if not config.command:
        raise InvalidConfig(f"container {config.name!r} has no command")
    if not os.path.isabs(config.working_dir or "/"):
        raise InvalidConfig(f"working directory must be absolute: {config.working_dir!r}")
    sec = config.security
    spec = _skeleton(args=list(config.command), env=_env_with_path(config.env),
                     cwd=config.working_dir or "/",
                     caps=capabilities(sec) if caps is None else caps, rlimits=rlimits,
                     no_new_privs=sec.no_new_privs and not sec.privileged)
    proc = spec["process"]
    proc["terminal"] = config.tty
    proc["user"] = {"uid": config.uid, "gid": config.gid}
    if config.additional_gids:
        proc["user"]["additionalGids"] = list(config.additional_gids)
    spec["root"] = {"path": config.rootfs, "readonly": sec.readonly_rootfs}
    spec["mounts"] = base_mounts(shm_path=sandbox.shm_path, privileged=sec.privileged) \
        + user_mounts(config.mounts)
    linux: dict[str, Any] = {
        "namespaces": container_namespaces(sandbox, pid_target),
        "cgroupsPath": cgroups_path,
        "resources": resources_block(config),
    }
    if sec.privileged and host_devices:
        linux["devices"] = host_devices
    if not sec.privileged:
        linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS if sec.masked_paths is None
                                    else sec.masked_paths)
        linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS if sec.readonly_paths is None
                                      else sec.readonly_paths)
    propagation = rootfs_propagation(config.mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation
    if seccomp is not None:
        linux["seccomp"] = seccomp
    spec["linux"] = linux
    return spec


def _skeleton(*, args: list[str], env: list[str], cwd: str, caps: list[str],
              rlimits: list[dict[str, Any]], no_new_privs: bool) -> dict[str, Any]:
    process: dict[str, Any] = {
        "terminal": False, "user": {"uid": 0, "gid": 0}, "args": args, "env": env,
        "cwd": cwd, "capabilities": _caps_block(caps), "noNewPrivileges": no_new_privs,
    }
    if rlimits:
        process["rlimits"] = rlimits
    return {"ociVersion": OCI_VERSION, "process": process}
