"""Volumes: emptyDir (disk, tmpfs), hostPath type checks, volumeMounts with safe subPaths.

Needs root for tmpfs and bind mounts; every test checks that no mount is left behind.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any, Iterator

import pytest

from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.volumes import (VolumeError, cleanup_volumes, prepare_volumes,
                                               volume_mounts)
from podling.api.views import PodView
from podling.runtime.interface import Mount, MountPropagation
from podling.util.mounts import is_mountpoint, mounts_under

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)")


@pytest.fixture
def pod_dir(tmp_path) -> Iterator[str]:
    path = str(tmp_path / "pods" / "u1")
    os.makedirs(path)
    yield path
    leftovers = mounts_under(str(tmp_path))
    if leftovers:
        cleanup_volumes(path)
    assert leftovers == [], "test left mounts behind"


def make_pod(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]] | None = None
             ) -> PodView:
    return PodView.from_obj({"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
                             "spec": {"volumes": volumes,
                                      "containers": [{"name": "c",
                                                      "volumeMounts": mounts or []}]}})


# -- emptyDir -------------------------------------------------------------------------------

def test_empty_dir_disk(pod_dir) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}, {"name": "nosrc"}])
    prepared = prepare_volumes(pod, pod_dir)
    path = os.path.join(pod_dir, "volumes", "empty-dir", "data")
    assert prepared == {"data": path,
                        "nosrc": os.path.join(pod_dir, "volumes", "empty-dir", "nosrc")}
    assert os.path.isdir(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o777
    assert not os.path.ismount(path)
    with open(os.path.join(path, "f"), "w") as f:
        f.write("x")
    assert prepare_volumes(pod, pod_dir) == prepared          # idempotent, content kept
    assert os.path.exists(os.path.join(path, "f"))
    cleanup_volumes(pod_dir)
    assert not os.path.exists(os.path.join(pod_dir, "volumes"))
    cleanup_volumes(pod_dir)                                   # idempotent


@root_only
def test_empty_dir_memory_with_size(pod_dir) -> None:
    pod = make_pod([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                    {"name": "mem2", "emptyDir": {"medium": "Memory"}}])
    prepared = prepare_volumes(pod, pod_dir)
    path = prepared["mem"]
    assert os.path.ismount(path) and os.path.ismount(prepared["mem2"])
    st = os.statvfs(path)
    assert st.f_blocks * st.f_frsize == 8 * 1024 * 1024
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777
    with open("/proc/self/mountinfo") as f:
        line = next(ln for ln in f if ln.split()[4] == os.path.realpath(path))
    assert " - tmpfs " in line
    prepare_volumes(pod, pod_dir)                              # no second mount stacked
    assert mounts_under(pod_dir).count(os.path.realpath(path)) == 1
    cleanup_volumes(pod_dir)
    assert mounts_under(pod_dir) == []
    assert not os.path.exists(path)


def test_unsupported_volume_types(pod_dir) -> None:
    for vol in ({"name": "p", "persistentVolumeClaim": {"claimName": "x"}},
                {"name": "n", "nfs": {"server": "x", "path": "/"}}):
        with pytest.raises(VolumeError, match="not supported by podling yet") as e:
            prepare_volumes(make_pod([vol]), pod_dir)
        assert e.value.reason == "FailedMount"
    for vol in ({"name": "s", "secret": {"secretName": "x"}},  # files come from volume_sources
                {"name": "j", "projected": {"sources": []}}):
        with pytest.raises(VolumeError, match="were not computed"):
            prepare_volumes(make_pod([vol]), pod_dir)


# -- hostPath -------------------------------------------------------------------------------

@pytest.fixture
def host(tmp_path) -> dict[str, str]:
    base = tmp_path / "host"
    base.mkdir()
    (base / "dir").mkdir()
    (base / "file").write_text("x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(base / "sock"))
    sock.close()
    return {"dir": str(base / "dir"), "file": str(base / "file"), "sock": str(base / "sock"),
            "missing": str(base / "missing"), "base": str(base),
            "char": "/dev/null"}


GOOD = [("Directory", "dir"), ("DirectoryOrCreate", "dir"), ("File", "file"),
        ("FileOrCreate", "file"), ("Socket", "sock"), ("CharDevice", "char"),
        ("", "dir"), ("", "file"), ("", "sock")]
BAD = [("Directory", "file", "is not a directory"),
       ("Directory", "missing", "is not a directory"),
       ("DirectoryOrCreate", "file", "is not a directory"),
       ("File", "dir", "is not a file"), ("File", "missing", "is not a file"),
       ("FileOrCreate", "dir", "is not a file"),
       ("Socket", "file", "is not a socket file"),
       ("CharDevice", "file", "is not a character device"),
       ("BlockDevice", "char", "is not a block device"),
       ("BlockDevice", "missing", "is not a block device")]


@pytest.mark.parametrize("kind,what", GOOD)
def test_host_path_ok(pod_dir, host, kind, what) -> None:
    pod = make_pod([{"name": "h", "hostPath": {"path": host[what], "type": kind}}])
    assert prepare_volumes(pod, pod_dir) == {"h": host[what]}


@pytest.mark.parametrize("kind,what,problem", BAD)
def test_host_path_type_check_fails(pod_dir, host, kind, what, problem) -> None:
    pod = make_pod([{"name": "h", "hostPath": {"path": host[what], "type": kind}}])
    with pytest.raises(VolumeError) as e:
        prepare_volumes(pod, pod_dir)
    assert e.value.reason == "FailedMount"
    assert e.value.message == (f'MountVolume.SetUp failed for volume "h" : '
                               f"hostPath type check failed: {host[what]} {problem}")


def test_host_path_invalid_type(pod_dir, host) -> None:
    pod = make_pod([{"name": "h", "hostPath": {"path": host["dir"], "type": "Bogus"}}])
    with pytest.raises(VolumeError, match="Bogus is an invalid volume type"):
        prepare_volumes(pod, pod_dir)


def test_host_path_or_create(pod_dir, host) -> None:
    new_dir = os.path.join(host["base"], "a", "b")
    new_file = os.path.join(host["base"], "newfile")
    pod = make_pod([{"name": "d", "hostPath": {"path": new_dir, "type": "DirectoryOrCreate"}},
                    {"name": "f", "hostPath": {"path": new_file, "type": "FileOrCreate"}}])
    old = os.umask(0o077)
    try:
        prepare_volumes(pod, pod_dir)
    finally:
        os.umask(old)
    assert os.path.isdir(new_dir) and stat.S_IMODE(os.stat(new_dir).st_mode) == 0o755
    assert os.path.isfile(new_file) and stat.S_IMODE(os.stat(new_file).st_mode) == 0o644
    assert os.path.getsize(new_file) == 0
    # FileOrCreate does not create parent directories (as in Kubernetes)
    orphan = os.path.join(host["base"], "nodir", "f")
    with pytest.raises(VolumeError, match="No such file or directory"):
        prepare_volumes(make_pod([{"name": "f", "hostPath": {"path": orphan,
                                                              "type": "FileOrCreate"}}]),
                        pod_dir)


def test_host_path_untyped_missing_is_created(pod_dir, host) -> None:
    pod = make_pod([{"name": "h", "hostPath": {"path": host["missing"]}}])
    prepare_volumes(pod, pod_dir)
    assert os.path.isdir(host["missing"])


# -- volumeMounts ---------------------------------------------------------------------------

def test_volume_mounts_plain(pod_dir, host) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}},
                    {"name": "h", "hostPath": {"path": host["dir"]}}],
                   [{"name": "data", "mountPath": "/data"},
                    {"name": "h", "mountPath": "/h", "readOnly": True,
                     "mountPropagation": "HostToContainer"}])
    prepared = prepare_volumes(pod, pod_dir)
    assert volume_mounts(pod, pod.spec.containers[0], prepared, env={}) == [
        Mount(prepared["data"], "/data"),
        Mount(host["dir"], "/h", readonly=True,
              propagation=MountPropagation.HOST_TO_CONTAINER)]
    cleanup_volumes(pod_dir)


def test_volume_mount_unknown_volume(pod_dir) -> None:
    pod = make_pod([], [{"name": "nope", "mountPath": "/x"}])
    with pytest.raises(ContainerConfigError, match="cannot find volume 'nope'"):
        volume_mounts(pod, pod.spec.containers[0], {}, env={})


def _mounts(pod, prepared, env=None, pod_dir=None):
    return volume_mounts(pod, pod.spec.containers[0], prepared, env=env or {},
                         pod_dir=pod_dir)


def test_sub_path_created_without_bind(pod_dir) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}],
                   [{"name": "data", "mountPath": "/x", "subPath": "a/b/./c"}])
    prepared = prepare_volumes(pod, pod_dir)
    old = os.umask(0o077)
    try:
        [m] = _mounts(pod, prepared)
    finally:
        os.umask(old)
    assert m.host_path == os.path.join(prepared["data"], "a", "b", "c")
    assert os.path.isdir(m.host_path)
    assert stat.S_IMODE(os.stat(m.host_path).st_mode) == 0o777   # the volume root's mode
    cleanup_volumes(pod_dir)


def test_sub_path_follows_symlinks_that_stay_inside(pod_dir) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}],
                   [{"name": "data", "mountPath": "/x", "subPath": "key"},
                    {"name": "data", "mountPath": "/y", "subPath": "alias/new"}])
    prepared = prepare_volumes(pod, pod_dir)
    vol = prepared["data"]
    os.makedirs(os.path.join(vol, "..v1", "d"))
    with open(os.path.join(vol, "..v1", "key"), "w"):
        pass
    os.symlink("..v1", os.path.join(vol, "..data"))      # the kubelet's layout
    os.symlink("..data/key", os.path.join(vol, "key"))
    os.symlink("..data/d/../d", os.path.join(vol, "alias"))
    key, new = _mounts(pod, prepared)
    assert key.host_path == os.path.join(vol, "..v1", "key")
    assert new.host_path == os.path.join(vol, "..v1", "d", "new") and os.path.isdir(new.host_path)
    cleanup_volumes(pod_dir)


@root_only
def test_sub_path_bind_mounted(pod_dir) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}],
                   [{"name": "data", "mountPath": "/x", "subPath": "dir/sub"},
                    {"name": "data", "mountPath": "/f", "subPath": "file.txt",
                     "readOnly": True}])
    prepared = prepare_volumes(pod, pod_dir)
    with open(os.path.join(prepared["data"], "file.txt"), "w") as f:
        f.write("hello")
    mounts = _mounts(pod, prepared, pod_dir=pod_dir)
    base = os.path.join(pod_dir, "volume-subpaths", "data", "c")
    assert mounts == [Mount(os.path.join(base, "0"), "/x"),
                      Mount(os.path.join(base, "1"), "/f", readonly=True)]
    assert is_mountpoint(os.path.join(base, "0")) and is_mountpoint(os.path.join(base, "1"))
    with open(os.path.join(base, "1")) as f:
        assert f.read() == "hello"
    assert _mounts(pod, prepared, pod_dir=pod_dir) == mounts   # redo: no stacked mounts
    assert len(mounts_under(os.path.join(pod_dir, "volume-subpaths"))) == 2
    cleanup_volumes(pod_dir)
    assert mounts_under(pod_dir) == []
    assert not os.path.exists(os.path.join(pod_dir, "volume-subpaths"))


@root_only
def test_cleanup_never_deletes_through_a_sub_path_bind(pod_dir, host) -> None:
    with open(os.path.join(host["dir"], "keep"), "w") as f:
        f.write("precious")
    pod = make_pod([{"name": "h", "hostPath": {"path": host["base"]}}],
                   [{"name": "h", "mountPath": "/x", "subPath": "dir"}])
    prepared = prepare_volumes(pod, pod_dir)
    _mounts(pod, prepared, pod_dir=pod_dir)
    cleanup_volumes(pod_dir)
    with open(os.path.join(host["dir"], "keep")) as f:
        assert f.read() == "precious"


@pytest.mark.parametrize("sub,word", [
    ("../etc", "must not contain '..'"),
    ("a/../../x", "must not contain '..'"),
    ("/etc", "must not be an absolute path"),
    ("link/x", "is a symlink"),
    ("link", "is a symlink"),
    ("inner/link", "is a symlink"),
    ("relink/link", "is a symlink"),
    ("file/x", "is not a directory"),
])
def test_sub_path_escapes_refused(pod_dir, tmp_path, sub, word) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}],
                   [{"name": "data", "mountPath": "/x", "subPath": sub}])
    prepared = prepare_volumes(pod, pod_dir)
    vol = prepared["data"]
    os.symlink("/etc", os.path.join(vol, "link"))
    os.mkdir(os.path.join(vol, "inner"))
    os.symlink("../../../../..", os.path.join(vol, "inner", "link"))
    os.symlink("inner", os.path.join(vol, "relink"))   # inside, but inner/link climbs out
    with open(os.path.join(vol, "file"), "w"):
        pass
    for bind_dir in (None, pod_dir):
        with pytest.raises(ContainerConfigError) as e:
            _mounts(pod, prepared, pod_dir=bind_dir)
        assert word in e.value.message
        assert e.value.reason == "CreateContainerConfigError"
    assert not os.path.exists("/etc/x")
    cleanup_volumes(pod_dir)


@pytest.mark.parametrize("expr,env,expected", [
    ("$(POD)/logs", {"POD": "web"}, "web/logs"),
    ("$(NS)-$(POD)", {"POD": "web", "NS": "ns"}, "ns-web"),
    ("fixed$$x", {}, "fixed$x"),
])
def test_sub_path_expr(pod_dir, expr, env, expected) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}],
                   [{"name": "data", "mountPath": "/x", "subPathExpr": expr}])
    prepared = prepare_volumes(pod, pod_dir)
    [m] = _mounts(pod, prepared, env=env)
    assert m.host_path == os.path.join(prepared["data"], expected)
    assert os.path.isdir(m.host_path)
    cleanup_volumes(pod_dir)


@pytest.mark.parametrize("expr,env,word", [
    ("$(MISSING)/x", {}, "missing value for MISSING"),
    ("$(EMPTY)$(B)", {"EMPTY": ""}, "missing value for B, EMPTY"),
    ("$(UP)/x", {"UP": ".."}, "must not contain '..'"),
    ("$(ABS)", {"ABS": "/etc"}, "must not be an absolute path"),
])
def test_sub_path_expr_errors(pod_dir, expr, env, word) -> None:
    pod = make_pod([{"name": "data", "emptyDir": {}}],
                   [{"name": "data", "mountPath": "/x", "subPathExpr": expr}])
    prepared = prepare_volumes(pod, pod_dir)
    with pytest.raises(ContainerConfigError, match=word.replace("(", r"\(")):
        _mounts(pod, prepared, env=env)
    cleanup_volumes(pod_dir)
