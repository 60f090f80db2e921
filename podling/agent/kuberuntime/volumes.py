"""Pod volumes on the node: emptyDir (disk and ``medium: Memory``), hostPath, and the
volumeMounts of a container (readOnly, subPath, subPathExpr).

Layout under the pod directory (kubelet-like)::

    <pod_dir>/volumes/empty-dir/<volume>                 emptyDir (a tmpfs for Memory)
    <pod_dir>/volume-subpaths/<volume>/<container>/<i>   bind mount of a verified subPath

Lifecycle: :func:`prepare_volumes` (idempotent, before the first container of the pod and
again on every sync that starts something) → :func:`volume_mounts` per container start →
:func:`cleanup_volumes` once every container of the pod is gone. All of it is blocking
(syscalls, ``mount``): run it in a thread from async code. Requires root for tmpfs and
subPath bind mounts.

subPath safety: the path is opened one component at a time relative to a directory fd with
``O_NOFOLLOW``; any symlink component, ``..`` or absolute path is refused, missing
directories are created (like the kubelet's doSafeMakeDir). With a ``pod_dir`` the verified
fd is bind-mounted through ``/proc/self/fd/N`` (as the kubelet does) so a container racing
to swap a component for a symlink cannot redirect the mount.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Mapping

from podling.agent.kuberuntime.env import expand
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.api.quantity import QuantityError, parse_quantity
from podling.api.views import ContainerView, EmptyDirView, HostPathView, PodView, VolumeMountView
from podling.runtime.interface import Mount, MountPropagation
from podling.util.mounts import (MS_BIND, MS_NODEV, MS_NOSUID, is_mountpoint, mount, mounts_under,
                                 unmount)

FAILED_MOUNT = "FailedMount"

_PROPAGATION = {None: MountPropagation.PRIVATE, "None": MountPropagation.PRIVATE,
                "HostToContainer": MountPropagation.HOST_TO_CONTAINER,
                "Bidirectional": MountPropagation.BIDIRECTIONAL}


class VolumeError(Exception):
    """A volume cannot be set up; ``reason`` is the event reason (FailedMount)."""

    def __init__(self, message: str, reason: str = FAILED_MOUNT) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- prepare ----------------------------------------------------------------------------------


def empty_dir_path(pod_dir: str, name: str) -> str:
    return os.path.join(pod_dir, "volumes", "empty-dir", name)


def prepare_volumes(pod: PodView, pod_dir: str) -> dict[str, str]:
    """Set up every volume of the pod; returns ``{volume name: host path}``. Idempotent (a
    Memory emptyDir already mounted stays). Raises :class:`VolumeError` (FailedMount)."""
    prepared: dict[str, str] = {}
    for vol in pod.spec.volumes:
        name, sources = vol.name, vol.sources
        if vol.host_path is not None:
            prepared[name] = prepare_host_path(name, vol.host_path)
        elif "emptyDir" in sources or not sources:  # no source: the API's emptyDir default
            prepared[name] = prepare_empty_dir(pod_dir, name, vol.empty_dir or EmptyDirView())
        else:
            raise VolumeError(
                f"volume {name!r}: {sources[0]} volumes are not supported by podling yet")
    return prepared


def prepare_empty_dir(pod_dir: str, name: str, spec: EmptyDirView) -> str:
    """A 0777 directory; with ``medium: Memory`` a tmpfs (``size=`` from sizeLimit) on it."""
    path = empty_dir_path(pod_dir, name)
    os.makedirs(path, exist_ok=True)
    medium = spec.medium
    if medium == "Memory" and not is_mountpoint(path):
        options = None
        if spec.size_limit is not None:
            try:
                size = int(parse_quantity(spec.size_limit))
            except QuantityError as e:
                raise VolumeError(f"volume {name!r}: invalid sizeLimit: {e}") from e
            options = f"size={size}"
        try:
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
        except OSError as e:
            raise VolumeError(f"MountVolume.SetUp failed for volume {name!r} : {e}") from e
    elif medium not in ("", "Memory"):
        raise VolumeError(f"volume {name!r}: emptyDir medium {medium!r} is not supported")
    os.chmod(path, 0o777)
    return path


def prepare_host_path(name: str, spec: HostPathView) -> str:
    """The kubelet's hostPath type checks; DirectoryOrCreate makes the directory (0755, with
    parents), FileOrCreate an empty 0644 file (its parent must exist, as in Kubernetes).
    With no type and a missing path, a directory is created (containerd does the same)."""
    path, kind = spec.path, spec.type
    try:
        problem = check_host_path(path, kind)
    except OSError as e:
        problem = str(e)
    if problem:
        raise VolumeError(f"MountVolume.SetUp failed for volume \"{name}\" : {problem}")
    return path


def check_host_path(path: str, kind: str) -> str | None:
    """None when ``path`` satisfies hostPath ``type`` (creating it for the *OrCreate types),
    else the kubelet's error text."""
    exists = os.path.lexists(path)
    if kind == "DirectoryOrCreate" and not exists:
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, 0o755)
        return None
    if kind == "FileOrCreate" and not exists:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        return None
    if kind == "" and not exists:
        os.makedirs(path, mode=0o755, exist_ok=True)
        return None
    if kind == "":
        return None
    checks = {"DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
              "Directory": (stat.S_ISDIR, "a directory"),
              "FileOrCreate": (stat.S_ISREG, "a file"), "File": (stat.S_ISREG, "a file"),
              "Socket": (stat.S_ISSOCK, "a socket file"),
              "CharDevice": (stat.S_ISCHR, "a character device"),
              "BlockDevice": (stat.S_ISBLK, "a block device")}
    if kind not in checks:
        return f"{kind} is an invalid volume type"
    test, what = checks[kind]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    return None if test(mode) else f"hostPath type check failed: {path} is not {what}"


