"""Who a container runs as: containerd/runc user and group lookup inside the image rootfs,
and the kubelet's ``runAsNonRoot`` check.

Reads ``/etc/passwd`` and ``/etc/group`` of the rootfs without following symlinks; nothing
else touches the file system. Errors are
:class:`~podling.agent.kuberuntime.errors.ContainerConfigError`.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Sequence, TypeVar

from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.labels import format_pod
from podling.api.views import ContainerView, PodView

_MAX_ETC_FILE = 4 << 20
T = TypeVar("T")


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


def check_run_as_non_root(pod: PodView, container: ContainerView, image_user: str) -> None:
    """The kubelet's ``verifyRunAsNonRoot`` (effective security context: container over pod)."""
    sc = effective_security_context(pod, container)
    if not sc.run_as_non_root:
        return
    who = f"(pod: {json.dumps(format_pod(pod))}, container: {container.name})"
    if sc.run_as_user is not None:
        if sc.run_as_user == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {who}")
        return
    name = image_user.partition(":")[0]
    if name and _to_int(name) is None:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({name}), "
            f"cannot verify user is non-root {who}")
    if not name or int(name) == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {who}")


@dataclass(frozen=True)
class EffectiveUser:
    """The identity fields of the effective security context; None when neither the
    container nor the pod sets one."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None


def effective_security_context(pod: PodView, container: ContainerView) -> EffectiveUser:
    """runAsUser / runAsGroup / runAsNonRoot of the pod, overridden by the container's
    (a field the container sets, even to 0 / false, wins)."""
    pod_sc, c_sc = pod.spec.security_context, container.security_context
    return EffectiveUser(run_as_user=_first_set(c_sc.run_as_user, pod_sc.run_as_user),
                         run_as_group=_first_set(c_sc.run_as_group, pod_sc.run_as_group),
                         run_as_non_root=_first_set(c_sc.run_as_non_root,
                                                    pod_sc.run_as_non_root))


def _first_set(mine: T | None, theirs: T | None) -> T | None:
    return theirs if mine is None else mine
