"""Pod volumes on the node: emptyDir (disk and ``medium: Memory``), hostPath, the projected
kinds (configMap, secret, downwardAPI, projected), and the volumeMounts of a container
(readOnly, subPath, subPathExpr: :mod:`.subpath`).

Layout under the pod directory (kubelet-like)::

    <pod_dir>/volumes/empty-dir/<volume>                 emptyDir (a tmpfs for Memory)
    <pod_dir>/volumes/configmap/<volume>                 files of a configMap volume,
    <pod_dir>/volumes/downward-api/<volume>              written by .atomic_writer
    <pod_dir>/volumes/secret/<volume>                    the same on a tmpfs (the kubelet
    <pod_dir>/volumes/projected/<volume>                 keeps secrets and tokens in memory)
    <pod_dir>/volume-subpaths/<volume>/<container>/<i>   bind mount of a verified subPath

Lifecycle: :func:`prepare_volumes` (idempotent, before the first container of the pod and
again on every sync that starts something) → :func:`volume_mounts` per container start →
:func:`update_projections` on the syncs of a running pod (files rewritten in place when
their payload changed) → :func:`cleanup_volumes` once every container of the pod is gone.
The payloads of the projected kinds are computed beforehand (:mod:`.volume_sources`, which
reads ConfigMaps, Secrets and tokens). All of it is blocking (syscalls, ``mount``): run it
in a thread from async code. Requires root for tmpfs and subPath bind mounts.

Containers mount the projected kinds read-only whatever the volumeMount says, as the
kubelet does.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Mapping

from podling.agent.kuberuntime.atomic_writer import FileProjection, PayloadError, write_payload
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.subpath import safe_subpath as safe_subpath  # re-exported
from podling.agent.kuberuntime.subpath import subpath_of
from podling.api.quantity import QuantityError, parse_quantity
from podling.api.views import ContainerView, EmptyDirView, HostPathView, PodView, VolumeView
from podling.runtime.interface import Mount, MountPropagation
from podling.util.mounts import MS_NODEV, MS_NOSUID, is_mountpoint, mount, mounts_under, unmount

FAILED_MOUNT = "FailedMount"
#: the projected kinds and the directory under ``volumes/`` of each
PROJECTED_DIRS = {"configMap": "configmap", "secret": "secret", "downwardAPI": "downward-api",
                  "projected": "projected"}
MEMORY_BACKED = ("secret", "projected")
Payload = Mapping[str, FileProjection]

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


def projected_kind(vol: VolumeView) -> str | None:
    """The volume's source if it is one of the projected kinds, else None."""
    return next((s for s in vol.sources if s in PROJECTED_DIRS), None)


def projection_path(pod_dir: str, kind: str, name: str) -> str:
    return os.path.join(pod_dir, "volumes", PROJECTED_DIRS[kind], name)


def prepare_volumes(pod: PodView, pod_dir: str,
                    payloads: Mapping[str, Payload] | None = None) -> dict[str, str]:
    """Set up every volume of the pod; returns ``{volume name: host path}``. ``payloads``
    holds the files of each projected-kind volume (by volume name). Idempotent (a tmpfs
    already mounted stays; unchanged files are not rewritten). Raises
    :class:`VolumeError` (FailedMount)."""
    prepared: dict[str, str] = {}
    for vol in pod.spec.volumes:
        name, sources, kind = vol.name, vol.sources, projected_kind(vol)
        if vol.host_path is not None:
            prepared[name] = prepare_host_path(name, vol.host_path)
        elif "emptyDir" in sources or not sources:  # no source: the API's emptyDir default
            prepared[name] = prepare_empty_dir(pod_dir, name, vol.empty_dir or EmptyDirView(),
                                               fs_group=pod.spec.security_context.fs_group)
        elif kind is not None:
            if payloads is None or name not in payloads:
                raise VolumeError(f"volume {name!r}: its files were not computed "
                                  "(volume_sources.payloads)")
            prepared[name] = write_projection(pod, pod_dir, vol, payloads[name])
        else:
            raise VolumeError(
                f"volume {name!r}: {sources[0]} volumes are not supported by podling yet")
    return prepared


def write_projection(pod: PodView, pod_dir: str, vol: VolumeView, payload: Payload) -> str:
    """Make the volume's directory (a tmpfs for secret and projected) hold ``payload``;
    returns its path. Raises VolumeError."""
    kind = projected_kind(vol)
    assert kind is not None
    path = projection_path(pod_dir, kind, vol.name)
    fail = f'MountVolume.SetUp failed for volume "{vol.name}" : '
    try:
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o750, exist_ok=True)
            os.chmod(path, 0o777)
        if kind in MEMORY_BACKED and not is_mountpoint(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        write_payload(path, payload, fs_group=pod.spec.security_context.fs_group)
    except (OSError, PayloadError) as e:
        raise VolumeError(fail + str(e)) from e
    return path


def update_projections(pod: PodView, pod_dir: str, payloads: Mapping[str, Payload]) -> None:
    """Rewrite the projected-kind volumes of a running pod whose directory exists (files
    change in place; subPath binds keep the old file). Raises VolumeError."""
    for vol in pod.spec.volumes:
        kind = projected_kind(vol)
        if kind is not None and vol.name in payloads and \
                os.path.isdir(projection_path(pod_dir, kind, vol.name)):
            write_projection(pod, pod_dir, vol, payloads[vol.name])


def prepare_empty_dir(pod_dir: str, name: str, spec: EmptyDirView,
                      fs_group: int | None = None) -> str:
    """A 0777 directory; with ``medium: Memory`` a tmpfs (``size=`` from sizeLimit) on it.
    With the pod's ``fs_group``, the kubelet's volume ownership: the directory belongs to
    that group and is setgid (2777), so what containers create in it does too. (It is new
    and empty when the pod starts, so ``fsGroupChangePolicy`` Always and OnRootMismatch do
    the same to it.)"""
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
    if fs_group is not None:
        os.chown(path, -1, fs_group)
    os.chmod(path, 0o2777 if fs_group is not None else 0o777)
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
    read_only = {v.name for v in pod.spec.volumes if projected_kind(v) is not None}
    for index, vm in enumerate(container.volume_mounts):
        name = vm.name
        if name not in prepared:
            raise ContainerConfigError(
                f"cannot find volume {name!r} to mount into container {cname!r}")
        source = prepared[name]
        sub = subpath_of(vm, env)
        if sub:
            source = safe_subpath(source, sub, vm_name=name, container=cname,
                                  bind_target=(os.path.join(pod_dir, "volume-subpaths", name,
                                                            cname, str(index))
                                               if pod_dir else None))
        result.append(Mount(host_path=source, container_path=vm.mount_path,
                            readonly=vm.read_only or name in read_only,
                            propagation=_PROPAGATION.get(vm.mount_propagation,
                                                         MountPropagation.PRIVATE)))
    return result



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
