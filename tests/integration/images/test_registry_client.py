"""RegistryClient against a real docker-registry (LocalRegistry) and a fake aiohttp registry."""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
from pathlib import Path
from typing import AsyncIterator

import pytest
import yaml

from podling.images.config import RegistriesConfig, load_registries
from podling.images.credentials import parse_docker_config
from podling.images.errors import (DigestMismatch, ManifestNotFound, NoMatchingPlatform,
                                   RegistryError, RegistryUnauthorized)
from podling.images.interface import PullProgress, RegistryAuth
from podling.images.localregistry import (HtpasswdAuth, LocalRegistry, TokenAuth, free_port,
                                          mirror_config)
from podling.images.platforms import Platform
from podling.images.refs import parse_reference
from podling.images.registry import RegistryClient
from podling.images.registry_http import ClientOptions

from regtest_util import (OCI_INDEX, OCI_MANIFEST, FakeRegistry, TestImage, TokenIssuer,
                          build_image, build_index, make_token_app, serve, sha,
                          write_oci_layout)

pytestmark = pytest.mark.skipif(not os.access("/usr/bin/docker-registry", os.X_OK),
                                reason="needs Debian's docker-registry")

FAST = ClientOptions(retries=2, backoff=0.01, backoff_max=0.05, connect_timeout=5)
AMD64 = Platform("linux", "amd64")


def client(config: RegistriesConfig | None = None, **kw: object) -> RegistryClient:
    kw.setdefault("options", FAST)
    kw.setdefault("platform", AMD64)
    return RegistryClient(config, **kw)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path / "registry")
    await reg.start()
    pid = reg.pid
    try:
        yield reg
    finally:
        await reg.stop()
        assert pid is not None and not alive(pid)


async def push(c: RegistryClient, ref_text: str, img: TestImage, **kw: object) -> str:
    ref = parse_reference(ref_text)
    for digest, data in img.blobs.items():
        await c.push_blob(ref, digest, data, **kw)  # type: ignore[arg-type]
    return await c.push_manifest(ref, OCI_MANIFEST, img.manifest, **kw)  # type: ignore[arg-type]


async def pull_blob(c: RegistryClient, ref_text: str, digest: str, size: int | None = None,
                    **kw: object) -> tuple[bytes, str]:
    buf = io.BytesIO()
    result = await c.fetch_blob(parse_reference(ref_text), digest, buf, size,
                                **kw)  # type: ignore[arg-type]
    return buf.getvalue(), result.endpoint


# ---- real registry ---------------------------------------------------------------------

