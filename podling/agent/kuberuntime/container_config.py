"""Translate a pod's container spec + image config into a runtime ``ContainerConfig``.

Pure apart from reading /etc/passwd and /etc/group inside the image rootfs. It combines what
the kubelet computes (env and command ``$(VAR)`` expansion, the downward API, runAsNonRoot,
cgroup values, labels/annotations) with what containerd's CRI plugin adds (ENTRYPOINT/CMD
merging, image env, user/group lookup in the rootfs, ``HOSTNAME``, the default ``PATH``).
Config errors are :class:`ContainerConfigError` with the container's waiting reason
(``CreateContainerConfigError``) and the kubelet's message where it has one.
"""
from __future__ import annotations

import json
import math
import os
import signal
import stat
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Literal, Mapping, Sequence

from podling.agent.kuberuntime import labels as L
from podling.api.quantity import QuantityError, parse_quantity
from podling.images.interface import ImageConfig
from podling.runtime.interface import ContainerConfig, Mount, Resources, SecurityOptions

CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# kubelet pkg/kubelet/cm constants
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100000
MIN_QUOTA = 1000
_MAX_ETC_FILE = 4 << 20


class ContainerConfigError(Exception):
    """The container cannot be configured; ``reason`` is the container's waiting reason."""

    def __init__(self, message: str, reason: str = CREATE_CONTAINER_CONFIG_ERROR) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def format_pod(pod: Mapping[str, Any]) -> str:
    """The kubelet's ``format.Pod``: ``<name>_<namespace>(<uid>)``."""
    m = pod.get("metadata", {})
    return f"{m.get('name', '')}_{m.get('namespace', 'default')}({m.get('uid', '')})"


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand ``$(NAME)`` references with ``mapping``; ``$$`` is a literal ``$``; a ``$``
    followed by anything else, or an unclosed ``$(``, is kept as written."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            advance = 1
            if rest[0] == "$":
                out.append("$")
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close >= 0:
                    out.append(mapping(rest[1:close]))
                    advance = close + 1
                else:
                    out.append("$(")
            else:
                out.append("$" + rest[0])
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def mapping_for(*envs: Mapping[str, str]) -> Callable[[str], str]:
    """The kubelet's ``MappingFuncFor``: known names expand, unknown ones stay ``$(NAME)``."""
    def lookup(name: str) -> str:
        for env in envs:
            if name in env:
                return env[name]
        return f"$({name})"
    return lookup


def build_command(container: Mapping[str, Any], image: ImageConfig,
                  env: Mapping[str, str]) -> list[str]:
    """Kubernetes' rules: ``command`` replaces ENTRYPOINT and drops CMD; ``args`` replaces
    CMD. ``$(VAR)`` in command/args expands from the container's env. Raises
    :class:`ContainerConfigError` (CreateContainerError) when nothing is left to run."""
    mapping = mapping_for(env)
    command = [expand(str(c), mapping) for c in container.get("command") or []]
    args = [expand(str(a), mapping) for a in container.get("args") or []]
    if command:
        argv = command + args
    else:
        argv = list(image.entrypoint) + (args if args else list(image.cmd))
    if not argv:
        raise ContainerConfigError("failed to generate container spec: no command specified",
                                   CREATE_CONTAINER_ERROR)
    return argv


@dataclass(frozen=True)
class PodContext:
    """What the downward API needs besides the pod object."""

    pod_ips: tuple[str, ...]
    host_ips: tuple[str, ...]
    node_cpu_milli: int
    node_memory_bytes: int


def _format_map(values: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={json.dumps(values[k])}" for k in sorted(values))


def _subscript(path: str, prefix: str) -> str | None:
    if path.startswith(prefix + "['") and path.endswith("']"):
        return path[len(prefix) + 2:-2]
    return None


def field_ref_value(pod: Mapping[str, Any], path: str, ctx: PodContext) -> str:
    """The value of a downward API ``fieldRef.fieldPath`` (kubelet podFieldSelectorRuntimeValue
    + fieldpath.ExtractFieldPathAsString). Raises ContainerConfigError for unknown paths."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": ctx.host_ips[0] if ctx.host_ips else "",
        "status.hostIPs": ",".join(ctx.host_ips),
        "status.podIP": ctx.pod_ips[0] if ctx.pod_ips else "",
        "status.podIPs": ",".join(ctx.pod_ips),
    }
    if path in simple:
        return simple[path]
    for prefix in ("metadata.labels", "metadata.annotations"):
        values = meta.get(prefix.split(".")[1]) or {}
        if path == prefix:
            return _format_map(values)
        key = _subscript(path, prefix)
        if key is not None:
            return values.get(key, "")
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def _find_container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    spec = pod.get("spec", {})
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if c.get("name") == name:
            return c
    return None


def _quantity(value: Any, what: str) -> Decimal:
    try:
        return parse_quantity(value)
    except QuantityError as e:
        raise ContainerConfigError(f"invalid quantity {value!r} for {what}: {e}") from e


def resource_field_value(pod: Mapping[str, Any], container: Mapping[str, Any],
                         ref: Mapping[str, Any], ctx: PodContext) -> str:
    """``resourceFieldRef``: limits default to node allocatable; the result is the ceiling of
    value / divisor (cpu compared in millicores, memory in bytes), as the kubelet does."""
    target = container
    if ref.get("containerName"):
        found = _find_container(pod, ref["containerName"])
        if found is None:
            raise ContainerConfigError(f"cannot find container {ref['containerName']!r}")
        target = found
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory"):
        raise ContainerConfigError(f"unsupported container resource : {resource}")
    values = (target.get("resources") or {}).get(kind) or {}
    if name in values:
        amount = _quantity(values[name], resource)
    elif kind == "limits":
        amount = (Decimal(ctx.node_cpu_milli) / 1000 if name == "cpu"
                  else Decimal(ctx.node_memory_bytes))
    else:
        amount = Decimal(0)
    divisor = _quantity(ref.get("divisor") or "1", resource + " divisor") or Decimal(1)
    if name == "cpu":
        result = math.ceil(_milli(amount) / _milli(divisor))
    else:
        result = math.ceil(math.ceil(amount) / math.ceil(divisor))
    return str(result)


def _milli(value: Decimal) -> int:
    return math.ceil(value * 1000)  # Quantity.MilliValue (rounded up)


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any],
                  ctx: PodContext) -> dict[str, str]:
    """The kubelet's ``makeEnvironmentVariables`` for ``container.env`` (in spec order; a
    repeated name keeps its first position and its last value). ``$(VAR)`` expands against
    the earlier entries only. ``envFrom`` and configMap/secret refs are not supported yet."""
    name = container.get("name", "")
    if container.get("envFrom"):
        raise ContainerConfigError(
            f"container {name}: envFrom (configMap/secret) is not supported by podling yet")
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        key = var.get("name", "")
        source = var.get("valueFrom")
        if source:
            env[key] = _value_from(pod, container, key, source, ctx)
        else:
            value = var.get("value") or ""
            env[key] = expand(value, mapping_for(env)) if value else ""
    return env


def _value_from(pod: Mapping[str, Any], container: Mapping[str, Any], key: str,
                source: Mapping[str, Any], ctx: PodContext) -> str:
    if "fieldRef" in source:
        return field_ref_value(pod, source["fieldRef"].get("fieldPath", ""), ctx)
    if "resourceFieldRef" in source:
        return resource_field_value(pod, container, source["resourceFieldRef"], ctx)
    what = next((k for k in ("secretKeyRef", "configMapKeyRef") if k in source), "/".join(source))
    raise ContainerConfigError(
        f"container {container.get('name', '')}: env {key!r} uses valueFrom.{what}, "
        "which is not supported by podling yet")


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """containerd's replace-or-append: an override of an existing key replaces it in place."""
    result = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(result)}
    for entry in overrides:
        key = entry.partition("=")[0]
        if key in index:
            result[index[key]] = entry
        else:
            index[key] = len(result)
            result.append(entry)
    return result


