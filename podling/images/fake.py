"""FakeImageService and FakeRootfs: in-memory ImageService / RootfsService for tests
(docs/architecture.md §5).

The fake keeps two sets of images: the *remote* ones (what its imaginary registry serves) and
the *local* ones (what ``image_status`` / ``list_images`` see). ``pull_image`` copies a remote
image into the local set; references are normalised exactly like the real store
(``busybox`` → ``docker.io/library/busybox:latest``). Test controls::

    images = FakeImageService(remote=["busybox", "nginx:1.27"], local=["pause:3.9"])
    images.fail_pull("nginx:1.27", RegistryUnauthorized("denied"))  # next pull of it raises
    images.fail_next("image_status", ImageError("disk on fire"))    # next call of a method
    images.hold_pulls()          # pulls wait until release_pulls() (to see them in flight)
    images.calls                 # [("pull_image", ("nginx:1.27",)), …] every protocol call
    images.downloads             # normalised refs of the pulls actually executed

Contract shared with LocalImageService (the image conformance suite runs on both): an absent
image's status is None; ``pull_image`` of a reference the registry does not have raises
ManifestNotFound, of an unparsable one InvalidImageName; concurrent pulls of one reference
share one download; ``remove_image`` is idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import replace
from typing import Any, Iterable

from podling.images.errors import ImageError, InvalidImageName, ManifestNotFound
from podling.images.interface import (Image, ImageConfig, ProgressCallback, PullProgress,
                                      RegistryAuth)
from podling.images.refs import parse_reference


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fake_image(ref: str, config: ImageConfig | None = None, size: int = 1024) -> Image:
    """A deterministic Image for ``ref`` (its ID and digests derive from the normalised
    reference, so two fakes agree on them)."""
    parsed = parse_reference(ref)
    name = str(parsed)
    manifest = _digest("manifest:" + name)
    return Image(id=_digest("config:" + name), names=(name,), manifest_digest=manifest,
                 repo_digests=(f"{parsed.name}@{manifest}",),
                 layers=(_digest("layer:" + name),), size=size,
                 config=config or ImageConfig(cmd=["sh"]))


class FakeImageService:
    """ImageService fake with a call log, error injection and de-duplicated pulls."""

    def __init__(self, *, remote: Iterable[str] = (), local: Iterable[str] = ()) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.downloads: list[str] = []
        self._remote: dict[str, Image] = {}
        self._local: dict[str, Image] = {}  # image id -> image
        self._failures: dict[str, list[BaseException]] = {}
        self._pull_failures: dict[str, list[BaseException]] = {}
        self._pulls: dict[str, asyncio.Task[Image]] = {}
        self._gate: asyncio.Event | None = None
        for ref in remote:
            self.add_remote(ref)
        for ref in local:
            self.add_local(ref)

    # -- test controls -------------------------------------------------------------------

    def add_remote(self, ref: str, config: ImageConfig | None = None) -> Image:
        """Make ``ref`` pullable; returns the image a pull will give."""
        image = fake_image(ref, config)
        self._remote[image.names[0]] = image
        return image

    def add_local(self, ref: str, config: ImageConfig | None = None) -> Image:
        """Put ``ref`` in the local store (as if pulled earlier); also pullable."""
        image = self.add_remote(ref, config)
        self._store(image)
        return image

    def fail_pull(self, ref: str, error: BaseException, times: int = 1) -> None:
        """The next ``times`` pulls of ``ref`` (normalised) raise ``error``."""
        self._pull_failures.setdefault(str(parse_reference(ref)), []).extend([error] * times)

    def fail_next(self, method: str, error: BaseException) -> None:
        """The next call of ``method`` raises ``error`` (after being logged, before any
        effect); queued, one per call."""
        self._failures.setdefault(method, []).append(error)

    def hold_pulls(self) -> None:
        """Pulls started from now on wait (in flight) until :meth:`release_pulls`."""
        self._gate = asyncio.Event()

    def release_pulls(self) -> None:
        """Let held pulls finish; later pulls no longer wait."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def in_flight(self) -> list[str]:
        """Normalised references of the pulls running now."""
        return sorted(self._pulls)

    def calls_of(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    # -- ImageService ----------------------------------------------------------------------

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        queued = self._failures.get(method)
        if queued:
            raise queued.pop(0)

    def _store(self, image: Image) -> None:
        for other in list(self._local.values()):  # a tag moves to the newest image
            if other.id != image.id and set(other.names) & set(image.names):
                self._local[other.id] = _renamed(other, [n for n in other.names
                                                         if n not in image.names])
        old = self._local.get(image.id)
        names = tuple(dict.fromkeys((*(old.names if old else ()), *image.names)))
        self._local[image.id] = _renamed(image, names)

    def _find(self, ref: str) -> Image | None:
        if ref in self._local:
            return self._local[ref]
        try:
            parsed = parse_reference(ref)
        except InvalidImageName:
            matches = [i for i in self._local.values() if i.id.removeprefix("sha256:")
                       .startswith(ref) and len(ref) >= 3]
            if len(matches) == 1:
                return matches[0]
            raise
        for image in self._local.values():
            if str(parsed) in image.names or str(parsed) in image.repo_digests:
                return image
            if parsed.digest and f"{parsed.name}@{parsed.digest}" in image.repo_digests:
                return image
        return None

    async def image_status(self, ref: str) -> Image | None:
        """The local image ``ref`` names (tag, name@digest, ID, ID prefix), or None."""
        self._enter("image_status", ref)
        return self._find(ref)

    async def list_images(self) -> list[Image]:
        self._enter("list_images")
        return list(self._local.values())

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None,
                         progress: ProgressCallback | None = None) -> Image:
        """Pull from the fake registry; concurrent pulls of one reference share a task."""
        self._enter("pull_image", ref)
        name = str(parse_reference(ref))
        task = self._pulls.get(name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._pull(name, progress))
            self._pulls[name] = task
            task.add_done_callback(functools.partial(self._pull_done, name))
        return await asyncio.shield(task)

    def _pull_done(self, name: str, task: asyncio.Task[Image]) -> None:
        if self._pulls.get(name) is task:
            del self._pulls[name]
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be waiting any more

    async def _pull(self, name: str, progress: ProgressCallback | None) -> Image:
        self.downloads.append(name)
        await asyncio.sleep(0)  # a pull is never instantaneous: joiners can find it
        if self._gate is not None:
            await self._gate.wait()
        queued = self._pull_failures.get(name)
        if queued:
            raise queued.pop(0)
        image = self._remote.get(name)
        if image is None:
            raise ManifestNotFound(f"failed to pull image {name!r}: manifest unknown")
        if progress is not None:
            progress(PullProgress(image.layers[0], image.size, image.size, "done"))
        self._store(image)
        return self._local[image.id]

    async def remove_image(self, ref: str) -> None:
        """Untag ``ref``, or remove the image named by ID / digest; idempotent."""
        self._enter("remove_image", ref)
        image = self._find(ref)
        if image is None:
            return
        try:
            tag = str(parse_reference(ref))
        except ImageError:
            tag = ""
        remaining = tuple(n for n in image.names if n != tag) if tag in image.names else ()
        if remaining:
            self._local[image.id] = _renamed(image, remaining)
        else:
            del self._local[image.id]


