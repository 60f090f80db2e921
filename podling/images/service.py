"""``LocalImageService``: the node's image store (docs/architecture.md §3).

Layout under ``ImageStoreConfig.root`` (``<data-dir>/images``)::

    content/   blobs by digest (manifests, configs, compressed layers)  — ContentStore
    layers/    one unpacked directory per diff ID, shared by images     — unpack.py
    images.json, images.lock                                            — metadata.py
    service.lock   held by the first service opened on this root (it cleans leftovers)

Pull (``pull_image``)::

    resolve ref at the registry (mirrors in order) ─▶ manifest for this platform
      ─▶ config (content store, else fetched + verified)
      ─▶ per layer, up to PARALLEL_LAYERS at once:
           layer dir exists  → "exists"
           blob present      → unpack in a thread
           else              → fetch into an ingest → commit → unpack in a thread
      ─▶ store the manifest ─▶ record the image (names, repo digest)

Nothing is recorded before every layer is unpacked, so a failed or killed pull leaves no
image record, no visible partial blob (ingests are discarded) and no partial layer dir
(unpacks happen in ``layers/tmp``). The next pull reuses whatever did get committed.

Concurrency: pulls of one normalised reference (with the same credentials) share one task;
every caller gets its result, and each caller's progress callback sees the reports from the
moment it joined. A caller that is cancelled does not cancel the shared pull. Blobs and
layers of pulls in progress are leased, so ``garbage_collect`` and ``remove_image`` in this
process leave them alone; layers that are lower dirs of a mounted overlay are never removed.
(A GC in *another* process may race a pull here; run GC where the agent runs.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Iterable, Iterator

from podling.images.archive import ArchiveImage, read_archive
from podling.images import store_mirror
from podling.images.config_watch import RegistriesWatch
from podling.images.content import ContentStore
from podling.images.credentials import DockerConfig, load_docker_config
from podling.images.errors import ImageError, ImageNotPresent, InvalidArchive
from podling.images.interface import (Image, ImageConfig, ProgressCallback, PullProgress,
                                      RegistryAuth, StoredBlob, StoredManifest)
from podling.images.metadata import (ImageRecord, LayerRecord, MetadataStore, manifest_json,
                                     parse_image_config, record_from)
from podling.images.platforms import Platform, host_platform
from podling.images.refs import Reference, parse_reference
from podling.images.registry import RegistryClient
from podling.images.registry_http import ClientOptions
from podling.images.tarsafe import force_rmtree
from podling.images.unpack import DEFAULT_MAX, cleanup_stale_unpacks, layer_path, unpack_layer
from podling.util.mounts import mount_table

log = logging.getLogger(__name__)

PARALLEL_LAYERS = 3
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageStoreConfig:
    """Where and how the store works. ``registries_path``: a k3s registries.yaml (missing
    file = no mirrors); ``docker_config_paths``: docker ``config.json`` files consulted for
    credentials (missing ones are skipped)."""

    root: str
    registries_path: str | None = None
    docker_config_paths: tuple[str, ...] = ()
    max_layer_bytes: int = DEFAULT_MAX
    platform: Platform | None = None
    client_options: ClientOptions | None = None
    durable: bool = True  # sync unpacked layers to disk before publishing them

    @classmethod
    def for_data_dir(cls, data_dir: str, **kw: Any) -> "ImageStoreConfig":
        """The node's layout: ``<data-dir>/images`` and ``<data-dir>/registries.yaml``."""
        kw.setdefault("registries_path", os.path.join(data_dir, "registries.yaml"))
        return cls(root=os.path.join(data_dir, "images"), **kw)


@dataclass(frozen=True)
class GCResult:
    images: tuple[str, ...] = ()  # IDs of removed images
    blobs: int = 0
    layers: int = 0
    bytes_freed: int = 0


@dataclass
class _Pull:
    task: asyncio.Task[Image]
    listeners: list[ProgressCallback] = field(default_factory=list)