def read_rootfs_etc_file(rootfs: str, name: str) -> str:
    """Read ``<rootfs>/etc/<name>`` without following any symlink (a symlinked ``etc`` or
    file counts as absent, so nothing outside the rootfs is ever read). Missing → ``""``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fds: list[int] = []
    try:
        fds.append(os.open(rootfs, flags | os.O_DIRECTORY))
        fds.append(os.open("etc", flags | os.O_DIRECTORY, dir_fd=fds[-1]))
        fds.append(os.open(name, flags | os.O_NONBLOCK, dir_fd=fds[-1]))
        if not stat.S_ISREG(os.fstat(fds[-1]).st_mode):
            return ""
        return os.read(fds[-1], _MAX_ETC_FILE).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        for fd in fds:
            os.close(fd)


def _entries(text: str, width: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines()]
    rows = [line.split(":") for line in lines if line and not line.startswith("#")]
    return [row for row in rows if len(row) >= width]


def _to_int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: list[int]


def resolve_user(rootfs: str, user: str, *, run_as_user: int | None,
                 run_as_group: int | None, extra_gids: Sequence[int]) -> ResolvedUser:
    """containerd/runc user semantics. ``run_as_user`` overrides the image's ``user[:group]``;
    names are looked up in the rootfs's /etc/passwd and /etc/group; a numeric uid takes its
    primary gid from passwd (0 when absent). ``run_as_group`` overrides the gid (podling also
    honours it without ``run_as_user``). Additional gids: the primary gid, the groups listing
    the user in /etc/group, then ``extra_gids`` (fsGroup, supplementalGroups), de-duplicated."""
    passwd = _entries(read_rootfs_etc_file(rootfs, "passwd"), 4)
    groups = _entries(read_rootfs_etc_file(rootfs, "group"), 3)
    user_part, _, group_part = user.partition(":")
    if run_as_user is not None:
        user_part, group_part = str(run_as_user), ""
    user_part = user_part or "0"  # containerd: no user means "0" (still looked up)
    numeric = _to_int(user_part)
    match = [p for p in passwd if (_to_int(p[2]) == numeric if numeric is not None
                                   else p[0] == user_part and _to_int(p[2]) is not None)]
    if numeric is None and not match:
        raise ContainerConfigError(
            f"unable to find user {user_part}: no matching entries in passwd file")
    uid = numeric if numeric is not None else int(match[0][2])
    username, gid = (match[0][0], _to_int(match[0][3]) or 0) if match else ("", 0)
    if group_part:
        numeric = _to_int(group_part)
        if numeric is None:
            found = [g for g in groups if g[0] == group_part and _to_int(g[2]) is not None]
            if not found:
                raise ContainerConfigError(
                    f"unable to find group {group_part}: no matching entries in group file")
            numeric = int(found[0][2])
        gid = numeric
    if run_as_group is not None:
        gid = run_as_group
    member_of = [int(g[2]) for g in groups if username and _to_int(g[2]) is not None
                 and g[0] != username and username in g[3].split(",")]
    gids: list[int] = []
    for g in [gid, *member_of, *extra_gids]:
        if g not in gids:
            gids.append(g)
    return ResolvedUser(uid, gid, gids)


def check_run_as_non_root(pod: Mapping[str, Any], container: Mapping[str, Any],
                          image_user: str) -> None:
    """The kubelet's ``verifyRunAsNonRoot`` (effective security context: container over pod)."""
    sc = _effective_sc(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    who = f"(pod: {json.dumps(format_pod(pod))}, container: {container.get('name', '')})"
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {who}")
        return
    name = image_user.partition(":")[0]
    if name and _to_int(name) is None:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({name}), "
            f"cannot verify user is non-root {who}")
    if not name or int(name) == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {who}")


