"""build_demo: real busybox and nginx images, read back, mounted and run (root only).

Needs busybox-static on the host; the nginx .debs come from ``$PODLING_NGINX_DEBS`` (a dir
with nginx_*.deb and nginx-common_*.deb) or ``apt-get download`` (Debian's mirror).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from podling.images import build_demo
from podling.images.archive import ArchiveImage, read_archive
from podling.images.snapshots import Snapshotter
from podling.util.mounts import mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mounts)")

BUSYBOX_REF = "docker.io/library/busybox:latest"
NGINX_REF = "docker.io/library/nginx:latest"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    try:
        build_demo.find_busybox()
    except build_demo.BuildError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("demo")
    try:
        paths = build_demo.build_all(out, deb_dir=os.environ.get("PODLING_NGINX_DEBS"))
    except build_demo.BuildError as e:
        pytest.skip(f"cannot build the nginx image here: {e}")
    return {"busybox": str(paths[0]), "nginx": str(paths[1])}


def layer_members(img: ArchiveImage, i: int) -> dict[str, tarfile.TarInfo]:
    with img.layers[i].open() as f:
        raw = gzip.decompress(f.read())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: m for m in tar.getmembers()}


def config(img: ArchiveImage) -> dict:
    return json.loads(img.config_bytes)


def test_busybox_image(images):
    [img] = read_archive(images["busybox"])
    assert img.names == (BUSYBOX_REF,)
    members = layer_members(img, 0)
    assert members["bin/busybox"].isreg() and members["bin/busybox"].mode == 0o755
    applets = subprocess.run([build_demo.find_busybox(), "--list-full"], check=True,
                             capture_output=True, text=True).stdout.split()
    for applet in applets:
        if "/" in applet and applet != "bin/busybox":
            assert members[applet].issym() and members[applet].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    for d in ("proc", "sys", "dev", "home", "var"):
        assert members[d].isdir()
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert all(m.mtime == build_demo.EPOCH for m in members.values())
    cfg = config(img)
    assert cfg["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in cfg["config"]["Env"])
    assert len(cfg["rootfs"]["diff_ids"]) == 1


def test_nginx_image(images):
    [img] = read_archive(images["nginx"])
    [busybox] = read_archive(images["busybox"])
    assert img.names == (NGINX_REF,)
    assert len(img.layers) == 2
    assert img.layers[0].digest == busybox.layers[0].digest  # shared, reproducible base
    members = layer_members(img, 1)
    assert members["usr/sbin/nginx"].isreg()
    assert members["var/log/nginx/access.log"].linkname == "/dev/stdout"
    assert members["var/log/nginx/error.log"].linkname == "/dev/stderr"
    assert members["var/lib/nginx/body"].uid == 33
    assert members["lib"].issym() and members["usr/share/nginx/html/index.html"].isreg()
    assert any(n.startswith("usr/lib/") and "libc.so" in n for n in members)
    cfg = config(img)["config"]
    assert cfg["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}} and cfg["StopSignal"] == "SIGQUIT"


def test_builds_are_reproducible(images, tmp_path):
    again = build_demo.build_busybox(tmp_path / "b.tar")
    with open(again, "rb") as a, open(images["busybox"], "rb") as b:
        assert a.read() == b.read()


@pytest.fixture
def rootfs(images, tmp_path):
    """The nginx image unpacked layer by layer and mounted with the Snapshotter."""
    [img] = read_archive(images["nginx"])
    lowers = []
    for i, layer in enumerate(img.layers):
        d = tmp_path / f"layer{i}"
        d.mkdir()
        with layer.open() as f, tarfile.open(fileobj=f, mode="r|gz") as tar:
            tar.extractall(d, filter="fully_trusted")  # our own trusted test image
        lowers.append(str(d))
    snaps = Snapshotter(str(tmp_path / "snaps"))
    try:
        yield snaps.prepare("nginx-test", lowers)
    finally:
        snaps.remove("nginx-test")
        assert mounts_under(str(tmp_path)) == []


def run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def in_mount_ns(root: str, script: str, *, net: bool = False) -> list[str]:
    """Run ``script`` in new mount (and pid, maybe net) namespaces with /dev and /proc
    mounted in ``root``; everything started there dies with the namespace."""
    flags = ["-m", "-p", "--fork"] + (["-n"] if net else [])
    setup = f"mount --rbind /dev {root}/dev && mount -t proc proc {root}/proc && "
    return ["unshare", *flags, "sh", "-c", setup + script]


def test_chroot_busybox(rootfs):
    res = run(["chroot", rootfs, "/bin/busybox", "echo", "ok"])
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr
    res = run(["chroot", rootfs, "sh", "-c", "echo $((6*7)); id -un"])
    assert res.stdout.split() == ["42", "root"], res.stderr


def test_chroot_nginx_config_test(rootfs):
    res = run(in_mount_ns(rootfs, f"chroot {rootfs} nginx -t"))
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("ip")), reason="curl, ip")
def test_nginx_serves_default_page_in_netns(rootfs):
    script = (f"ip link set lo up || exit 1; chroot {rootfs} nginx -g 'daemon off;' & "
              "for i in $(seq 50); do curl -sf http://127.0.0.1:80/ && exit 0; "
              "sleep 0.1; done; exit 1")
    res = run(in_mount_ns(rootfs, script, net=True), timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Welcome to nginx!" in res.stdout
