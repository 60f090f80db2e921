"""util.mounts: the mountinfo parser (pure) and idempotent unmounting (root only)."""

from __future__ import annotations

import os

import pytest

from podling.util import mounts

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:5 / /mnt/a\\040b rw - tmpfs tmpfs rw,size=1024k
31 30 0:6 / /mnt/a\\040b/c rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
32 30 0:7 / /mnt/a\\040b rw - tmpfs tmpfs rw
garbage line without separator
"""


@pytest.fixture
def mountinfo(tmp_path) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


def test_mount_table_unescapes_and_skips_garbage(mountinfo: str) -> None:
    table = mounts.mount_table(mountinfo)
    assert [mp for mp, _, _ in table] == ["/", "/mnt/a b", "/mnt/a b/c", "/mnt/a b"]
    assert table[2] == ("/mnt/a b/c", "overlay", "rw,lowerdir=/l,upperdir=/u,workdir=/w")


def test_mounts_under_is_deepest_first_once_per_mount(mountinfo: str) -> None:
    assert mounts.mounts_under("/mnt/a b", mountinfo) == ["/mnt/a b/c", "/mnt/a b", "/mnt/a b"]
    assert mounts.mounts_under("/mnt/a", mountinfo) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("lazy", [True, False])
def test_unmount_is_idempotent(tmp_path, lazy: bool) -> None:
    target = str(tmp_path / "m")
    os.mkdir(target)
    mounts.unmount(target, lazy=lazy)  # not mounted: success
    mounts.unmount(str(tmp_path / "missing"), lazy=lazy)
    mounts.mount("tmpfs", target, "tmpfs", mounts.MS_NOSUID, "size=1m")
    assert mounts.is_mountpoint(target)
    mounts.unmount(target, lazy=lazy)
    assert not mounts.is_mountpoint(target)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_mount_error_names_the_target(tmp_path) -> None:
    with pytest.raises(OSError, match="mount none on .*missing"):
        mounts.mount("none", str(tmp_path / "missing"), "tmpfs")