# -- volumeMounts -----------------------------------------------------------------------------


def volume_mounts(pod: PodView, container: ContainerView,
                  prepared: Mapping[str, str], *, env: Mapping[str, str],
                  pod_dir: str | None = None) -> list[Mount]:
    """The container's volumeMounts as runtime mounts, in spec order.

    ``env`` is the container's env (for subPathExpr). With ``pod_dir`` each subPath is
    bind-mounted at ``<pod_dir>/volume-subpaths/<vol>/<container>/<index>`` (re-done on each
    call) and that path is the mount source. Raises ContainerConfigError
    (CreateContainerConfigError) for subPath problems and unknown volumes.
    """
    result = []
    cname = container.name
    for index, vm in enumerate(container.volume_mounts):
        name = vm.name
        if name not in prepared:
            raise ContainerConfigError(
                f"cannot find volume {name!r} to mount into container {cname!r}")
        source = prepared[name]
        sub = _subpath_of(vm, env)
        if sub:
            source = safe_subpath(source, sub, vm_name=name, container=cname,
                                  bind_target=(os.path.join(pod_dir, "volume-subpaths", name,
                                                            cname, str(index))
                                               if pod_dir else None))
        result.append(Mount(host_path=source, container_path=vm.mount_path,
                            readonly=vm.read_only,
                            propagation=_PROPAGATION.get(vm.mount_propagation,
                                                         MountPropagation.PRIVATE)))
    return result


def _subpath_of(vm: VolumeMountView, env: Mapping[str, str]) -> str:
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
    """Open ``volume/sub`` component by component without following symlinks, creating
    missing directories with the volume root's mode; return the path to mount (the bind
    target when given, else the verified path). Raises ContainerConfigError."""
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    fail = f"failed to prepare subPath for volumeMount {vm_name!r} of container {container!r}"
    try:
        fd = os.open(volume, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerConfigError(f"{fail}: {e.strerror}") from e
    try:
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


# -- cleanup ----------------------------------------------------------------------------------


def cleanup_volumes(pod_dir: str) -> None:
    """Unmount everything under ``<pod_dir>/volumes`` and ``<pod_dir>/volume-subpaths`` and
    remove both trees. Idempotent. Nothing is deleted while a mount remains (raises
    VolumeError), so a hostPath reached through a subPath bind is never touched."""
    roots = [os.path.join(pod_dir, "volume-subpaths"), os.path.join(pod_dir, "volumes")]
    for root in roots:
        if not os.path.exists(root):
            continue
        for point in mounts_under(root):
            try:
                unmount(point)
            except OSError as e:
                raise VolumeError(f"cleanup of {pod_dir}: {e}") from e
        if mounts_under(root):
            raise VolumeError(f"cleanup of {pod_dir}: mounts remain under {root}")
    subpaths, volumes = roots
    _remove_stubs(subpaths)
    if os.path.exists(volumes):
        shutil.rmtree(volumes)


def _remove_stubs(root: str) -> None:
    """Remove the (empty) bind-mount targets bottom-up; never recursive into content."""
    if not os.path.exists(root):
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            path = os.path.join(dirpath, f)
            if os.lstat(path).st_size == 0 or os.path.islink(path):
                os.unlink(path)
        for d in dirnames:
            path = os.path.join(dirpath, d)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
    os.rmdir(root)