class LocalImageService:
    """The ImageService of one node (see the module docstring). Async methods must run on
    one event loop; call :meth:`close` when done (it closes the registry client)."""

    def __init__(self, config: ImageStoreConfig) -> None:
        self.config = config
        self.platform = config.platform or host_platform()
        os.makedirs(config.root, mode=0o700, exist_ok=True)
        self.layers_root = os.path.join(config.root, "layers")
        self._owner_fd = self._take_ownership()
        try:
            self.content = ContentStore(os.path.join(config.root, "content"))
            if self._owner_fd is not None:
                cleanup_stale_unpacks(self.layers_root)
            self.metadata = MetadataStore(config.root)
        except BaseException:
            # no close() will ever run for a half-built service: release the lock here
            fd, self._owner_fd = self._owner_fd, None
            if fd is not None:
                os.close(fd)
            raise
        self._client: RegistryClient | None = None
        self.registries = RegistriesWatch(config.registries_path)
        self._node_urls: Callable[[], Awaitable[list[str]]] | None = None
        self._node_token = ""
        self._pulls: dict[tuple[str, RegistryAuth | None], _Pull] = {}
        self._leases: collections.Counter[str] = collections.Counter()
        self._configs: dict[str, ImageConfig] = {}
        self._gc_lock = asyncio.Lock()

    def _take_ownership(self) -> int | None:
        fd = os.open(os.path.join(self.config.root, "service.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd  # owned by self._owner_fd, closed once by close()

    async def close(self) -> None:
        """Close the registry client and release the store; idempotent."""
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.close()
        finally:
            fd, self._owner_fd = self._owner_fd, None
            if fd is not None:
                os.close(fd)

    async def __aenter__(self) -> "LocalImageService":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- queries -------------------------------------------------------------------------

    async def image_status(self, ref: str) -> Image | None:
        """The local image ``ref`` names (tag, digest, ID or unique ID prefix), or None."""
        record = self.metadata.get(ref)
        return None if record is None else await self._image(record)

    async def list_images(self) -> list[Image]:
        return [await self._image(r) for r in self.metadata.list()]

    async def image_config(self, ref: str) -> ImageConfig:
        """The runtime-relevant config of a local image; ImageNotPresent if absent."""
        return (await self._require(ref)).config

    def rootfs_layers(self, image: Image) -> list[str]:
        """The image's layer directories, base first (for ``Snapshotter.prepare``).

        Raises ImageNotPresent when a layer directory is missing (pull the image again)."""
        dirs = [layer_path(self.layers_root, d) for d in image.layers]
        for d, diff_id in zip(dirs, image.layers):
            if not os.path.isdir(d):
                raise ImageNotPresent(f"layer {diff_id} of image {image.id} is missing")
        return dirs

    async def _require(self, ref: str) -> Image:
        image = await self.image_status(ref)
        if image is None:
            raise ImageNotPresent(f"image {ref!r} is not present")
        return image

    async def _image(self, record: ImageRecord) -> Image:
        config = self._configs.get(record.id)
        if config is None:
            data = await asyncio.to_thread(self.content.read_bytes, record.id)
            config = self._configs[record.id] = parse_image_config(json.loads(data))
        return Image(id=record.id, names=record.names, manifest_digest=record.manifest_digest,
                     repo_digests=record.repo_digests, layers=record.diff_ids,
                     size=record.size, config=config, os=record.os,
                     architecture=record.architecture)

    # ---- pulling -------------------------------------------------------------------------

    async def ensure_image(self, ref: str, policy: str, auth: RegistryAuth | None = None,
                           progress: ProgressCallback | None = None) -> tuple[Image, bool]:
        """Apply a Kubernetes ``imagePullPolicy``; returns (image, whether it was pulled).

        Always: resolve at the registry, download only missing blobs. IfNotPresent: pull
        only when absent. Never: ImageNotPresent when absent."""
        if policy not in PULL_POLICIES:
            raise ImageError(f"unknown image pull policy {policy!r}")
        if policy != "Always":
            image = await self.image_status(ref)
            if image is not None:
                return image, False
            if policy == "Never":
                raise ImageNotPresent(
                    f'Container image "{ref}" is not present with pull policy of Never')
        return await self.pull_image(ref, auth, progress), True

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None,
                         progress: ProgressCallback | None = None) -> Image:
        """Resolve ``ref`` at the registry and download what is missing (see the module
        docstring). Raises InvalidImageName, RegistryError (and subclasses),
        DigestMismatch, UnsafeLayer."""
        parsed = parse_reference(ref)
        key = (str(parsed), auth)
        pull = self._pulls.get(key)
        if pull is None:
            pull = _Pull(task=asyncio.get_running_loop().create_task(
                self._pull(parsed, auth, key)))
            self._pulls[key] = pull
            pull.task.add_done_callback(lambda t, k=key: self._pull_done(k, t))
        if progress is not None:
            pull.listeners.append(progress)
        try:
            return await asyncio.shield(pull.task)
        finally:
            if progress is not None and progress in pull.listeners:
                pull.listeners.remove(progress)

    def _pull_done(self, key: tuple[str, RegistryAuth | None], task: asyncio.Task) -> None:
        if self._pulls.get(key) is not None and self._pulls[key].task is task:
            del self._pulls[key]
        if not task.cancelled():
            task.exception()  # retrieved: a pull nobody waits for any more is not an error

    def _reporter(self, key: tuple[str, RegistryAuth | None]) -> ProgressCallback:
        def report(p: PullProgress) -> None:
            pull = self._pulls.get(key)
            for listener in list(pull.listeners if pull else ()):
                try:
                    listener(p)
                except Exception:  # a broken progress display must not break the pull
                    log.exception("progress callback failed")
        return report

    async def _registry(self) -> RegistryClient:
        """The registry client, with the registries.yaml in force now (re-read when it
        changed) and ``@nodes`` standing for the cluster's nodes as they are now."""
        self.registries.check()
        registries = self.registries.current()
        if self._node_urls is not None and registries.uses_nodes():
            registries = registries.with_nodes(await self._node_urls(), self._node_token)
        if self._client is None:
            self._client = RegistryClient(registries, credentials=self._docker_configs(),
                                          options=self.config.client_options,
                                          platform=self.platform)
        elif self._client.config != registries:
            self._client.set_config(registries)
        return self._client

    # ---- the node mirror (NodeImageStore) ------------------------------------------------

    def use_nodes(self, urls: Callable[[], Awaitable[list[str]]], token: str) -> None:
        """``@nodes`` means ``await urls()`` from now on, with ``token`` sent to them."""
        self._node_urls, self._node_token = urls, token

    async def watch_registries(self) -> None:
        """Log the mirrors in force, then follow registries.yaml until cancelled."""
        try:
            log.info("registry mirrors in force (%s): %s", self.registries.path,
                     self.registries.current().describe())
        except ImageError as e:
            log.warning("%s", e)
        await self.registries.run()

    async def stored_manifest(self, repository: str, reference: str) -> StoredManifest | None:
        return await asyncio.to_thread(store_mirror.stored_manifest, self.metadata,
                                       self.content, repository, reference)

    async def stored_blob(self, repository: str, digest: str) -> StoredBlob | None:
        return await asyncio.to_thread(store_mirror.stored_blob, self.metadata, self.content,
                                       repository, digest)

    def _docker_configs(self) -> list[DockerConfig]:
        out = []
        for path in self.config.docker_config_paths:
            if os.path.exists(path):
                out.append(load_docker_config(path))
        return out

    async def _pull(self, ref: Reference, auth: RegistryAuth | None,
                    key: tuple[str, RegistryAuth | None]) -> Image:
        report = self._reporter(key)
        report(PullProgress(layer="", done=0, total=0, status="resolving"))
        client = await self._registry()
        present = await self._up_to_date(client, ref, auth)
        if present is not None:
            for layer in present.layers:
                report(PullProgress(layer.digest, layer.size, layer.size, "exists"))
            return await self._image(present)
        try:
            resolved = await client.resolve(ref, auth=auth)
            manifest = manifest_json(resolved.manifest_bytes, str(ref))
            config_bytes = await self._config_blob(client, ref, manifest, auth)
            record = record_from(str(ref), manifest, resolved.manifest_digest,
                                 resolved.media_type, config_bytes)
            with self._leased(record.blobs() | set(record.diff_ids)):
                await self._fetch_layers(client, ref, record.layers, auth, report)
                await asyncio.to_thread(self.content.put_bytes, resolved.manifest_bytes,
                                        resolved.manifest_digest)
                names, repo = _names_for(ref, resolved.repo_digest)
                stored = await asyncio.to_thread(self.metadata.add, _with_names(
                    record, names, repo))
        except ImageError as e:
            raise type(e)(f"failed to pull image {str(ref)!r}: {e}") from e
        except OSError as e:
            raise ImageError(f"failed to pull image {str(ref)!r}: {e}") from e
        log.info("pulled %s (%s) from %s", ref, stored.id, resolved.endpoint)
        return await self._image(stored)

    async def _up_to_date(self, client: RegistryClient, ref: Reference,
                          auth: RegistryAuth | None) -> ImageRecord | None:
        """The local image of ``ref`` when the registry's answer to ``HEAD`` of the manifest
        is a digest this image has (so nothing is downloaded), else None."""
        record = await asyncio.to_thread(
            self.metadata.get_reference, ref.name, ref.tag, ref.digest)
        if record is None:
            return None
        try:
            digest, endpoint = await client.head_manifest(ref, auth=auth)
        except ImageError as e:
            log.info("resolving %s: %s; fetching the manifest instead", ref, e)
            return None
        if digest != record.manifest_digest and f"{ref.name}@{digest}" not in \
                record.repo_digests:
            return None
        log.info("%s is up to date (%s, resolved by %s)", ref, digest, endpoint)
        return record

    async def _config_blob(self, client: RegistryClient, ref: Reference,
                           manifest: dict[str, Any], auth: RegistryAuth | None) -> bytes:
        desc = manifest.get("config") or {}
        digest = str(desc.get("digest", ""))
        if digest and await asyncio.to_thread(self._has_good_blob, digest):
            return await asyncio.to_thread(self.content.read_bytes, digest)
        data = await client.fetch_blob_bytes(ref, digest, desc.get("size"), auth=auth)
        await asyncio.to_thread(self.content.put_bytes, data, digest)
        return data

    async def _fetch_layers(self, client: RegistryClient, ref: Reference,
                            layers: Iterable[LayerRecord], auth: RegistryAuth | None,
                            report: ProgressCallback) -> None:
        limit = asyncio.Semaphore(PARALLEL_LAYERS)

        async def one(layer: LayerRecord) -> None:
            async with limit:
                await self._fetch_layer(client, ref, layer, auth, report)

        tasks = [asyncio.ensure_future(one(layer)) for layer in layers]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _fetch_layer(self, client: RegistryClient, ref: Reference, layer: LayerRecord,
                           auth: RegistryAuth | None, report: ProgressCallback) -> None:
        if os.path.isdir(layer_path(self.layers_root, layer.diff_id)):
            report(PullProgress(layer.digest, layer.size, layer.size, "exists"))
            return
        endpoint = ""
        if await asyncio.to_thread(self._has_good_blob, layer.digest):
            report(PullProgress(layer.digest, layer.size, layer.size, "exists"))
        else:
            with self.content.ingest(layer.digest, layer.size) as ingest:
                result = await client.fetch_blob(ref, layer.digest, ingest, layer.size,
                                                 report, auth=auth)
                await asyncio.to_thread(ingest.commit)
            endpoint = result.endpoint
        report(PullProgress(layer.digest, layer.size, layer.size, "unpacking", endpoint))
        await self._unpack(layer)
        report(PullProgress(layer.digest, layer.size, layer.size, "done", endpoint))

    def _has_good_blob(self, digest: str) -> bool:
        """True if the blob is stored and intact; a corrupt one is deleted (re-fetched)."""
        if not self.content.has(digest):
            return False
        try:
            self.content.verify(digest)
        except ImageError as e:
            log.warning("deleting corrupt blob %s: %s", digest, e)
            self.content.delete(digest)
            return False
        return True

    async def _unpack(self, layer: LayerRecord) -> None:
        await asyncio.to_thread(
            unpack_layer, self.content.path(layer.digest), self.layers_root,
            media_type=layer.media_type, expected_diff_id=layer.diff_id,
            max_bytes=self.config.max_layer_bytes, durable=self.config.durable)

    @contextlib.contextmanager
    def _leased(self, items: set[str]) -> Iterator[None]:
        """Protect ``items`` (digests, diff IDs) from removal while the block runs."""
        self._leases.update(items)
        try:
            yield
        finally:
            self._leases.subtract(items)
            for item in items:
                if self._leases[item] <= 0:
                    del self._leases[item]

    # ---- import --------------------------------------------------------------------------

    async def import_archive(self, path: str, *, base_name: str | None = None) -> list[Image]:
        """Import a docker-save archive, an OCI archive or an OCI layout directory; every
        blob is verified against its digest, names are normalised. Returns the images.

        Raises InvalidArchive, DigestMismatch, UnsafeLayer."""
        archived = await asyncio.to_thread(read_archive, path, base_name=base_name)
        out = []
        for item in archived:
            out.append(await self._import_one(item))
        return out

    async def _import_one(self, item: ArchiveImage) -> Image:
        names = []
        for name in item.names:
            try:
                names.append(str(parse_reference(name)))
            except ImageError as e:
                raise InvalidArchive(f"image name {name!r} in the archive: {e}") from e
        manifest = manifest_json(item.manifest_bytes, "archive")
        record = record_from("archive", manifest, item.manifest_digest, item.manifest_media_type,
                              item.config_bytes)
        with self._leased(record.blobs() | set(record.diff_ids)):
            await asyncio.to_thread(self.content.put_bytes, item.config_bytes,
                                    item.config_digest)
            for blob, layer in zip(item.layers, record.layers):
                if not os.path.isdir(layer_path(self.layers_root, layer.diff_id)):
                    if not self.content.has(blob.digest):
                        await asyncio.to_thread(self._copy_blob, blob)
                    await self._unpack(layer)
            await asyncio.to_thread(self.content.put_bytes, item.manifest_bytes,
                                    item.manifest_digest)
            stored = await asyncio.to_thread(self.metadata.add,
                                             _with_names(record, tuple(names), ()))
        return await self._image(stored)

    def _copy_blob(self, blob: Any) -> None:
        with self.content.ingest(blob.digest, blob.size) as ingest, blob.open() as src:
            while chunk := src.read(_CHUNK):
                ingest.write(chunk)
            ingest.commit()

    # ---- removal and garbage collection --------------------------------------------------

    async def remove_image(self, ref: str) -> None:
        """Untag ``ref`` (by tag), or remove the image (by ID, ID prefix or digest); when
        the image goes, its blobs and layers go unless another image uses them.
        Idempotent: nothing named ``ref`` is not an error."""
        async with self._gc_lock:
            record, removed = await asyncio.to_thread(self.metadata.remove_name, ref)
            if record is not None and removed:
                self._configs.pop(record.id, None)
                await asyncio.to_thread(self._sweep)

    async def garbage_collect(self, keep: Iterable[str] = (), *,
                              dangling_only: bool = False) -> GCResult:
        """Remove every image whose ID is not in ``keep`` (the images in use; with
        ``dangling_only`` only untagged ones), then every blob and layer directory no
        remaining image references (pulls in progress and mounted layers excepted)."""
        keep = set(keep)
        async with self._gc_lock:
            removed = []
            for record in self.metadata.list():
                if record.id in keep or (dangling_only and record.names):
                    continue
                if await asyncio.to_thread(self.metadata.delete, record.id):
                    self._configs.pop(record.id, None)
                    removed.append(record.id)
            blobs, layers, freed = await asyncio.to_thread(self._sweep)
        return GCResult(tuple(removed), blobs, layers, freed)

    def _sweep(self) -> tuple[int, int, int]:
        """Delete unreferenced blobs and layer dirs; returns (blobs, layers, bytes)."""
        records = self.metadata.list()
        blobs = set().union(*(r.blobs() for r in records)) | set(self._leases)
        diff_ids = {d for r in records for d in r.diff_ids} | set(self._leases)
        freed = n_blobs = n_layers = 0
        for digest in self.content.digests():
            if digest not in blobs:
                freed += _size_or_zero(self.content.path(digest))
                self.content.delete(digest)
                n_blobs += 1
        mounted = _mounted_lower_dirs()
        parent = os.path.join(self.layers_root, "sha256")
        for name in os.listdir(parent) if os.path.isdir(parent) else ():
            path = os.path.join(parent, name)
            if f"sha256:{name}" in diff_ids or path in mounted:
                continue
            force_rmtree(path)
            n_layers += 1
        return n_blobs, n_layers, freed


# ---- pure helpers ------------------------------------------------------------------------

def _names_for(ref: Reference, repo_digest: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    repo = (f"{ref.name}@{repo_digest}",) if repo_digest else ()
    if ref.digest:
        return (f"{ref.name}@{ref.digest}",), repo
    return (f"{ref.name}:{ref.tag}",), repo


def _with_names(record: ImageRecord, names: tuple[str, ...],
                repo_digests: tuple[str, ...]) -> ImageRecord:
    return replace(record, names=names, repo_digests=repo_digests)


def _size_or_zero(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mounted_lower_dirs() -> set[str]:
    """Every overlay lower dir of a mount visible in this mount namespace."""
    out: set[str] = set()
    for _, fstype, options in mount_table():
        if fstype != "overlay":
            continue
        for opt in options.split(","):
            if opt.startswith("lowerdir="):
                out.update(os.path.normpath(p) for p in opt[len("lowerdir="):].split(":"))
    return out