def _renamed(image: Image, names: Iterable[str]) -> Image:
    return replace(image, names=tuple(names))


class FakeRootfs:
    """RootfsService fake: keys map to made-up paths under ``root``; nothing is mounted.

    ``calls`` logs every call; ``fail_next(method, error)`` injects one failure;
    ``prepared`` maps key → image ID."""

    def __init__(self, root: str = "/nonexistent/rootfs") -> None:
        self.root = root
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.prepared: dict[str, str] = {}
        self._failures: dict[str, list[BaseException]] = {}

    def fail_next(self, method: str, error: BaseException) -> None:
        self._failures.setdefault(method, []).append(error)

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        queued = self._failures.get(method)
        if queued:
            raise queued.pop(0)

    async def prepare_rootfs(self, image: Image, key: str) -> str:
        """The path for ``key``; idempotent for the same key and image."""
        self._enter("prepare_rootfs", image.id, key)
        self.prepared[key] = image.id
        return f"{self.root}/{key}"

    async def remove_rootfs(self, key: str) -> None:
        """Forget ``key``; idempotent."""
        self._enter("remove_rootfs", key)
        self.prepared.pop(key, None)

    async def list_rootfs(self) -> list[str]:
        self._enter("list_rootfs")
        return sorted(self.prepared)
