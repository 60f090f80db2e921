"""The node mirror: a node's store served read-only over the OCI distribution API on the node
API, and a second store pulling an image it lacks from it through ``@nodes``.

Real parts: LocalImageService stores (an image imported from an OCI archive), the node API's
aiohttp server with its TLS and token checks, the registry client of the pulling store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from podling.agent.node.server import NodeServer
from podling.images.build_demo import LayerBuilder, write_oci_archive
from podling.images.service import ImageStoreConfig, LocalImageService

TOKEN, PULL_TOKEN = "kc1.node-secret", "ip1.pull-secret"
REF = "docker.io/library/tiny:1.0"


def _archive(path: Path, ref: str = REF, text: bytes = b"hello\n") -> Path:
    layer = LayerBuilder()
    layer.add_file("etc/greeting", text)
    return write_oci_archive(path, ref, [layer.build()], {"Cmd": ["/bin/sh"]}, ["test"])


def _store(root: Path, registries: Path) -> LocalImageService:
    return LocalImageService(ImageStoreConfig(root=str(root), registries_path=str(registries),
                                              durable=False))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[LocalImageService, str]]:
    """Node A: a store holding REF, served by a node API on 127.0.0.1; yields (store, URL)."""
    store = _store(tmp_path / "a", tmp_path / "a.yaml")
    await store.import_archive(str(_archive(tmp_path / "tiny.tar")))
    server = NodeServer(token=TOKEN, pull_token=PULL_TOKEN, pods_dir=str(tmp_path / "pods"),
                        runtime=None, find_pod=lambda ns, name: None,  # type: ignore[arg-type]
                        cert_dir=str(tmp_path / "cert"), images=store)
    port = await server.start("127.0.0.1", 0)
    try:
        yield store, f"https://127.0.0.1:{port}"
    finally:
        await server.stop()
        await store.close()


async def _get(url: str, token: str = PULL_TOKEN, method: str = "GET",
               ) -> tuple[int, dict[str, str], bytes]:
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers, ssl=insecure) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def _error_code(body: bytes) -> str:
    doc: dict[str, Any] = json.loads(body)
    return doc["errors"][0]["code"]


async def test_distribution_api_serves_the_store(node: tuple[LocalImageService, str]) -> None:
    store, url = node
    image = await store.image_status(REF)
    assert image is not None
    status, headers, body = await _get(url + "/v2/")
    assert status == 200 and headers["Docker-Distribution-API-Version"] == "registry/2.0"

    for name in ("library/tiny", "docker.io/library/tiny", "tiny"):
        status, headers, body = await _get(f"{url}/v2/{name}/manifests/1.0")
        assert status == 200, name
        assert headers["Docker-Content-Digest"] == image.manifest_digest
        assert "sha256:" + hashlib.sha256(body).hexdigest() == image.manifest_digest
        assert headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    status, headers, body = await _get(f"{url}/v2/library/tiny/manifests/1.0", method="HEAD")
    assert status == 200 and body == b"" and headers["Docker-Content-Digest"] == \
        image.manifest_digest
    status, _, by_digest = await _get(f"{url}/v2/library/tiny/manifests/{image.manifest_digest}")
    assert status == 200 and "sha256:" + hashlib.sha256(by_digest).hexdigest() == \
        image.manifest_digest

    manifest = json.loads(by_digest)
    for desc in [manifest["config"], *manifest["layers"]]:
        status, headers, blob = await _get(f"{url}/v2/library/tiny/blobs/{desc['digest']}")
        assert status == 200 and len(blob) == desc["size"]
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"]


async def test_distribution_api_errors(node: tuple[LocalImageService, str]) -> None:
    store, url = node
    image = await store.image_status(REF)
    assert image is not None
    layer = image.layers[0]  # a diff ID: no blob has it
    cases = [
        ("/v2/library/tiny/manifests/2.0", 404, "MANIFEST_UNKNOWN"),
        ("/v2/library/other/manifests/1.0", 404, "MANIFEST_UNKNOWN"),
        (f"/v2/library/tiny/blobs/{layer}", 404, "BLOB_UNKNOWN"),
        # a blob of tiny is not served as a blob of another repository
        (f"/v2/library/other/blobs/{image.id}", 404, "BLOB_UNKNOWN"),
        ("/v2/library/tiny/blobs/sha256:abc", 400, "DIGEST_INVALID"),
        ("/v2/library/tiny/manifests/sha256:abc", 400, "DIGEST_INVALID"),
        ("/v2/Bad_Name/manifests/1.0", 400, "NAME_INVALID"),
    ]
    for path, want_status, want_code in cases:
        status, headers, body = await _get(url + path)
        assert (status, _error_code(body)) == (want_status, want_code), path
        assert headers["Content-Type"].startswith("application/json")


async def test_tokens_image_pull_token_reads_images_only(
        node: tuple[LocalImageService, str]) -> None:
    _, url = node
    for token in ("", "wrong"):
        status, headers, body = await _get(f"{url}/v2/library/tiny/manifests/1.0", token)
        assert status == 401 and _error_code(body) == "UNAUTHORIZED"
        assert headers["WWW-Authenticate"].startswith("Bearer ")
    # the node's own token reads images too; the pull token nothing else
    assert (await _get(f"{url}/v2/library/tiny/manifests/1.0", TOKEN))[0] == 200
    assert (await _get(f"{url}/healthz", PULL_TOKEN))[0] == 401
    assert (await _get(f"{url}/healthz", TOKEN))[0] == 200
    # read-only: no uploads, whatever the token
    assert (await _get(f"{url}/v2/library/tiny/blobs/uploads/", TOKEN, "POST"))[0] in (404, 405)
    assert (await _get(f"{url}/v2/library/tiny/manifests/1.0", TOKEN, "DELETE"))[0] == 405


async def test_second_store_pulls_through_nodes_and_always_downloads_nothing_twice(
        node: tuple[LocalImageService, str], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    a, url = node
    registries = tmp_path / "b.yaml"  # only the nodes: nothing else could serve the image
    registries.write_text('mirrors: {docker.io: {endpoint: ["@nodes"], '
                          'disable_default_endpoint: true}}\n')
    b = _store(tmp_path / "b", registries)

    async def nodes() -> list[str]:
        return ["https://127.0.0.1:1", url]  # a node that is down, then node A

    b.use_nodes(nodes, PULL_TOKEN)
    try:
        assert await b.image_status(REF) is None
        pulled = await b.pull_image(REF)
        want = await a.image_status(REF)
        assert want is not None and pulled.id == want.id
        assert pulled.manifest_digest == want.manifest_digest
        assert b.rootfs_layers(pulled)

        caplog.clear()
        caplog.set_level(logging.INFO, logger="podling.images")
        again = await b.pull_image(REF)  # imagePullPolicy: Always
        assert again.id == pulled.id
        text = caplog.text
        assert "is up to date" in text and "resolved by" in text
        assert "served by" not in text  # no manifest GET, no blob download
    finally:
        await b.close()


async def test_wrong_token_fails_with_unauthorized(
        node: tuple[LocalImageService, str], tmp_path: Path) -> None:
    _, url = node
    registries = tmp_path / "c.yaml"
    registries.write_text('mirrors: {docker.io: {endpoint: ["@nodes"], '
                          'disable_default_endpoint: true}}\n')
    c = _store(tmp_path / "c", registries)

    async def nodes() -> list[str]:
        return [url]

    c.use_nodes(nodes, "ip1.not-this-cluster")
    try:
        with pytest.raises(Exception, match="authentication required"):
            await c.pull_image(REF)
        assert await c.image_status(REF) is None
    finally:
        await c.close()
