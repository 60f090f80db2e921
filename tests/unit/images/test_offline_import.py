"""The install-time import of the offline images (``python -m podling.images.offline``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from podling.images.build_demo import BuildError, find_busybox
from podling.images.offline import ensure_nginx_debs, import_offline_images
from podling.images.service import ImageStoreConfig, LocalImageService


def _no_mirror(directory: str) -> list[str]:
    raise BuildError("apt-get download nginx nginx-common failed: no route to host")


async def test_busybox_is_imported_without_debian_mirror_and_nginx_reported(
        tmp_path: Path) -> None:
    try:
        find_busybox()
    except BuildError:
        pytest.skip("busybox-static is not installed")
    said: list[str] = []
    problems = await import_offline_images(str(tmp_path), say=said.append, fetch=_no_mirror)
    assert len(problems) == 1 and "nginx:latest" in problems[0] and "no route" in problems[0]
    assert any("busybox:latest: imported" in s for s in said)
    async with LocalImageService(ImageStoreConfig.for_data_dir(str(tmp_path))) as store:
        busybox = await store.image_status("busybox")
        assert busybox is not None and await store.image_status("nginx") is None
        assert os.path.isdir(store.rootfs_layers(busybox)[0])

    said.clear()  # a second run leaves busybox alone and tries nginx again
    problems = await import_offline_images(str(tmp_path), say=said.append, fetch=_no_mirror)
    assert said[0] == "docker.io/library/busybox:latest: already in the store"
    assert len(problems) == 1


def test_debs_are_fetched_once(tmp_path: Path) -> None:
    calls = []

    def fetch(directory: str) -> list[str]:
        calls.append(directory)
        for name in ("nginx_1.22.1-9_amd64.deb", "nginx-common_1.22.1-9_all.deb"):
            Path(directory, name).write_bytes(b"")
        return []

    target = str(tmp_path / "offline" / "debs")
    assert ensure_nginx_debs(target, fetch) == target
    assert ensure_nginx_debs(target, fetch) == target
    assert calls == [target]


async def test_prebuilt_archives_are_imported_instead_of_building(tmp_path: Path) -> None:
    from podling.images.build_demo import LayerBuilder, write_oci_archive
    archives = tmp_path / "archives"
    for name in ("busybox", "nginx"):
        layer = LayerBuilder()
        layer.add_file(f"etc/{name}", name.encode())
        write_oci_archive(archives / f"{name}.tar", f"docker.io/library/{name}:latest",
                          [layer.build()], {"Cmd": ["sh"]}, ["test"])
    said: list[str] = []
    problems = await import_offline_images(str(tmp_path / "data"), say=said.append,
                                           fetch=_no_mirror, archives=str(archives))
    assert problems == [] and sum(": imported (" in s for s in said) == 2
