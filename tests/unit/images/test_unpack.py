"""unpack_layer on well-formed layers: content, metadata, whiteouts, formats, sharing."""

from __future__ import annotations

import os
import stat
import tarfile
import threading

import pytest
from layerkit import GZIP, PLAIN, ZSTD, E, build_tar, sha, write_blob

from podling.images.errors import DigestMismatch, ImageError, UnsafeLayer
from podling.images.tarsafe import OPAQUE_XATTR, force_rmtree
from podling.images.unpack import (DevicePolicy, cleanup_stale_unpacks, layer_path,
                                   unpack_layer)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")

T = 1_600_000_000


@pytest.fixture
def layers(tmp_path) -> str:
    return str(tmp_path / "layers")


def unpack(tmp_path, entries, how=GZIP, **kw):
    tar = build_tar(entries)
    blob = write_blob(str(tmp_path), tar, how)
    kw.setdefault("durable", False)
    return tar, unpack_layer(blob, str(tmp_path / "layers"), media_type=how, **kw)


def tmp_left(layers: str) -> list[str]:
    return os.listdir(os.path.join(layers, "tmp"))


def test_files_dirs_symlinks_hardlinks(tmp_path, layers):
    tar, res = unpack(tmp_path, [
        E("./", "dir", mode=0o755),
        E("./etc/", "dir"),
        E("./etc/hosts", data=b"127.0.0.1 localhost\n"),
        E("bin/busybox", data=b"\x7fELF", mode=0o755),  # parent dir implied
        E("bin/sh", "link", linkname="bin/busybox"),
        E("bin/ls", "sym", linkname="/bin/busybox"),  # absolute: stored as-is
        E("lib", "sym", linkname="usr/lib"),
        E("up", "sym", linkname="../../.."),
    ])
    root = res.path
    assert res.diff_id == sha(tar) and res.size == len(tar)
    assert res.path == layer_path(layers, res.diff_id)
    assert open(os.path.join(root, "etc/hosts"), "rb").read() == b"127.0.0.1 localhost\n"
    assert os.readlink(os.path.join(root, "bin/ls")) == "/bin/busybox"
    assert os.readlink(os.path.join(root, "lib")) == "usr/lib"
    assert os.readlink(os.path.join(root, "up")) == "../../.."
    a, b = os.stat(os.path.join(root, "bin/busybox")), os.stat(os.path.join(root, "bin/sh"))
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert stat.S_IMODE(os.stat(os.path.join(root, "bin")).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    assert tmp_left(layers) == []


def test_modes_ownership_times_kept(tmp_path):
    _, res = unpack(tmp_path, [
        E("d/", "dir", mode=0o2750, uid=7, gid=8, mtime=T + 1),
        E("d/suid", data=b"x", mode=0o4755, uid=1234, gid=5678, mtime=T + 2),
        E("d/sgid", data=b"y", mode=0o2711, uid=1, gid=2, mtime=T + 3),
        E("tmp/", "dir", mode=0o1777, mtime=T + 4),
        E("ro/", "dir", mode=0o555, mtime=T + 5),
        E("ro/file", data=b"z", mode=0o400, mtime=T + 6),  # written into a 0555 dir
        E("d/link", "sym", linkname="suid", uid=42, gid=43, mtime=T + 7),
        E("pipe", "fifo", mode=0o620, uid=3, gid=4, mtime=T + 8),
    ])
    st = lambda p: os.lstat(os.path.join(res.path, p))  # noqa: E731
    s = st("d/suid")
    assert (stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid, s.st_mtime) == (0o4755, 1234, 5678, T + 2)
    assert stat.S_IMODE(st("d/sgid").st_mode) == 0o2711
    d = st("d")
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid, d.st_mtime) == (0o2750, 7, 8, T + 1)
    assert stat.S_IMODE(st("tmp").st_mode) == 0o1777 and st("tmp").st_mtime == T + 4
    assert stat.S_IMODE(st("ro").st_mode) == 0o555 and st("ro").st_mtime == T + 5
    assert st("ro/file").st_mtime == T + 6
    ln = st("d/link")
    assert stat.S_ISLNK(ln.st_mode) and (ln.st_uid, ln.st_gid, ln.st_mtime) == (42, 43, T + 7)
    p = st("pipe")
    assert stat.S_ISFIFO(p.st_mode) and stat.S_IMODE(p.st_mode) == 0o620
    assert (p.st_uid, p.st_gid, p.st_mtime) == (3, 4, T + 8)


