"""The ImageService protocol (docs/architecture.md §3) and the values it deals in.

The agent uses images only through this module, including the errors it reports
(re-exported from :mod:`.errors`). Digests are ``sha256:<hex>`` strings; references are
normalised (``nginx`` → ``docker.io/library/nginx:latest``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol, runtime_checkable

from .errors import ImageError, InvalidImageName

__all__ = ["Image", "ImageConfig", "ImageError", "ImageService", "InvalidImageName",
           "NodeImageStore", "ProgressCallback", "PullProgress", "RegistryAuth",
           "RootfsService", "StoredBlob", "StoredManifest"]


@dataclass(frozen=True)
class ImageConfig:
    """What the runtime needs from the image config (OCI image-spec ``config``)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """An image in the local store."""

    id: str  # the config digest, like Docker's image ID
    names: tuple[str, ...]  # normalised references (tags and/or name@digest)
    manifest_digest: str
    repo_digests: tuple[str, ...]  # name@sha256:… for each repository it was pulled from
    layers: tuple[str, ...]  # diff IDs (uncompressed layer digests), base first
    size: int  # bytes of the compressed layers plus config
    config: ImageConfig
    os: str = "linux"
    architecture: str = "amd64"


@dataclass(frozen=True)
class PullProgress:
    """One progress report: ``layer`` digest, bytes done of ``total`` (0 if unknown)."""

    layer: str
    done: int
    total: int
    status: str  # "resolving", "downloading", "verifying", "unpacking", "exists", "done"
    endpoint: str = ""  # the registry endpoint serving this blob


ProgressCallback = Callable[[PullProgress], None]


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one pull (from a dockerconfigjson secret or a config.json)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""


class ImageService(Protocol):
    async def image_status(self, ref: str) -> Image | None:
        """The local image for ``ref`` (a tag, a digest or an image ID), or None."""
        ...

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None,
                         progress: ProgressCallback | None = None) -> Image:
        """Resolve ``ref`` at the registry and download what is missing.

        Always asks the registry (the ``Always`` pull policy); concurrent pulls of one
        reference share one download. Raises InvalidImageName or RegistryError."""
        ...

    async def list_images(self) -> list[Image]:
        ...

    async def remove_image(self, ref: str) -> None:
        """Untag ``ref``; the image and its layers go when nothing references them."""
        ...


@dataclass(frozen=True)
class StoredManifest:
    """A manifest kept in the node's store, as served to other nodes."""

    digest: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class StoredBlob:
    """A blob (config or compressed layer) kept in the node's store: its file and size."""

    digest: str
    path: str
    size: int


@runtime_checkable
class NodeImageStore(Protocol):
    """An image service that can act as a node mirror (``@nodes`` in registries.yaml):
    it serves its own images read-only and pulls from the cluster's other nodes."""

    async def stored_manifest(self, repository: str, reference: str) -> StoredManifest | None:
        """The manifest the image named ``repository`` (a distribution name, normalised as
        an image reference: ``library/busybox`` is ``docker.io/library/busybox``) has under
        ``reference`` (a tag or a manifest digest), or None. Raises InvalidImageName."""
        ...

    async def stored_blob(self, repository: str, digest: str) -> StoredBlob | None:
        """Blob ``digest`` of an image named ``repository``, or None."""
        ...

    def use_nodes(self, urls: Callable[[], Awaitable[list[str]]], token: str) -> None:
        """Where ``@nodes`` points from now on: ``urls()`` gives the node API base URLs
        (this node first) before each pull; ``token`` is what they accept."""
        ...

    async def watch_registries(self) -> None:
        """Follow changes of registries.yaml until cancelled (logs each change)."""
        ...


class RootfsService(Protocol):
    """Container root filesystems made from images (overlayfs snapshots)."""

    async def prepare_rootfs(self, image: Image, key: str) -> str:
        """Mount a writable root filesystem of ``image`` for container ``key``; its path.
        Idempotent for the same key and image."""
        ...

    async def remove_rootfs(self, key: str) -> None:
        """Unmount and delete the root filesystem ``key``; idempotent."""
        ...

    async def list_rootfs(self) -> list[str]:
        """Keys of every prepared root filesystem."""
        ...
