"""Translate a pod's container spec + image config into a runtime ``ContainerConfig``.

Pure apart from reading /etc/passwd and /etc/group inside the image rootfs (:mod:`.users`).
It combines what the kubelet computes (command ``$(VAR)`` expansion, runAsNonRoot, cgroup
values, labels/annotations) with what containerd's CRI plugin adds (ENTRYPOINT/CMD merging,
image env, user/group lookup in the rootfs, ``HOSTNAME``, the default ``PATH``). The
container's own environment is computed by the caller with :func:`.env.container_env`
(which reads ConfigMaps and Secrets), once per start, and passed in. Config errors are
:class:`.errors.ContainerConfigError` with the container's waiting reason and the kubelet's
message where it has one.
"""
from __future__ import annotations

import math
import os
import signal
from decimal import Decimal
from typing import Any, Mapping

from podling.agent.kuberuntime import labels as L
from podling.agent.kuberuntime.env import expand, mapping_for, merge_env, parse_config_quantity
from podling.agent.kuberuntime.errors import CREATE_CONTAINER_ERROR, ContainerConfigError
from podling.agent.kuberuntime.resource_fields import milli
from podling.agent.kuberuntime.users import (ResolvedUser, check_run_as_non_root,
                                             effective_security_context, resolve_user)
from podling.api.views import ContainerView, PodView, SecurityContextView
from podling.images.interface import ImageConfig
from podling.runtime.interface import (SECCOMP_LOCALHOST, SECCOMP_RUNTIME_DEFAULT,
                                       ContainerConfig, Mount, Resources, SecurityOptions)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# kubelet pkg/kubelet/cm constants
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100000
MIN_QUOTA = 1000


def build_command(container: ContainerView, image: ImageConfig,
                  env: Mapping[str, str]) -> list[str]:
    """Kubernetes' rules: ``command`` replaces ENTRYPOINT and drops CMD; ``args`` replaces
    CMD. ``$(VAR)`` in command/args expands from the container's env. Raises
    :class:`ContainerConfigError` (CreateContainerError) when nothing is left to run."""
    mapping = mapping_for(env)
    command = [expand(c, mapping) for c in container.command]
    args = [expand(a, mapping) for a in container.args]
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


def build_resources(container: ContainerView) -> Resources:
    """cpu shares from the request (the limit when no request), quota from the limit with a
    100 ms period (always set, as the kubelet does), memory limit in bytes."""
    requests, limits = container.resources.requests, container.resources.limits

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


def build_security(pod: PodView, container: ContainerView,
                   seccomp_root: str = "") -> SecurityOptions:
    """privileged, capabilities, readOnlyRootFilesystem; ``allowPrivilegeEscalation: false``
    → no_new_privs (unset → False, as Kubernetes); ``procMount: Unmasked`` → no masking;
    the seccomp profile (:func:`seccomp_profile`)."""
    sc: SecurityContextView = container.security_context
    unmasked = sc.proc_mount == "Unmasked"
    return SecurityOptions(
        privileged=sc.privileged,
        capabilities_add=tuple(cap_name(c) for c in sc.capabilities_add),
        capabilities_drop=tuple(cap_name(c) for c in sc.capabilities_drop),
        readonly_rootfs=sc.read_only_root_filesystem,
        no_new_privs=sc.allow_privilege_escalation is False,
        masked_paths=() if unmasked else None,
        readonly_paths=() if unmasked else None,
        seccomp=seccomp_profile(pod, container, seccomp_root),
    )


def seccomp_profile(pod: PodView, container: ContainerView, seccomp_root: str) -> str:
    """The container's ``seccompProfile``, else the pod's, in the runtime's terms: ""
    (Unconfined, also when neither names one, as the kubelet without --seccomp-default),
    SECCOMP_RUNTIME_DEFAULT, or SECCOMP_LOCALHOST + the profile's path under
    ``seccomp_root`` (the kubelet's /var/lib/kubelet/seccomp)."""
    profile = container.security_context.seccomp or pod.spec.security_context.seccomp
    if profile is None or profile.type in ("", "Unconfined"):
        return ""
    if profile.type == "RuntimeDefault":
        return SECCOMP_RUNTIME_DEFAULT
    return SECCOMP_LOCALHOST + os.path.join(seccomp_root, profile.localhost_profile)


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
    pod: PodView, container: ContainerView, *, image: ImageConfig, rootfs: str,
    env: Mapping[str, str], node_name: str, restart_count: int, log_path: str,
    mounts: list[Mount], container_type: str = "app", hostname: str = "",
    seccomp_root: str = "",
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
        name=container.name, rootfs=rootfs, command=command, attempt=restart_count,
        env=full_env, working_dir=container.working_dir or image.working_dir or "/",
        uid=user.uid, gid=user.gid, additional_gids=user.additional_gids,
        tty=container.tty, stdin=container.stdin,
        stdin_once=container.stdin_once, log_path=log_path, mounts=list(mounts),
        resources=build_resources(container),
        security=build_security(pod, container, seccomp_root),
        stop_signal=normalize_signal(container.lifecycle.stop_signal or image.stop_signal),
        labels=container_labels(pod, container, node_name=node_name,
                                container_type=container_type),
        annotations=container_annotations(pod, container, restart_count))


def _user_for(pod: PodView, container: ContainerView, *, image: ImageConfig,
              rootfs: str) -> ResolvedUser:
    sc = effective_security_context(pod, container)
    pod_sc = pod.spec.security_context
    extra = ([pod_sc.fs_group] if pod_sc.fs_group is not None else []) + \
        list(pod_sc.supplemental_groups)
    return resolve_user(rootfs, image.user, run_as_user=sc.run_as_user,
                        run_as_group=sc.run_as_group, extra_gids=extra)


def container_labels(pod: PodView, container: ContainerView, *, node_name: str,
                     container_type: str) -> dict[str, str]:
    """Pod identity labels + container name and type ("app", "init" or "ephemeral")."""
    if container_type not in ("app", "init", "ephemeral"):
        raise ValueError(f"container_type must be 'app', 'init' or 'ephemeral', not "
                         f"{container_type!r}")
    result = L.pod_labels(pod, node_name)
    result[L.CONTAINER_NAME] = container.name
    result[L.CONTAINER_TYPE] = container_type
    return result


def container_annotations(pod: PodView, container: ContainerView,
                          restart_count: int) -> dict[str, str]:
    """Spec hash (of the container as received, ``container.raw``), restart count,
    termination message path/policy and the pod's grace period (defaults applied as the API
    server would: /dev/termination-log, File, 30)."""
    grace = pod.spec.termination_grace_period_seconds
    return {
        L.CONTAINER_HASH: L.container_hash(container.raw),
        L.RESTART_COUNT: str(restart_count),
        L.TERMINATION_MESSAGE_PATH: container.termination_message_path,
        L.TERMINATION_MESSAGE_POLICY: container.termination_message_policy,
        L.GRACE_PERIOD: str(30 if grace is None else grace),
    }
