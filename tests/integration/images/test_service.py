"""LocalImageService end to end: a real docker-registry with the offline busybox and nginx
images (built once per session), a token-auth registry, and a fault-injecting fake registry.

Issue 3's acceptance list for the ImageService. Everything listens on 127.0.0.1; every
registry, server and mount is stopped or removed after each test.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
import yaml

from podling.images import build_demo
from podling.images.config import RegistriesConfig
from podling.images.errors import (DigestMismatch, ImageNotPresent, InvalidArchive,
                                   RegistryError, RegistryUnauthorized)
from podling.images.interface import PullProgress, RegistryAuth
from podling.images.localregistry import LocalRegistry, TokenAuth, free_port, mirror_config
from podling.images.platforms import Platform
from podling.images.refs import parse_reference
from podling.images.registry import RegistryClient
from podling.images.registry_http import ClientOptions
from podling.images.service import ImageStoreConfig, LocalImageService
from podling.images.snapshots import Snapshotter
from podling.util.mounts import mounts_under

from regtest_util import (OCI_INDEX, OCI_MANIFEST, FakeRegistry, TestImage, TokenIssuer,
                          build_image, build_index, make_token_app, serve, sha,
                          write_oci_layout)

pytestmark = pytest.mark.skipif(not os.access("/usr/bin/docker-registry", os.X_OK),
                                reason="needs Debian's docker-registry")

FAST = ClientOptions(retries=1, backoff=0.01, backoff_max=0.05, connect_timeout=5)
AMD64 = Platform("linux", "amd64")


# ---- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def demo_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    try:
        build_demo.find_busybox()
        paths = build_demo.build_all(tmp_path_factory.mktemp("demo-images"),
                                     deb_dir=os.environ.get("PODLING_NGINX_DEBS"))
    except build_demo.BuildError as e:
        pytest.skip(f"cannot build the demo images here: {e}")
    return {"busybox": str(paths[0]), "nginx": str(paths[1])}


@pytest.fixture
async def registry(tmp_path: Path, demo_images: dict[str, str]
                   ) -> AsyncIterator[LocalRegistry]:
    """A docker-registry holding library/busybox:latest and library/nginx:latest."""
    reg = LocalRegistry(tmp_path / "registry")
    await reg.start()
    try:
        async with RegistryClient(options=FAST) as c:
            for name, archive in demo_images.items():
                await c.push_oci_layout(archive,
                                        parse_reference(f"{reg.host}/library/{name}:latest"))
        yield reg
    finally:
        await reg.stop()


Factory = Callable[..., LocalImageService]


@pytest.fixture
async def make_service(tmp_path: Path) -> AsyncIterator[Factory]:
    """Builds services on ``tmp_path/images``; ``registries`` is a registries.yaml dict."""
    made: list[LocalImageService] = []

    def make(registries: dict | None = None, root: str = "images", **kw: object
             ) -> LocalImageService:
        path = tmp_path / f"registries-{len(made)}.yaml"
        path.write_text(yaml.safe_dump(registries or {}))
        kw.setdefault("platform", AMD64)
        kw.setdefault("client_options", FAST)
        svc = LocalImageService(ImageStoreConfig(root=str(tmp_path / root),
                                                 registries_path=str(path),
                                                 **kw))  # type: ignore[arg-type]
        made.append(svc)
        return svc

    yield make
    for svc in made:
        await svc.close()


class Recorder:
    def __init__(self) -> None:
        self.reports: list[PullProgress] = []

    def __call__(self, p: PullProgress) -> None:
        self.reports.append(p)

    def statuses(self, status: str) -> list[PullProgress]:
        return [p for p in self.reports if p.status == status]

    def downloaded_layers(self) -> set[str]:
        return {p.layer for p in self.statuses("downloading")}


def assert_nothing_half_committed(svc: LocalImageService, ref: str) -> None:
    assert os.listdir(os.path.join(svc.content.root, "ingest")) == []
    tmp = os.path.join(svc.layers_root, "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
    layers = os.path.join(svc.layers_root, "sha256")
    assert not os.path.isdir(layers) or os.listdir(layers) == []
    assert svc.metadata.get(ref) is None


def layer_file(svc: LocalImageService, diff_id: str, name: str) -> bytes:
    return (Path(svc.layers_root) / "sha256" / diff_id.split(":")[1] / name).read_bytes()


async def push_test_image(reg_host: str, repo_tag: str, img: TestImage,
                          **kw: object) -> None:
    ref = parse_reference(f"{reg_host}/{repo_tag}")
    async with RegistryClient(options=FAST) as c:
        for digest, data in img.blobs.items():
            await c.push_blob(ref, digest, data, **kw)  # type: ignore[arg-type]
        await c.push_manifest(ref, OCI_MANIFEST, img.manifest, **kw)  # type: ignore[arg-type]


# ---- pulls from the local registry -------------------------------------------------------

async def test_pull_busybox_and_nginx_directly(registry: LocalRegistry,
                                               make_service: Factory) -> None:
    svc = make_service()
    rec = Recorder()
    busybox = await svc.pull_image(f"{registry.host}/library/busybox:latest", progress=rec)
    assert busybox.names == (f"{registry.host}/library/busybox:latest",)
    assert busybox.repo_digests == (f"{registry.host}/library/busybox@"
                                    f"{busybox.manifest_digest}",)
    assert busybox.config.cmd == ["sh"]
    done = rec.statuses("done")
    assert done and all(registry.host in p.endpoint for p in done)
    nginx = await svc.pull_image(f"{registry.host}/library/nginx")
    assert nginx.config.exposed_ports == ["80/tcp"] and nginx.config.stop_signal == "SIGQUIT"
    dirs = svc.rootfs_layers(nginx)
    assert len(dirs) == 2 and all(os.path.isdir(d) for d in dirs)
    assert dirs[0] == svc.rootfs_layers(busybox)[0]  # the shared base layer, stored once
    assert os.path.isfile(os.path.join(dirs[1], "usr/sbin/nginx"))
    assert {i.id for i in await svc.list_images()} == {busybox.id, nginx.id}


async def test_pull_through_the_docker_io_mirror(registry: LocalRegistry,
                                                 make_service: Factory) -> None:
    svc = make_service(mirror_config(registry))
    rec = Recorder()
    image = await svc.pull_image("nginx", progress=rec)  # image: nginx, unmodified
    assert image.names == ("docker.io/library/nginx:latest",)
    assert image.repo_digests[0].startswith("docker.io/library/nginx@sha256:")
    assert {p.endpoint for p in rec.statuses("done")} == {registry.url}
    assert (await svc.image_status("nginx:latest")).id == image.id
    assert (await svc.image_status(image.id[7:19])).id == image.id
    assert (await svc.image_config("docker.io/library/nginx")).cmd[0] == "nginx"
    busybox = await svc.pull_image("busybox")
    assert (await svc.image_status(busybox.repo_digests[0])).id == busybox.id


async def test_pull_from_a_registry_that_requires_a_token(tmp_path: Path,
                                                          make_service: Factory) -> None:
    issuer = TokenIssuer(str(tmp_path / "token.pem"))
    token_log: list[dict[str, object]] = []
    runner, token_host = await serve(make_token_app(issuer, {"alice": "s3cret"}, token_log))
    reg = LocalRegistry(tmp_path / "token-registry", auth=TokenAuth(
        realm=f"http://{token_host}/token", service=issuer.service, issuer=issuer.issuer,
        rootcertbundle=str(tmp_path / "token.pem")))
    good = RegistryAuth(username="alice", password="s3cret")
    try:
        await reg.start()
        img = build_image(text="token")
        await push_test_image(reg.host, "private/app:v1", img, auth=good)
        ref = f"{reg.host}/private/app:v1"
        svc = make_service()
        with pytest.raises(RegistryUnauthorized):
            await svc.pull_image(ref)
        image = await svc.pull_image(ref, auth=good)
        assert image.manifest_digest == img.digest and token_log[-1]["user"] == "alice"
        docker_config = tmp_path / "config.json"
        docker_config.write_text(json.dumps(
            {"auths": {reg.host: {"username": "alice", "password": "s3cret"}}}))
        other = make_service(root="images2", docker_config_paths=(str(docker_config),))
        assert (await other.pull_image(ref)).id == image.id
    finally:
        await reg.stop()
        await runner.cleanup()


@pytest.mark.parametrize("platform, want", [(AMD64, "amd64"),
                                            (Platform("linux", "arm64", "v8"), "arm64v8")])
async def test_index_with_several_platforms(registry: LocalRegistry, make_service: Factory,
                                            platform: Platform, want: str) -> None:
    images = [build_image("amd64"), build_image("arm64", "v8"), build_image("s390x")]
    ref = parse_reference(f"{registry.host}/multi/app:v1")
    async with RegistryClient(options=FAST) as c:
        for img in images:
            for digest, data in img.blobs.items():
                await c.push_blob(ref, digest, data)
            await c.push_manifest(ref.with_digest(img.digest), OCI_MANIFEST, img.manifest)
        index_digest = await c.push_manifest(ref, OCI_INDEX, build_index(images))
    svc = make_service(platform=platform)
    image = await svc.pull_image(str(ref))
    [chosen] = [i for i in images if f"{i.arch}{i.variant}" == want]
    assert image.manifest_digest == chosen.digest and image.architecture == chosen.arch
    assert image.repo_digests == (f"{ref.name}@{index_digest}",)
    assert layer_file(svc, image.layers[0], "hello.txt") == f"hello from {want}\n".encode()


async def test_always_pull_of_an_unchanged_tag_downloads_nothing(
        registry: LocalRegistry, make_service: Factory) -> None:
    svc = make_service(mirror_config(registry))
    first = Recorder()
    image, pulled = await svc.ensure_image("nginx", "Always", progress=first)
    assert pulled and len(first.downloaded_layers()) == 2
    again = Recorder()
    image2, pulled = await svc.ensure_image("nginx", "Always", progress=again)
    assert pulled and image2 == image
    assert again.downloaded_layers() == set()
    assert len(again.statuses("exists")) == 2 and again.statuses("resolving")


async def test_a_changed_tag_is_re_resolved(registry: LocalRegistry,
                                            make_service: Factory) -> None:
    ref = f"{registry.host}/team/app:latest"
    v1, v2 = build_image(text="one"), build_image(text="two")
    await push_test_image(registry.host, "team/app:latest", v1)
    svc = make_service()
    old = await svc.pull_image(ref)
    await push_test_image(registry.host, "team/app:latest", v2)
    rec = Recorder()
    new, pulled = await svc.ensure_image(ref, "Always", progress=rec)
    assert pulled and new.id != old.id and new.manifest_digest == v2.digest
    assert rec.downloaded_layers() == {v2.layer_digest}
    assert layer_file(svc, new.layers[0], "hello.txt").startswith(b"two")
    dangling = await svc.image_status(old.id)
    assert dangling is not None and dangling.names == ()  # untagged, kept until GC
    assert (await svc.image_status(ref)).id == new.id


async def test_pull_policies(registry: LocalRegistry, make_service: Factory) -> None:
    svc = make_service(mirror_config(registry))
    with pytest.raises(ImageNotPresent,
                       match='Container image "busybox" is not present with pull policy '
                             'of Never'):
        await svc.ensure_image("busybox", "Never")
    image, pulled = await svc.ensure_image("busybox", "IfNotPresent")
    assert pulled
    await registry.stop()  # from now on no registry: only the local store answers
    assert await svc.ensure_image("busybox", "IfNotPresent") == (image, False)
    assert await svc.ensure_image("docker.io/library/busybox:latest", "Never") == (image,
                                                                                    False)
    with pytest.raises(RegistryError):
        await svc.ensure_image("busybox", "Always")
    with pytest.raises(Exception, match="unknown image pull policy"):
        await svc.ensure_image("busybox", "Sometimes")


# ---- failures leave nothing behind -------------------------------------------------------

@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeRegistry, str, TestImage]]:
    img = build_image(text="fake")
    reg = FakeRegistry("team/app")
    reg.add_image(img, "v1")
    runner, host = await serve(reg.app())
    try:
        yield reg, host, img
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("fault, error, message", [
    ("corrupt", DigestMismatch, "hashes to"),
    ("truncate", RegistryError, "interrupted|truncated"),
    ("wrong_digest_header", DigestMismatch, "registry says"),
])
async def test_bad_downloads_are_clear_errors_and_leave_nothing(
        fake: tuple[FakeRegistry, str, TestImage], make_service: Factory,
        fault: str, error: type[Exception], message: str) -> None:
    reg, host, img = fake
    if fault == "wrong_digest_header":
        reg.faults.wrong_digest_header = True
    else:
        getattr(reg.faults, fault).add(img.layer_digest)
    ref = f"{host}/team/app:v1"
    svc = make_service()
    with pytest.raises(error, match=message) as info:
        await svc.pull_image(ref)
    assert ref in str(info.value)
    assert_nothing_half_committed(svc, ref)
    assert not svc.content.has(img.layer_digest)
    reg.faults.corrupt.clear(), reg.faults.truncate.clear()
    reg.faults.wrong_digest_header = False
    image = await svc.pull_image(ref)
    assert image.manifest_digest == img.digest


async def test_a_layer_with_the_wrong_diff_id_is_refused(
        fake: tuple[FakeRegistry, str, TestImage], make_service: Factory) -> None:
    reg, host, img = fake
    config = json.loads(img.config)
    config["rootfs"]["diff_ids"] = [sha(b"something else")]
    bad_config = json.dumps(config).encode()
    manifest = json.loads(img.manifest)
    manifest["config"] = {**manifest["config"], "digest": sha(bad_config),
                          "size": len(bad_config)}
    bad = TestImage(manifest=json.dumps(manifest).encode(), config=bad_config,
                    layer=img.layer, arch="amd64")
    bad.blobs = {sha(bad_config): bad_config, img.layer_digest: img.layer}
    reg.add_image(bad, "bad")
    svc = make_service()
    with pytest.raises(DigestMismatch, match="diff ID"):
        await svc.pull_image(f"{host}/team/app:bad")
    assert_nothing_half_committed(svc, f"{host}/team/app:bad")
    assert (await svc.pull_image(f"{host}/team/app:v1")).manifest_digest == img.digest


async def test_registry_down_is_a_clear_error(make_service: Factory) -> None:
    ref = f"127.0.0.1:{free_port()}/team/app:v1"
    svc = make_service()
    with pytest.raises(RegistryError, match="team/app"):
        await svc.pull_image(ref)
    assert_nothing_half_committed(svc, ref)


async def test_concurrent_pulls_of_one_reference_share_one_download(
        fake: tuple[FakeRegistry, str, TestImage], make_service: Factory) -> None:
    reg, host, img = fake
    reg.add_image(img, "latest")
    svc = make_service()
    recorders = [Recorder() for _ in range(5)]
    refs = [f"{host}/team/app:latest", f"{host}/team/app"] * 2 + [f"{host}/team/app"]
    images = await asyncio.gather(*(svc.pull_image(r, progress=rec)
                                    for r, rec in zip(refs, recorders)))
    assert len({i.id for i in images}) == 1
    blob_gets = [p for p in reg.requests if "/blobs/" in p]
    assert sorted(blob_gets) == sorted(f"/v2/team/app/blobs/{d}" for d in img.blobs)
    assert all(rec.statuses("done") for rec in recorders)


async def test_a_cancelled_caller_does_not_cancel_the_shared_pull(
        fake: tuple[FakeRegistry, str, TestImage], make_service: Factory) -> None:
    _, host, img = fake
    svc = make_service()
    first = asyncio.ensure_future(svc.pull_image(f"{host}/team/app:v1"))
    second = asyncio.ensure_future(svc.pull_image(f"{host}/team/app:v1"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).manifest_digest == img.digest
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_leftovers_of_a_killed_pull_are_removed_on_open(tmp_path: Path,
                                                              make_service: Factory) -> None:
    svc = make_service()
    await svc.close()
    stale_ingest = Path(svc.content.root) / "ingest" / f"{'a' * 64}.0000.part"
    stale_ingest.write_bytes(b"half a blob")
    stale_unpack = Path(svc.layers_root) / "tmp" / "unpack-x"
    stale_unpack.mkdir(parents=True)
    (stale_unpack / "etc").mkdir()
    make_service()
    assert not stale_ingest.exists() and not stale_unpack.exists()


# ---- import --------------------------------------------------------------------------------

def docker_save_archive(path: Path, img: TestImage, tags: list[str]) -> None:
    layer_tar = gzip.decompress(img.layer)
    config_name = f"{sha(img.config)[7:]}.json"
    files = {config_name: img.config, "abc/layer.tar": layer_tar,
             "manifest.json": json.dumps([{"Config": config_name, "RepoTags": tags,
                                           "Layers": ["abc/layer.tar"]}]).encode()}
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


async def test_import_docker_save_and_oci_archives(tmp_path: Path, make_service: Factory,
                                                   demo_images: dict[str, str]) -> None:
    svc = make_service()
    img = build_image(text="saved")
    docker_save_archive(tmp_path / "saved.tar", img, ["team/app:v1", "busybox:old"])
    [saved] = await svc.import_archive(str(tmp_path / "saved.tar"))
    assert saved.names == ("docker.io/team/app:v1", "docker.io/library/busybox:old")
    assert layer_file(svc, saved.layers[0], "hello.txt") == b"saved from amd64\n"
    [nginx] = await svc.import_archive(demo_images["nginx"])
    assert nginx.names == ("docker.io/library/nginx:latest",)
    assert (await svc.image_status("nginx")).id == nginx.id
    write_oci_layout(str(tmp_path / "layout"), build_image(text="layout"), tag="v2")
    [layout] = await svc.import_archive(str(tmp_path / "layout"), base_name="example.com/x")
    assert layout.names == ("example.com/x:v2",)
    again = await svc.import_archive(str(tmp_path / "saved.tar"))
    assert again[0] == saved  # idempotent


async def test_import_refuses_a_tampered_archive(tmp_path: Path,
                                                 make_service: Factory) -> None:
    img = build_image(text="tampered")
    write_oci_layout(str(tmp_path / "layout"), img, tag="v1")
    blob = tmp_path / "layout" / "blobs" / "sha256" / img.layer_digest[7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    svc = make_service()
    with pytest.raises((DigestMismatch, InvalidArchive)):
        await svc.import_archive(str(tmp_path / "layout"), base_name="example.com/x")
    assert_nothing_half_committed(svc, "example.com/x:v1")


# ---- removal and garbage collection ------------------------------------------------------

async def test_rm_and_garbage_collect_free_blobs_and_layers(registry: LocalRegistry,
                                                            make_service: Factory) -> None:
    svc = make_service(mirror_config(registry))
    busybox = await svc.pull_image("busybox")
    nginx = await svc.pull_image("nginx")
    layer_dirs = set(os.listdir(Path(svc.layers_root) / "sha256"))
    assert len(layer_dirs) == 2
    await svc.remove_image("nginx")
    assert await svc.image_status("nginx") is None
    assert os.listdir(Path(svc.layers_root) / "sha256") == [busybox.layers[0][7:]]
    assert not svc.content.has(nginx.id) and svc.content.has(busybox.id)
    await svc.remove_image("nginx")  # idempotent
    await svc.pull_image("nginx")
    result = await svc.garbage_collect(keep={busybox.id})
    assert result.images == (nginx.id,) and result.layers == 1 and result.bytes_freed > 0
    assert (await svc.garbage_collect(keep={busybox.id}, dangling_only=True)).images == ()
    result = await svc.garbage_collect()
    assert result.images == (busybox.id,)
    assert svc.content.digests() == [] and os.listdir(Path(svc.layers_root) / "sha256") == []
    assert await svc.list_images() == []


# ---- root filesystems ------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount, chroot)")
async def test_snapshot_of_a_pulled_nginx_image(registry: LocalRegistry, tmp_path: Path,
                                                make_service: Factory) -> None:
    svc = make_service(mirror_config(registry))
    image = await svc.pull_image("nginx")
    snap = Snapshotter(str(tmp_path / "snapshots"))
    try:
        rootfs = snap.prepare("nginx-1", svc.rootfs_layers(image))
        out = subprocess.run(["chroot", rootfs, "nginx", "-t"], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "test is successful" in out.stderr
        result = await svc.garbage_collect()  # mounted layers are never removed
        assert result.images == (image.id,) and result.layers == 0
        assert all(os.path.isdir(d) for d in svc.rootfs_layers(image))
    finally:
        snap.remove("nginx-1")
    assert mounts_under(str(tmp_path)) == []
    assert (await svc.garbage_collect()).layers == 2


async def test_registries_config_is_read_from_the_store_config(
        registry: LocalRegistry, make_service: Factory) -> None:
    svc = make_service(mirror_config(registry))
    client = await svc._registry()
    assert isinstance(client.config, RegistriesConfig)
    assert [e.url for e in client.config.endpoints(parse_reference("nginx"))] == [
        registry.url]
