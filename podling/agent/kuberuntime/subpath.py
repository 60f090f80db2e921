"""subPath and subPathExpr of a volumeMount, made safe (kubelet ``subpath_linux.go``).

The path is first resolved inside the volume (``..`` and symlinks followed, as the
kubelet's ``EvalSymlinks``, but never past the volume root: an absolute symlink or one
that climbs out is refused). The resolved path is then opened one component at a time
relative to a directory fd with ``O_NOFOLLOW`` (any symlink found now is refused: someone
swapped a component), creating missing directories with the volume root's mode (the
kubelet's doSafeMakeDir). With a bind target the verified fd is bind-mounted through
``/proc/self/fd/N`` so a container racing to swap a component cannot redirect the mount.

A subPath of a configMap or secret volume thus reaches the file in the current
timestamped directory (``key -> ..data/key``): the bind keeps that file, so a later update
of the volume does not change what the container sees through it, as in Kubernetes.
Blocking; errors are ContainerConfigError (CreateContainerConfigError).
"""

from __future__ import annotations

import os
import stat
from typing import Mapping

from podling.agent.kuberuntime.env import expand
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.api.views import VolumeMountView
from podling.util.mounts import MS_BIND, is_mountpoint, mount, unmount

MAX_SYMLINKS = 40


def subpath_of(vm: VolumeMountView, env: Mapping[str, str]) -> str:
    sub, expr = vm.sub_path, vm.sub_path_expr
    if expr:
        missing: set[str] = set()

        def lookup(key: str) -> str:
            value = env.get(key, "")
            if not value:
                missing.add(key)
            return value
        sub = expand(expr, lookup)
        if missing:
            raise ContainerConfigError(f"missing value for {', '.join(sorted(missing))}")
    if sub and os.path.isabs(sub):
        raise ContainerConfigError(f"error SubPath `{sub}` must not be an absolute path")
    if sub and ".." in sub.split("/"):
        raise ContainerConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    return sub


def safe_subpath(volume: str, sub: str, *, vm_name: str, container: str,
                 bind_target: str | None) -> str:
    """Resolve ``sub`` inside ``volume``, then open it component by component without
    following symlinks, creating missing directories with the volume root's mode; return
    the path to mount (the bind target when given, else the verified path). Raises
    ContainerConfigError."""
    fail = f"failed to prepare subPath for volumeMount {vm_name!r} of container {container!r}"
    try:
        fd = os.open(volume, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerConfigError(f"{fail}: {e.strerror}") from e
    try:
        parts = _resolve(fd, sub.split("/"), fail)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        for i, part in enumerate(parts):
            parent, fd = fd, _open_component(fd, part, last=i == len(parts) - 1, mode=mode,
                                             fail=fail)
            os.close(parent)  # fd is already the child: the finally never re-closes parent
        if bind_target is None:
            return os.path.join(volume, *parts)
        _bind_fd(fd, bind_target, fail)
        return bind_target
    finally:
        os.close(fd)


def _resolve(root_fd: int, parts: list[str], fail: str) -> list[str]:
    """``parts`` with ``..`` and symlinks resolved below ``root_fd``; a component that
    does not exist (yet) is kept as written. Refuses to leave the root."""
    resolved: list[str] = []
    pending = list(parts)
    link = ""  # the last symlink followed, for the error
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise ContainerConfigError(
                    f"{fail}: subPath component {link!r} is a symlink out of the volume")
            resolved.pop()
            continue
        here = "/".join([*resolved, part])
        try:
            st = os.stat(here, dir_fd=root_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        except OSError as e:
            raise ContainerConfigError(f"{fail}: {e.strerror}") from e
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        hops, link = hops + 1, part
        target = os.readlink(here, dir_fd=root_fd)
        if hops > MAX_SYMLINKS or target.startswith("/"):
            raise ContainerConfigError(
                f"{fail}: subPath component {part!r} is a symlink out of the volume")
        pending = target.split("/") + pending
    return resolved


def _open_component(dir_fd: int, part: str, *, last: bool, mode: int, fail: str) -> int:
    """Open ``part`` under ``dir_fd`` (creating a missing directory); refuse symlinks."""
    try:
        created = False
        try:
            st = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.mkdir(part, mode, dir_fd=dir_fd)
            created = True
            st = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise ContainerConfigError(f"{fail}: subPath component {part!r} is a symlink")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise ContainerConfigError(f"{fail}: subPath component {part!r} is not a directory")
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDONLY | os.O_DIRECTORY
                                                 if stat.S_ISDIR(st.st_mode) else os.O_PATH)
        fd = os.open(part, flags, dir_fd=dir_fd)
        if created:
            try:
                os.fchmod(fd, mode)  # mkdir honours the umask; the kubelet chmods too
            except BaseException:
                os.close(fd)
                raise
        return fd
    except OSError as e:
        raise ContainerConfigError(f"{fail}: {e.strerror}") from e


def _bind_fd(fd: int, target: str, fail: str) -> None:
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
    for _ in range(16):  # a previous attempt's bind (possibly stacked): take it down
        if not is_mountpoint(target):
            break
        unmount(target)
    if not os.path.lexists(target):
        if is_dir:
            os.mkdir(target, 0o750)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o640))
    try:
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    except OSError as e:
        raise ContainerConfigError(f"{fail}: {e.strerror}") from e
