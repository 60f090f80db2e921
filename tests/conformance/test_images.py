"""The ImageService conformance suite against FakeImageService and LocalImageService.

The real variant pulls from a Debian ``docker-registry`` on 127.0.0.1 holding the offline
busybox image (built once per session from busybox-static) under two names. A small counting
proxy in front of it counts manifest requests, which is how the suite sees that concurrent
pulls share one resolve. No root needed; everything listens on 127.0.0.1 and is stopped after
each test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

pytest.register_assert_rewrite("podling.images.testing.conformance")

from podling.images import build_demo  # noqa: E402
from podling.images.fake import FakeImageService  # noqa: E402
from podling.images.interface import ImageService  # noqa: E402
from podling.images.localregistry import LocalRegistry  # noqa: E402
from podling.images.platforms import host_platform  # noqa: E402
from podling.images.refs import parse_reference  # noqa: E402
from podling.images.registry import RegistryClient  # noqa: E402
from podling.images.registry_http import ClientOptions  # noqa: E402
from podling.images.service import ImageStoreConfig, LocalImageService  # noqa: E402
from podling.images.testing.conformance import CHECKS, Check  # noqa: E402

FAST = ClientOptions(retries=1, backoff=0.01, backoff_max=0.05, connect_timeout=5)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "upgrade"}


class FakeHarness:
    def __init__(self) -> None:
        self.fake = FakeImageService(remote=["busybox", "example.com/other:v1"])
        self.service: ImageService = self.fake
        self.present, self.other = "busybox", "example.com/other:v1"
        self.missing = "nosuch/image:latest"

    async def resolves(self) -> int:
        return len(self.fake.downloads)


class CountingProxy:
    """Forwards every request to ``upstream``; counts the manifest requests."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.manifest_requests = 0
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        if "/manifests/" in request.path:
            self.manifest_requests += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         headers=headers, data=await request.read(),
                                         allow_redirects=False) as up:
            out = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP})
            await out.prepare(request)
            async for chunk in up.content.iter_chunked(1 << 16):
                await out.write(chunk)
            await out.write_eof()
            return out

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


class RealHarness:
    def __init__(self, root: Path, registry: LocalRegistry, proxy: CountingProxy,
                 host: str) -> None:
        self.proxy = proxy
        self.service: ImageService = LocalImageService(ImageStoreConfig(
            root=str(root / "images"), platform=host_platform(), client_options=FAST,
            durable=False))
        self.present = f"{host}/library/busybox:latest"
        self.other = f"{host}/tools/other:v1"
        self.missing = f"{host}/library/nosuch:latest"

    async def resolves(self) -> int:
        return self.proxy.manifest_requests

    async def close(self) -> None:
        assert isinstance(self.service, LocalImageService)
        await self.service.close()


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not os.access("/usr/bin/docker-registry", os.X_OK):
        pytest.skip("needs Debian's docker-registry")
    try:
        return str(build_demo.build_busybox(tmp_path_factory.mktemp("demo") / "busybox.tar"))
    except build_demo.BuildError as e:
        pytest.skip(f"cannot build the busybox image here: {e}")


async def _real_harness(root: Path, archive: str) -> AsyncIterator[RealHarness]:
    reg = LocalRegistry(root / "registry")
    await reg.start()
    proxy = CountingProxy(reg.url)
    harness = None
    try:
        async with RegistryClient(options=FAST) as client:
            for name in ("library/busybox:latest", "tools/other:v1"):
                await client.push_oci_layout(archive, parse_reference(f"{reg.host}/{name}"))
        host = await proxy.start()
        harness = RealHarness(root, reg, proxy, host)
        yield harness
    finally:
        if harness is not None:
            await harness.close()
        await proxy.stop()
        await reg.stop()


@pytest.fixture(params=["fake", "local"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "fake":
        yield FakeHarness()
        return
    archive = request.getfixturevalue("busybox_archive")
    async for real in _real_harness(tmp_path, archive):
        yield real


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_image_conformance(check: Check, harness: FakeHarness | RealHarness) -> None:
    await check(harness)  # type: ignore[arg-type]
