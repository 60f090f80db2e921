"""Translate a pod's container spec + image config into a runtime ``ContainerConfig``.

Pure apart from reading /etc/passwd and /etc/group inside the image rootfs (:mod:`.users`).
It combines what the kubelet computes (command ``$(VAR)`` expansion, runAsNonRoot, cgroup
values, labels/annotations) with what containerd's CRI plugin adds (ENTRYPOINT/CMD merging,
image env, user/group lookup in the rootfs, ``HOSTNAME``, the default ``PATH``). The
container's own environment is computed by the caller with :func:`.env.container_env`, once
per start, and passed in. Config errors are :class:`.errors.ContainerConfigError` with the
container's waiting reason and the kubelet's message where it has one.
"""
from __future__ import annotations

import math
import signal
from decimal import Decimal
from typing import Any, Literal, Mapping

from podling.agent.kuberuntime import labels as L
from podling.agent.kuberuntime.env import (expand, mapping_for, merge_env, milli,
                                           parse_config_quantity)
from podling.agent.kuberuntime.errors import CREATE_CONTAINER_ERROR, ContainerConfigError
from podling.agent.kuberuntime.users import (ResolvedUser, check_run_as_non_root,
                                             effective_security_context, resolve_user)
from podling.images.interface import ImageConfig
from podling.runtime.interface import ContainerConfig, Mount, Resources, SecurityOptions

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# kubelet pkg/kubelet/cm constants
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100000
MIN_QUOTA = 1000


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
    def amount(values: Mapping[str, Any], name: str, what: str) -> Decimal:
        return parse_config_quantity(values[name], what) if name in values else Decimal(0)

    cpu_req = milli(amount(requests, "cpu", "requests.cpu"))
    cpu_lim = milli(amount(limits, "cpu", "limits.cpu"))
    mem = math.ceil(amount(limits, "memory", "limits.memory"))
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
    env: Mapping[str, str], node_name: str, restart_count: int, log_path: str,
    mounts: list[Mount], container_type: Literal["app", "init"] = "app", hostname: str = "",
) -> ContainerConfig:
    """The runtime config for one attempt (``restart_count``) of ``container``.

    ``env`` is the container's own environment (:func:`.env.container_env`), merged over the
    image's; ``hostname`` (when given) becomes ``HOSTNAME`` as containerd sets it. ``mounts``
    are used as given (volume mounts + pod files). Raises :class:`ContainerConfigError`.
    """
    check_run_as_non_root(pod, container, image.user)
    command = build_command(container, image, env)
    base = [DEFAULT_PATH]  # containerd's default spec; an image PATH replaces it in place
    if hostname:
        base.append(f"HOSTNAME={hostname}")
    full_env = merge_env(merge_env(base, image.env), [f"{k}={v}" for k, v in env.items()])
    user = _user_for(pod, container, image=image, rootfs=rootfs)
    return ContainerConfig(
        name=container["name"], rootfs=rootfs, command=command, attempt=restart_count,
        env=full_env, working_dir=container.get("workingDir") or image.working_dir or "/",
        uid=user.uid, gid=user.gid, additional_gids=user.additional_gids,
        tty=bool(container.get("tty")), stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")), log_path=log_path, mounts=list(mounts),
        resources=build_resources(container), security=build_security(container),
        stop_signal=normalize_signal(((container.get("lifecycle") or {}).get("stopSignal"))
                                     or image.stop_signal),
        labels=container_labels(pod, container, node_name=node_name,
                                container_type=container_type),
        annotations=container_annotations(pod, container, restart_count))


def _user_for(pod: Mapping[str, Any], container: Mapping[str, Any], *, image: ImageConfig,
              rootfs: str) -> ResolvedUser:
    sc = effective_security_context(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    extra = ([int(pod_sc["fsGroup"])] if pod_sc.get("fsGroup") is not None else []) + \
        [int(g) for g in pod_sc.get("supplementalGroups") or []]
    run_as_user = sc.get("runAsUser")
    run_as_group = sc.get("runAsGroup")
    return resolve_user(rootfs, image.user,
                        run_as_user=int(run_as_user) if run_as_user is not None else None,
                        run_as_group=int(run_as_group) if run_as_group is not None else None,
                        extra_gids=extra)


def container_labels(pod: Mapping[str, Any], container: Mapping[str, Any], *, node_name: str,
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
