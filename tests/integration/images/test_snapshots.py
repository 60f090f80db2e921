"""Snapshotter: real overlayfs mounts (root only)."""

from __future__ import annotations

import os
import stat

import pytest

from podling.images.snapshots import MAX_MOUNT_DATA, SnapshotError, Snapshotter
from podling.util import mounts
from podling.util.mounts import mount_table, mounts_under


def _overlay_supported() -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == "overlay" for line in f if line.strip())


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not _overlay_supported(),
                                reason="needs root and overlayfs")


def overlay_mounts() -> set[str]:
    return {mp for mp, fstype, _ in mount_table() if fstype == "overlay"}


@pytest.fixture
def layers(tmp_path):
    """Two layers: base has a, gone, dir/x; top has b, a whiteout for gone, opaque dir/."""
    base, top = tmp_path / "base", tmp_path / "top"
    (base / "dir").mkdir(parents=True)
    (base / "a").write_text("base-a")
    (base / "gone").write_text("hidden by a whiteout")
    (base / "dir" / "x").write_text("hidden by opaque dir")
    (top / "dir").mkdir(parents=True)
    (top / "b").write_text("top-b")
    (top / "dir" / "y").write_text("top-y")
    os.mknod(top / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.setxattr(top / "dir", "trusted.overlay.opaque", b"y")
    return [str(base), str(top)]


@pytest.fixture
def snaps(tmp_path):
    before = overlay_mounts()
    s = Snapshotter(str(tmp_path / "snaps"))
    yield s
    for key in s.list():
        s.remove(key)
    assert overlay_mounts() == before


def test_mount_layers_write_whiteout_remove(tmp_path, snaps, layers):
    before = set(mount_table())
    rootfs = snaps.prepare("c1", layers)
    assert rootfs == os.path.join(snaps.root, "c1", "rootfs")
    assert snaps.is_mounted("c1") and mounts_under(snaps.root) == [rootfs]
    assert sorted(os.listdir(rootfs)) == ["a", "b", "dir"]  # whiteout hides "gone"
    assert os.listdir(os.path.join(rootfs, "dir")) == ["y"]  # opaque dir hides x
    with open(os.path.join(rootfs, "a"), "a") as f:
        f.write("+c1")
    os.unlink(os.path.join(rootfs, "b"))
    upper = os.path.join(snaps.root, "c1", "upper")
    assert open(os.path.join(upper, "a")).read() == "base-a+c1"
    assert open(os.path.join(layers[0], "a")).read() == "base-a"  # lower untouched
    assert os.path.exists(os.path.join(layers[1], "b"))
    st = os.lstat(os.path.join(upper, "b"))  # deletion became a whiteout in upper
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)

    snaps.remove("c1")
    assert not os.path.exists(os.path.join(snaps.root, "c1"))
    assert set(mount_table()) == before and mounts_under(str(tmp_path)) == []
    snaps.remove("c1")  # idempotent


def test_layer_order_top_wins(snaps, tmp_path):
    lo, hi = tmp_path / "lo", tmp_path / "hi"
    lo.mkdir(), hi.mkdir()
    (lo / "f").write_text("lo")
    (hi / "f").write_text("hi")
    rootfs = snaps.prepare("order", [str(lo), str(hi)])
    assert open(os.path.join(rootfs, "f")).read() == "hi"


def test_prepare_is_idempotent_and_remounts(snaps, layers):
    rootfs = snaps.prepare("c2", layers)
    open(os.path.join(rootfs, "new"), "w").write("kept")
    assert snaps.prepare("c2", layers) == rootfs
    assert mounts_under(rootfs) == [rootfs]  # not mounted twice
    with pytest.raises(SnapshotError, match="other layers"):
        snaps.prepare("c2", layers[:1])
    _umount(rootfs)  # as after a reboot: directories stay, mount gone
    assert not snaps.is_mounted("c2")
    assert snaps.prepare("c2", layers) == rootfs  # remount keeps the upper layer
    assert open(os.path.join(rootfs, "new")).read() == "kept"


def _umount(path: str) -> None:
    mounts.unmount(path, lazy=False)


def test_no_layers_and_single_layer(snaps, layers):
    empty = snaps.prepare("scratch", [])
    assert os.listdir(empty) == []
    open(os.path.join(empty, "f"), "w").write("x")
    one = snaps.prepare("one", layers[:1])
    assert sorted(os.listdir(one)) == ["a", "dir", "gone"]
    assert snaps.list() == ["one", "scratch"]


def test_remove_unmounts_submounts_and_busy(snaps, layers, tmp_path):
    rootfs = snaps.prepare("c3", layers)
    sub = os.path.join(rootfs, "dir")
    mounts.mount("tmpfs", sub, "tmpfs", 0, "size=1m")
    fd = os.open(os.path.join(sub, "held-open"), os.O_CREAT | os.O_WRONLY)  # keeps it busy
    try:
        snaps.remove("c3")
    finally:
        os.close(fd)
    assert mounts_under(str(tmp_path)) == []
    assert os.listdir(layers[1])  # never deleted through the mount
    assert not os.path.exists(os.path.join(snaps.root, "c3"))


@pytest.mark.parametrize("bad", ["/tmp/a,b", "/tmp/a:b", "/tmp/a\\b", "relative/dir"])
def test_paths_overlay_cannot_express_are_rejected(snaps, bad):
    with pytest.raises(SnapshotError):
        snaps.prepare("bad", [bad])
    assert not os.path.exists(os.path.join(snaps.root, "bad"))


@pytest.mark.parametrize("key", ["", "../x", "a/b", ".hidden", "x" * 200])
def test_invalid_keys(snaps, key):
    with pytest.raises(SnapshotError, match="invalid snapshot key"):
        snaps.prepare(key, [])


def test_too_many_layers_is_a_clear_error(snaps, tmp_path):
    lowers = []
    for i in range(60):
        d = tmp_path / f"layer-with-a-rather-long-directory-name-{i:03d}"
        d.mkdir()
        lowers.append(str(d))
    with pytest.raises(SnapshotError, match=str(MAX_MOUNT_DATA)):
        snaps.prepare("many", lowers)


def test_missing_layer_dir(snaps, tmp_path):
    with pytest.raises(SnapshotError, match="does not exist"):
        snaps.prepare("m", [str(tmp_path / "nope")])


def test_mounts_under_parses_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "36 35 98:0 / /mnt/a\\040b rw - ext4 /dev/x rw\n"
        "37 35 98:0 / /mnt/a\\040b/c rw shared:1 - overlay overlay rw,lowerdir=/l\n"
        "38 35 98:0 / /mnt/other rw - ext4 /dev/x rw\n")
    assert mounts_under("/mnt/a b", str(info)) == ["/mnt/a b/c", "/mnt/a b"]
