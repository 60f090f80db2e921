"""FakeImageService's and FakeRootfs's test controls (the ImageService behaviour itself is in
the conformance suite, tests/conformance/test_images.py)."""

from __future__ import annotations

import asyncio

import pytest

from podling.images.errors import ImageError, RegistryUnauthorized
from podling.images.fake import FakeImageService, FakeRootfs, fake_image
from podling.images.interface import ImageConfig


async def test_local_images_are_present_and_remote_ones_pullable() -> None:
    images = FakeImageService(remote=["nginx"], local=["busybox"])
    assert (await images.image_status("busybox")).names == (  # type: ignore[union-attr]
        "docker.io/library/busybox:latest",)
    assert await images.image_status("nginx") is None
    pulled = await images.pull_image("docker.io/library/nginx")
    assert pulled == fake_image("nginx")
    assert images.downloads == ["docker.io/library/nginx:latest"]


@pytest.mark.parametrize("times", [1, 2])
async def test_fail_pull_fails_the_next_pulls_of_that_reference(times: int) -> None:
    images = FakeImageService(remote=["busybox", "nginx"])
    images.fail_pull("busybox:latest", RegistryUnauthorized("denied"), times=times)
    await images.pull_image("nginx")  # other references are not affected
    for _ in range(times):
        with pytest.raises(RegistryUnauthorized, match="denied"):
            await images.pull_image("busybox")
    assert await images.image_status("busybox") is None
    await images.pull_image("busybox")
    assert await images.image_status("busybox") is not None


async def test_fail_next_is_logged_then_raised_once() -> None:
    images = FakeImageService(local=["busybox"])
    images.fail_next("image_status", ImageError("disk"))
    with pytest.raises(ImageError, match="disk"):
        await images.image_status("busybox")
    assert await images.image_status("busybox") is not None
    assert images.calls_of("image_status") == [("busybox",), ("busybox",)]


async def test_held_pulls_are_in_flight_until_released() -> None:
    images = FakeImageService(remote=["busybox"])
    images.hold_pulls()
    pulls = [asyncio.ensure_future(images.pull_image("busybox")) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert images.in_flight() == ["docker.io/library/busybox:latest"]
    assert not any(p.done() for p in pulls)
    images.release_pulls()
    results = await asyncio.wait_for(asyncio.gather(*pulls), 5)
    assert len({r.id for r in results}) == 1
    assert images.downloads == ["docker.io/library/busybox:latest"]
    assert images.in_flight() == []


async def test_an_always_pull_gets_what_the_registry_has_now() -> None:
    images = FakeImageService(local=["busybox"])
    images.add_remote("busybox", config=ImageConfig(cmd=["new"]))
    assert (await images.image_status("busybox")).config.cmd == ["sh"]  # type: ignore[union-attr]
    await images.pull_image("busybox")
    assert (await images.image_status("busybox")).config.cmd == ["new"]  # type: ignore[union-attr]


async def test_fake_rootfs_log_and_idempotence() -> None:
    rootfs = FakeRootfs("/r")
    image = fake_image("busybox")
    assert await rootfs.prepare_rootfs(image, "k") == "/r/k"
    assert await rootfs.prepare_rootfs(image, "k") == "/r/k"
    assert await rootfs.list_rootfs() == ["k"]
    await rootfs.remove_rootfs("k")
    await rootfs.remove_rootfs("k")
    assert await rootfs.list_rootfs() == []
    rootfs.fail_next("prepare_rootfs", ImageError("no space"))
    with pytest.raises(ImageError, match="no space"):
        await rootfs.prepare_rootfs(image, "k2")
    assert [c[0] for c in rootfs.calls] == ["prepare_rootfs"] * 2 + ["list_rootfs"] + \
        ["remove_rootfs"] * 2 + ["list_rootfs", "prepare_rootfs"]