def test_xattrs_kept_overlay_xattrs_dropped(tmp_path):
    _, res = unpack(tmp_path, [
        E("f", data=b"x", uid=5, pax={"SCHILY.xattr.user.greeting": "hello",
                                      "SCHILY.xattr.trusted.note": "t",
                                      "SCHILY.xattr.trusted.overlay.opaque": "y"}),
        E("d/", "dir", pax={"SCHILY.xattr.user.dir": "1"}),
    ])
    f = os.path.join(res.path, "f")
    assert os.getxattr(f, "user.greeting") == b"hello"
    assert os.getxattr(f, "trusted.note") == b"t"
    assert "trusted.overlay.opaque" not in os.listxattr(f)
    assert os.getxattr(os.path.join(res.path, "d"), "user.dir") == b"1"


def test_whiteouts_and_opaque_dirs(tmp_path):
    _, res = unpack(tmp_path, [
        E("etc/", "dir"),
        E("etc/.wh.motd"),                 # whiteout of a lower-layer file
        E("var/lib/.wh..wh..opq"),         # opaque dir, parents implied
        E("var/lib/keep", data=b"k"),
        E("opt/.wh.app"),                  # whiteout, then this layer adds opt/app/...
        E("opt/app/new", data=b"n"),
        E("srv/data/", "dir"),
        E("srv/.wh.data"),                 # whiteout of a dir this layer has: opaque
        E("home/f", data=b"f"),
        E("home/.wh.f"),                   # this layer's own file stays
        E(".wh..wh.plnk"),                 # aufs metadata: ignored
        E("gone"),
        E(".wh.gone"),
    ])
    r = res.path
    wh = os.lstat(os.path.join(r, "etc/motd"))
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert not os.path.lexists(os.path.join(r, "etc/.wh.motd"))
    assert os.getxattr(os.path.join(r, "var/lib"), OPAQUE_XATTR) == b"y"
    assert OPAQUE_XATTR not in os.listxattr(os.path.join(r, "var"))
    assert open(os.path.join(r, "var/lib/keep"), "rb").read() == b"k"
    assert os.getxattr(os.path.join(r, "opt/app"), OPAQUE_XATTR) == b"y"
    assert os.getxattr(os.path.join(r, "srv/data"), OPAQUE_XATTR) == b"y"
    assert open(os.path.join(r, "home/f"), "rb").read() == b"f"
    assert not os.path.lexists(os.path.join(r, ".wh..wh.plnk"))
    assert os.path.isfile(os.path.join(r, "gone"))  # same-layer content wins


def test_whiteout_then_directory_entry_becomes_opaque(tmp_path):
    _, res = unpack(tmp_path, [E(".wh.d"), E("d/", "dir", mode=0o700), E("d/x", data=b"x")])
    d = os.path.join(res.path, "d")
    assert os.path.isdir(d) and os.getxattr(d, OPAQUE_XATTR) == b"y"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_overlay_native_whiteout_char_device_kept(tmp_path):
    _, res = unpack(tmp_path, [E("x", "chr", major=0, minor=0)])
    assert os.lstat(os.path.join(res.path, "x")).st_rdev == 0


def test_devices(tmp_path):
    entries = [E("dev/null", "chr", major=1, minor=3, mode=0o666), E("dev/sda", "blk", major=8)]
    _, res = unpack(tmp_path, entries)  # default: skipped
    assert not os.path.lexists(os.path.join(res.path, "dev/null"))
    force_rmtree(res.path)
    _, res = unpack(tmp_path, entries, devices=DevicePolicy.ALLOW)
    n = os.lstat(os.path.join(res.path, "dev/null"))
    assert stat.S_ISCHR(n.st_mode) and n.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(n.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(os.path.join(res.path, "dev/sda")).st_mode)


def test_duplicates_later_entry_wins(tmp_path):
    _, res = unpack(tmp_path, [
        E("a", data=b"old"), E("a", data=b"new"),
        E("d/", "dir"), E("d/child", data=b"c"), E("d", data=b"now a file"),
        E("s", "sym", linkname="/x"), E("s/", "dir"), E("s/in", data=b"i"),
        E("e/", "dir", mode=0o700), E("e/", "dir", mode=0o750),
    ])
    r = res.path
    assert open(os.path.join(r, "a"), "rb").read() == b"new"
    assert open(os.path.join(r, "d"), "rb").read() == b"now a file"
    assert os.path.isdir(os.path.join(r, "s")) and not os.path.islink(os.path.join(r, "s"))
    assert stat.S_IMODE(os.stat(os.path.join(r, "e")).st_mode) == 0o750


@pytest.mark.parametrize("how", [GZIP, ZSTD, PLAIN])
def test_compressions_and_diff_id(tmp_path, how):
    tar, res = unpack(tmp_path, [E("f", data=os.urandom(100_000))], how=how)
    assert res.diff_id == sha(tar)
    # the magic decides: a mislabelled layer still unpacks (docker save labels plain as gzip)
    tar2, res2 = unpack(tmp_path, [E("g", data=b"g")], how=how)
    assert res2.diff_id == sha(tar2)