async def test_push_layout_resolve_and_fetch(registry: LocalRegistry, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    img = build_image()
    layout = tmp_path / "layout"
    write_oci_layout(str(layout), img, tag="v1")
    ref = parse_reference(f"{registry.host}/demo/hello:v1")
    async with client() as c:
        assert await c.push_oci_layout(layout, ref) == img.digest
        assert not await c.push_blob(ref, img.layer_digest, img.layer)  # already there
        resolved = await c.resolve(ref)
        assert resolved.manifest_digest == img.digest == resolved.repo_digest
        assert resolved.media_type == OCI_MANIFEST and resolved.manifest_bytes == img.manifest
        assert resolved.endpoint == registry.url
        events: list[PullProgress] = []
        buf = io.BytesIO()
        with caplog.at_level(logging.INFO, logger="podling.images.registry"):
            result = await c.fetch_blob(ref, img.layer_digest, buf, len(img.layer),
                                        events.append)
        assert buf.getvalue() == img.layer and result.size == len(img.layer)
        assert result.endpoint == registry.url
        assert f"served by {registry.url}" in caplog.text
        assert events[-1].status == "verifying" and events[-1].done == len(img.layer)
        assert {e.endpoint for e in events} == {registry.url}
        config = await c.fetch_blob_bytes(ref, sha(img.config), len(img.config))
        assert config == img.config
        with pytest.raises(ManifestNotFound):
            await c.resolve(parse_reference(f"{registry.host}/demo/hello:missing"))
        with pytest.raises(ManifestNotFound):
            await pull_blob(c, str(ref), "sha256:" + "1" * 64)


async def test_push_layout_archive_and_pinned_reference(registry: LocalRegistry,
                                                        tmp_path: Path) -> None:
    img = build_image(text="archived")
    layout = tmp_path / "layout"
    write_oci_layout(str(layout), img, tag="latest")
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    shutil.rmtree(layout)
    async with client() as c:
        ref = parse_reference(f"{registry.host}/demo/archived")
        assert await c.push_oci_layout(archive, ref) == img.digest
        pinned = await c.resolve(ref.with_digest(img.digest))
        assert pinned.manifest_digest == img.digest


async def test_docker_io_mirror_with_rewrite(registry: LocalRegistry, tmp_path: Path) -> None:
    img = build_image(text="mirrored")
    async with client() as c:
        await push(c, f"{registry.host}/mirrored/nginx:latest", img)
        await push(c, f"{registry.host}/library/busybox:1.36", img)
    doc = mirror_config(registry, rewrite={"^library/nginx$": "mirrored/nginx"})
    path = tmp_path / "registries.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_registries(path)
    async with client(config) as c:
        for image in ("nginx", "docker.io/library/nginx:latest", "busybox:1.36"):
            resolved = await c.resolve(parse_reference(image))
            assert resolved.manifest_digest == img.digest
            assert resolved.endpoint == registry.url
        data, endpoint = await pull_blob(c, "nginx", img.layer_digest)
        assert data == img.layer and endpoint == registry.url
        with pytest.raises(ManifestNotFound):  # no fallback to registry-1.docker.io
            await c.resolve(parse_reference("alpine"))
        assert [e.url for e in c.endpoints(parse_reference("alpine"))] == [registry.url]


async def test_index_picks_this_platform(registry: LocalRegistry) -> None:
    images = [build_image("amd64"), build_image("arm64", "v8"), build_image("arm", "v7"),
              build_image("arm", "v6")]
    index = build_index(images)
    ref = parse_reference(f"{registry.host}/multi/app:1")
    async with client() as c:
        for img in images:
            await push(c, str(ref.with_digest(img.digest)), img)
        await c.push_manifest(ref, OCI_INDEX, index)
    cases = [(Platform("linux", "amd64"), images[0]), (Platform("linux", "arm64", "v8"), images[1]),
             (Platform("linux", "arm", "v7"), images[2]), (Platform("linux", "arm", "v6"), images[3])]
    for platform, want in cases:
        async with client(platform=platform) as c:
            resolved = await c.resolve(ref)
            assert resolved.manifest_digest == want.digest, platform
            assert resolved.repo_digest == sha(index)
            assert resolved.platform is not None and resolved.platform.architecture == want.arch
    async with client(platform=Platform("linux", "s390x")) as c:
        with pytest.raises(NoMatchingPlatform, match="linux/s390x.*linux/arm64/v8"):
            await c.resolve(ref)


async def test_token_auth(tmp_path: Path) -> None:
    issuer = TokenIssuer(str(tmp_path / "token.pem"))
    token_log: list[dict[str, object]] = []
    runner, token_host = await serve(make_token_app(issuer, {"alice": "s3cret"}, token_log))
    auth = TokenAuth(realm=f"http://{token_host}/token", service=issuer.service,
                     issuer=issuer.issuer, rootcertbundle=str(tmp_path / "token.pem"))
    reg = LocalRegistry(tmp_path / "registry", auth=auth)
    img = build_image(text="token")
    try:
        await reg.start()
        ref = f"{reg.host}/private/app:v1"
        good = RegistryAuth(username="alice", password="s3cret")
        async with client() as c:
            await push(c, ref, img, auth=good)
            resolved = await c.resolve(parse_reference(ref), auth=good)
            assert resolved.manifest_digest == img.digest
            data, _ = await pull_blob(c, ref, img.layer_digest, auth=good)
            assert data == img.layer
            before = len(token_log)
            await pull_blob(c, ref, sha(img.config), auth=good)
            assert len(token_log) == before  # cached token reused for the same scope
            assert token_log[-1]["user"] == "alice"
            assert token_log[-1]["service"] == issuer.service
        async with client() as c:
            with pytest.raises(RegistryUnauthorized):
                await c.resolve(parse_reference(ref), auth=RegistryAuth("alice", "wrong"))
            with pytest.raises(RegistryUnauthorized):
                await c.resolve(parse_reference(ref))
        creds = parse_docker_config({"auths": {reg.host: {"username": "alice",
                                                          "password": "s3cret"}}})
        async with client(credentials=[creds]) as c:
            assert (await c.resolve(parse_reference(ref))).manifest_digest == img.digest
    finally:
        await reg.stop()
        await runner.cleanup()


async def test_basic_auth_htpasswd(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "registry", auth=HtpasswdAuth({"bob": "hunter2"}))
    img = build_image(text="basic")
    try:
        await reg.start()
        ref = f"{reg.host}/basic/app:v1"
        async with client() as c:
            await push(c, ref, img, auth=RegistryAuth("bob", "hunter2"))
            with pytest.raises(RegistryUnauthorized):
                await c.resolve(parse_reference(ref))
            with pytest.raises(RegistryUnauthorized):
                await c.resolve(parse_reference(ref), auth=RegistryAuth("bob", "nope"))
        config = RegistriesConfig.from_dict(
            {"configs": {reg.host: {"auth": {"username": "bob", "password": "hunter2"}}}})
        async with client(config) as c:
            assert (await c.resolve(parse_reference(ref))).manifest_digest == img.digest
            data, _ = await pull_blob(c, ref, img.layer_digest, len(img.layer))
            assert data == img.layer
    finally:
        await reg.stop()


async def test_mirror_down_falls_back_then_no_fallback_fails(registry: LocalRegistry) -> None:
    img = build_image(text="fallback")
    down = f"http://127.0.0.1:{free_port()}"
    async with client() as c:
        await push(c, f"{registry.host}/fb/app:v1", img)
    config = RegistriesConfig.from_dict({"mirrors": {registry.host: {"endpoint": [down]}}})
    async with client(config) as c:
        ref = f"{registry.host}/fb/app:v1"
        assert (await c.resolve(parse_reference(ref))).endpoint == registry.url
        data, endpoint = await pull_blob(c, ref, img.layer_digest)
        assert data == img.layer and endpoint == registry.url
    strict = RegistriesConfig.from_dict({"disableDefaultEndpoint": True,
                                         "mirrors": {registry.host: {"endpoint": [down]}}})
    async with client(strict) as c:
        with pytest.raises(RegistryError, match="cannot reach"):
            await c.resolve(parse_reference(f"{registry.host}/fb/app:v1"))


async def test_registry_down_is_a_clear_error() -> None:
    async with client() as c:
        with pytest.raises(RegistryError, match=r"cannot reach the registry") as info:
            await c.resolve(parse_reference(f"127.0.0.1:{free_port()}/x/y:1"))
        assert type(info.value) is RegistryError


async def test_local_registry_restart_keeps_content(tmp_path: Path) -> None:
    img = build_image(text="persist")
    reg = LocalRegistry(tmp_path / "registry")
    async with reg:
        async with client() as c:
            await push(c, f"{reg.host}/keep/app:v1", img)
        pid = reg.pid
    assert pid is not None and not alive(pid) and not reg.running
    await reg.stop()  # idempotent
    async with reg:
        async with client() as c:
            resolved = await c.resolve(parse_reference(f"{reg.host}/keep/app:v1"))
            assert resolved.manifest_digest == img.digest


# ---- fake registry (fault injection) --------------------------------------------------

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


async def test_corrupted_blob_is_digest_mismatch(fake: tuple[FakeRegistry, str, TestImage]
                                                 ) -> None:
    reg, host, img = fake
    reg.faults.corrupt.add(img.layer_digest)
    async with client() as c:
        with pytest.raises(DigestMismatch, match="hashes to"):
            await pull_blob(c, f"{host}/team/app:v1", img.layer_digest, len(img.layer))


async def test_wrong_manifest_digest(fake: tuple[FakeRegistry, str, TestImage]) -> None:
    reg, host, img = fake
    async with client() as c:
        reg.faults.corrupt.add(img.digest)
        with pytest.raises(DigestMismatch):
            await c.resolve(parse_reference(f"{host}/team/app@{img.digest}"))
        reg.faults.corrupt.clear()
        reg.faults.wrong_digest_header = True
        with pytest.raises(DigestMismatch, match="registry says"):
            await c.resolve(parse_reference(f"{host}/team/app:v1"))


async def test_blob_size_must_match_descriptor(fake: tuple[FakeRegistry, str, TestImage]
                                               ) -> None:
    _, host, img = fake
    async with client() as c:
        with pytest.raises(RegistryError, match="larger than"):
            await pull_blob(c, f"{host}/team/app:v1", img.layer_digest, len(img.layer) - 1)
        with pytest.raises(RegistryError, match="truncated"):
            await pull_blob(c, f"{host}/team/app:v1", img.layer_digest, len(img.layer) + 1)


async def test_truncated_body_is_an_error(fake: tuple[FakeRegistry, str, TestImage]) -> None:
    reg, host, img = fake
    reg.faults.truncate.add(img.layer_digest)
    async with client() as c:
        with pytest.raises(RegistryError, match="interrupted|truncated") as info:
            await pull_blob(c, f"{host}/team/app:v1", img.layer_digest, len(img.layer))
        assert not isinstance(info.value, DigestMismatch)
    blob_requests = [p for p in reg.requests if "/blobs/" in p]
    assert len(blob_requests) == 1 + FAST.retries  # retried after a reset of the writer


async def test_truncated_body_without_resettable_writer_is_not_retried(
        fake: tuple[FakeRegistry, str, TestImage]) -> None:
    reg, host, img = fake
    reg.faults.truncate.add(img.layer_digest)
    chunks: list[bytes] = []
    async with client() as c:
        with pytest.raises(RegistryError, match="interrupted|truncated"):
            await c.fetch_blob(parse_reference(f"{host}/team/app:v1"), img.layer_digest,
                               chunks.append, len(img.layer))
    assert len([p for p in reg.requests if "/blobs/" in p]) == 1


async def test_transient_503s_are_retried(fake: tuple[FakeRegistry, str, TestImage]) -> None:
    reg, host, img = fake
    reg.faults.fail_503 = 2
    async with client() as c:
        resolved = await c.resolve(parse_reference(f"{host}/team/app:v1"))
        assert resolved.manifest_digest == img.digest
        reg.faults.fail_503 = 2
        data, _ = await pull_blob(c, f"{host}/team/app:v1", img.layer_digest)
        assert data == img.layer
        reg.faults.fail_503 = 10
        with pytest.raises(RegistryError, match="HTTP 503"):
            await c.resolve(parse_reference(f"{host}/team/app:v1"))


async def test_bad_mirror_content_falls_back(fake: tuple[FakeRegistry, str, TestImage]) -> None:
    reg, host, img = fake
    good = FakeRegistry("team/app")
    good.add_image(img, "v1")
    runner, good_host = await serve(good.app())
    try:
        reg.faults.corrupt.add(img.layer_digest)
        config = RegistriesConfig.from_dict(
            {"mirrors": {"example.invalid": {"endpoint": [f"http://{host}",
                                                          f"http://{good_host}"],
                                             "disable_default_endpoint": True}}})
        async with client(config) as c:
            buf = io.BytesIO()
            result = await c.fetch_blob(parse_reference("example.invalid/team/app:v1"),
                                        img.layer_digest, buf, len(img.layer))
            assert buf.getvalue() == img.layer and result.endpoint == f"http://{good_host}"
            with pytest.raises(ManifestNotFound, match="every endpoint failed"):
                await c.resolve(parse_reference("example.invalid/team/app:nope"))
    finally:
        await runner.cleanup()


async def test_tls_ca_file_and_insecure_skip_verify(tmp_path: Path) -> None:
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from aiohttp import web

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_pem, key_pem)
    img = build_image(text="tls")
    reg = FakeRegistry("team/app")
    reg.add_image(img, "v1")
    runner = web.AppRunner(reg.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
    host = f"127.0.0.1:{port}"
    mirror = {"mirrors": {"tls.example": {"endpoint": [f"https://{host}"],
                                          "disable_default_endpoint": True}}}
    ref = parse_reference("tls.example/team/app:v1")
    try:
        async with client(RegistriesConfig.from_dict(mirror)) as c:
            with pytest.raises(RegistryError, match="cannot reach|CERTIFICATE"):
                await c.resolve(ref)
        for tls in ({"ca_file": str(cert_pem)}, {"insecure_skip_verify": True}):
            doc = {**mirror, "configs": {host: {"tls": tls}}}
            async with client(RegistriesConfig.from_dict(doc)) as c:
                assert (await c.resolve(ref)).endpoint == f"https://{host}"
                data, _ = await pull_blob(c, str(ref), img.layer_digest)
                assert data == img.layer
    finally:
        await runner.cleanup()
