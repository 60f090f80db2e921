"""Container root filesystems: overlayfs snapshots of an image's layers (RootfsService)."""

from __future__ import annotations

import asyncio

from .interface import Image
from .service import LocalImageService
from .snapshots import Snapshotter


class SnapshotRootfs:
    """Implements :class:`~podling.images.interface.RootfsService` with a Snapshotter under
    ``root``; the layers come from ``images``. Blocking mount work runs in a thread."""

    def __init__(self, images: LocalImageService, root: str) -> None:
        self._images = images
        self._snapshots = Snapshotter(root)

    async def prepare_rootfs(self, image: Image, key: str) -> str:
        layers = self._images.rootfs_layers(image)
        return await asyncio.to_thread(self._snapshots.prepare, key, layers)

    async def remove_rootfs(self, key: str) -> None:
        await asyncio.to_thread(self._snapshots.remove, key)

    async def list_rootfs(self) -> list[str]:
        return await asyncio.to_thread(self._snapshots.list)