def _effective_sc(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    c_sc = container.get("securityContext") or {}
    merged = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot") if k in pod_sc}
    merged.update({k: v for k, v in c_sc.items() if v is not None})
    return merged


def milli_cpu_to_shares(milli: int) -> int:
    """kubelet MilliCPUToShares: 0 → the minimum (2); clamped to [2, 262144]."""
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // 1000))


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD) -> int:
    """kubelet milliCPUToQuota: 0 (no limit) → 0; at least 1000 µs otherwise."""
    if milli == 0:
        return 0
    return max(MIN_QUOTA, milli * period // 1000)


def build_resources(container: Mapping[str, Any]) -> Resources:
    """cpu shares from the request (the limit when no request), quota from the limit with a
    100 ms period (always set, as the kubelet does), memory limit in bytes."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    cpu_req = _milli(_quantity(requests["cpu"], "requests.cpu")) if "cpu" in requests else 0
    cpu_lim = _milli(_quantity(limits["cpu"], "limits.cpu")) if "cpu" in limits else 0
    mem = math.ceil(_quantity(limits["memory"], "limits.memory")) if "memory" in limits else 0
    shares = milli_cpu_to_shares(cpu_req if cpu_req or not cpu_lim else cpu_lim)
    return Resources(cpu_shares=shares, cpu_quota=milli_cpu_to_quota(cpu_lim),
                     cpu_period=QUOTA_PERIOD, memory_limit_bytes=mem)


def cap_name(name: str) -> str:
    """``net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` → ``CAP_NET_ADMIN``; ``ALL`` stays."""
    upper = name.upper()
    if upper == "ALL" or upper.startswith("CAP_"):
        return upper
    return "CAP_" + upper


def build_security(container: Mapping[str, Any]) -> SecurityOptions:
    """privileged, capabilities, readOnlyRootFilesystem; ``allowPrivilegeEscalation: false``
    → no_new_privs (unset → False, as Kubernetes); ``procMount: Unmasked`` → no masking."""
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    unmasked = sc.get("procMount") == "Unmasked"
    return SecurityOptions(
        privileged=bool(sc.get("privileged")),
        capabilities_add=tuple(cap_name(c) for c in caps.get("add") or []),
        capabilities_drop=tuple(cap_name(c) for c in caps.get("drop") or []),
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        masked_paths=() if unmasked else None,
        readonly_paths=() if unmasked else None,
    )


def normalize_signal(name: str) -> str:
    """``15`` / ``TERM`` / ``sigterm`` → ``SIGTERM``; empty → ``SIGTERM``."""
    name = (name or "SIGTERM").strip().upper()
    if name.isdigit():
        try:
            return signal.Signals(int(name)).name
        except ValueError as e:
            raise ContainerConfigError(f"invalid stop signal {name!r}") from e
    return name if name.startswith("SIG") else "SIG" + name


def build_container_config(
    pod: dict[str, Any], container: dict[str, Any], *, image: ImageConfig, rootfs: str,
    pod_ip: str, host_ip: str, node_name: str, restart_count: int, log_path: str,
    mounts: list[Mount], container_type: Literal["app", "init"] = "app",
    hostname: str = "", pod_ips: Sequence[str] = (), host_ips: Sequence[str] = (),
    node_cpu_milli: int | None = None, node_memory_bytes: int | None = None,
) -> ContainerConfig:
    """The runtime config for one attempt (``restart_count``) of ``container``.

    ``pod_ips``/``host_ips`` default to ``[pod_ip]``/``[host_ip]``; ``hostname`` (when given)
    becomes ``HOSTNAME`` as containerd sets it; node allocatable (for ``resourceFieldRef``
    limits) defaults to the host's CPUs and memory. ``mounts`` are used as given (volume
    mounts + pod files). Raises :class:`ContainerConfigError`.
    """
    ctx = PodContext(
        tuple(pod_ips) or ((pod_ip,) if pod_ip else ()),
        tuple(host_ips) or ((host_ip,) if host_ip else ()),
        (os.cpu_count() or 1) * 1000 if node_cpu_milli is None else node_cpu_milli,
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if node_memory_bytes is None
        else node_memory_bytes)
    check_run_as_non_root(pod, container, image.user)
    env = container_env(pod, container, ctx)
    command = build_command(container, image, env)
    base = [DEFAULT_PATH]  # containerd's default spec; an image PATH replaces it in place
    if hostname:
        base.append(f"HOSTNAME={hostname}")
    full_env = merge_env(merge_env(base, image.env), [f"{k}={v}" for k, v in env.items()])
    user = _user_for(pod, container, image, rootfs)
    return ContainerConfig(
        name=container["name"], rootfs=rootfs, command=command, attempt=restart_count,
        env=full_env, working_dir=container.get("workingDir") or image.working_dir or "/",
        uid=user.uid, gid=user.gid, additional_gids=user.additional_gids,
        tty=bool(container.get("tty")), stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")), log_path=log_path, mounts=list(mounts),
        resources=build_resources(container), security=build_security(container),
        stop_signal=normalize_signal(((container.get("lifecycle") or {}).get("stopSignal"))
                                     or image.stop_signal),
        labels=container_labels(pod, container, node_name, container_type),
        annotations=container_annotations(pod, container, restart_count))


def _user_for(pod: Mapping[str, Any], container: Mapping[str, Any], image: ImageConfig,
              rootfs: str) -> ResolvedUser:
    sc = _effective_sc(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    extra = ([int(pod_sc["fsGroup"])] if pod_sc.get("fsGroup") is not None else []) + \
        [int(g) for g in pod_sc.get("supplementalGroups") or []]
    run_as_user = sc.get("runAsUser")
    run_as_group = sc.get("runAsGroup")
    return resolve_user(rootfs, image.user,
                        run_as_user=int(run_as_user) if run_as_user is not None else None,
                        run_as_group=int(run_as_group) if run_as_group is not None else None,
                        extra_gids=extra)


def container_labels(pod: Mapping[str, Any], container: Mapping[str, Any], node_name: str,
                     container_type: str) -> dict[str, str]:
    """Pod identity labels + container name and type ("app" or "init")."""
    if container_type not in ("app", "init"):
        raise ValueError(f"container_type must be 'app' or 'init', not {container_type!r}")
    result = L.pod_labels(dict(pod), node_name)
    result[L.CONTAINER_NAME] = container["name"]
    result[L.CONTAINER_TYPE] = container_type
    return result


def container_annotations(pod: Mapping[str, Any], container: Mapping[str, Any],
                          restart_count: int) -> dict[str, str]:
    """Spec hash, restart count, termination message path/policy and the pod's grace period
    (defaults applied as the API server would: /dev/termination-log, File, 30)."""
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return {
        L.CONTAINER_HASH: L.container_hash(dict(container)),
        L.RESTART_COUNT: str(restart_count),
        L.TERMINATION_MESSAGE_PATH:
            container.get("terminationMessagePath") or "/dev/termination-log",
        L.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
        L.GRACE_PERIOD: str(30 if grace is None else grace),
    }