def test_mislabelled_media_type(tmp_path, layers):
    tar = build_tar([E("f", data=b"x")])
    blob = write_blob(str(tmp_path), tar, ZSTD)
    res = unpack_layer(blob, layers, media_type=GZIP, durable=False)
    assert res.diff_id == sha(tar)


def test_tar_written_by_tarfile_with_gnu_format(tmp_path, layers):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / ("long" * 40)).write_bytes(b"long name")
    tar_path = str(tmp_path / "l.tar")
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(str(src), arcname=".")
    res = unpack_layer(tar_path, layers, media_type=PLAIN)  # durable path too
    assert open(os.path.join(res.path, "a", "long" * 40), "rb").read() == b"long name"
    assert res.diff_id == sha(open(tar_path, "rb").read())


def test_expected_diff_id(tmp_path, layers):
    tar = build_tar([E("f", data=b"x")])
    blob = write_blob(str(tmp_path), tar)
    with pytest.raises(DigestMismatch):
        unpack_layer(blob, layers, media_type=GZIP, expected_diff_id=sha(b"other"))
    assert os.listdir(os.path.join(layers, "sha256")) == [] and tmp_left(layers) == []
    res = unpack_layer(blob, layers, media_type=GZIP, expected_diff_id=sha(tar))
    assert res.diff_id == sha(tar)


def test_shared_layer_stored_once(tmp_path, layers):
    tar = build_tar([E("f", data=b"shared")])
    gz = write_blob(str(tmp_path), tar, GZIP)
    zs = write_blob(str(tmp_path), tar, ZSTD)  # same diff ID, other compression
    r1 = unpack_layer(gz, layers, media_type=GZIP, durable=False)
    marker = os.stat(r1.path).st_ino
    r2 = unpack_layer(zs, layers, media_type=ZSTD, durable=False)
    assert r1 == r2 and os.stat(r2.path).st_ino == marker
    assert os.listdir(os.path.join(layers, "sha256")) == [r1.diff_id[7:]]
    assert tmp_left(layers) == []


def test_concurrent_unpacks_of_one_layer(tmp_path, layers):
    tar = build_tar([E(f"d{i}/f{j}", data=b"x" * j) for i in range(20) for j in range(20)])
    blob = write_blob(str(tmp_path), tar)
    results, errors = [], []

    def work() -> None:
        try:
            results.append(unpack_layer(blob, layers, media_type=GZIP, durable=False))
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len({r.path for r in results}) == 1
    assert len(os.listdir(os.path.join(layers, "sha256"))) == 1 and tmp_left(layers) == []


def test_failure_removes_tmp_even_with_readonly_dirs(tmp_path, layers):
    entries = [E("ro/", "dir", mode=0o500), E("ro/sub/", "dir", mode=0o000),
               E("ro/sub/f", data=b"x", mode=0o000), E("../escape", data=b"x")]
    with pytest.raises(UnsafeLayer, match="escape"):
        unpack(tmp_path, entries)
    assert tmp_left(layers) == [] and os.listdir(os.path.join(layers, "sha256")) == []


def test_unsupported_media_type(tmp_path, layers):
    blob = write_blob(str(tmp_path), build_tar([E("f")]))
    with pytest.raises(UnsafeLayer, match="media type"):
        unpack_layer(blob, layers, media_type="application/vnd.oci.image.layer.v1.tar+bzip2")


def test_corrupt_compressed_data(tmp_path, layers):
    blob = write_blob(str(tmp_path), build_tar([E("f", data=os.urandom(50_000))]))
    data = bytearray(open(blob, "rb").read())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    open(blob, "wb").write(bytes(data))
    with pytest.raises(ImageError):
        unpack_layer(blob, layers, media_type=GZIP)
    assert tmp_left(layers) == []


def test_cleanup_stale_unpacks(tmp_path, layers):
    assert cleanup_stale_unpacks(layers) == 0
    stale = os.path.join(layers, "tmp", "unpack-dead")
    os.makedirs(os.path.join(stale, "ro", "x"))
    open(os.path.join(stale, "ro", "x", "f"), "w").close()
    os.chmod(os.path.join(stale, "ro"), 0o500)
    assert cleanup_stale_unpacks(layers) == 1
    assert tmp_left(layers) == []


def test_invalid_expected_diff_id(tmp_path, layers):
    blob = write_blob(str(tmp_path), build_tar([E("f")]))
    with pytest.raises(ValueError):
        unpack_layer(blob, layers, media_type=GZIP, expected_diff_id="sha256:../../x")
