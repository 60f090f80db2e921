"""Read image archives for import: ``docker save`` archives, OCI archives, OCI layout dirs.

:func:`read_archive` parses and checks an archive and returns one :class:`ArchiveImage` per
image it names; nothing is written anywhere (the image service stores what it imports).

Supported inputs (detected, not guessed from the file name):

* an **OCI image layout directory** (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``);
* an **OCI archive**: a tar (optionally gzip/bz2/xz compressed) of such a layout — this is
  what ``build_demo``, ``skopeo copy oci-archive:`` and Docker ≥ 25 ``save`` write;
* a **docker save archive** (``manifest.json`` + ``repositories``, ``<id>/layer.tar`` or
  ``blobs/sha256/<hex>`` layers, ``<id>.json`` config), as a tar or an unpacked directory.
  When an archive is both (Docker ≥ 25), the OCI index wins: it keeps the original manifest.

Names (tags) are returned as written in the archive; the importer normalises them with the
reference parser (``busybox:latest`` → ``docker.io/library/busybox:latest``). The rules:

* docker save: every ``RepoTags`` entry of the image's ``manifest.json`` item;
* OCI: the ``io.containerd.image.name`` annotation of the index entry, if present;
  otherwise ``org.opencontainers.image.ref.name`` if it is a full reference (contains ``/``
  or ``:`` or ``@``); a *bare* ref.name such as ``latest`` is a tag and becomes
  ``f"{base_name}:{tag}"`` when the caller passes ``base_name`` (like containerd's
  ``--base-name``), else it is ignored and the image is imported untagged (by digest only).

Verification: the index, manifest and config are small and are verified against their
digests here (``DigestMismatch``). Layers are verified while they are read:
:meth:`ArchiveBlob.open` returns a reader that raises ``DigestMismatch`` at end of file if
the bytes do not hash to the digest (or size) they were named by — the importer must read
each layer to EOF (it does, to store it). For docker-save archives the layer digests are
computed here (the format has none to verify), so reading such an archive hashes its layers
once.

Malformed input — a missing or oversized JSON document, a reference that escapes the archive
(``../x``, ``/etc/x``), a symlink loop, an unsupported media type or schema — raises
``InvalidArchive``. A nested index (multi-platform) resolves to this node's linux platform.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from podling.images.archive_source import (DirSource, Source, TarSource, bounded_json,
                                           hash_stream, host_arch, open_source)
from podling.images.errors import DigestMismatch, InvalidArchive

__all__ = ["ArchiveBlob", "ArchiveImage", "read_archive", "Source", "DirSource", "TarSource"]

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
ANN_REF_NAME = "org.opencontainers.image.ref.name"
ANN_CONTAINERD_NAME = "io.containerd.image.name"
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class ArchiveBlob:
    """One layer of an archive image. ``open()`` returns a fresh binary reader each call;
    the reader raises ``DigestMismatch`` at EOF if the content does not match."""

    digest: str
    media_type: str
    size: int
    opener: Callable[[], BinaryIO] = field(repr=False, compare=False)

    def open(self) -> BinaryIO:
        """A new reader of the blob's bytes (verified against ``digest``/``size`` at EOF)."""
        raw = _VerifyingReader(self.opener(), self.digest, self.size)
        return io.BufferedReader(raw, 1 << 20)  # type: ignore[return-value]


@dataclass(frozen=True)
class ArchiveImage:
    """An image found in an archive, ready for the importer to store."""

    names: tuple[str, ...]
    manifest_bytes: bytes
    manifest_media_type: str
    config_bytes: bytes
    layers: tuple[ArchiveBlob, ...]

    @property
    def manifest_digest(self) -> str:
        return _sha256(self.manifest_bytes)

    @property
    def config_digest(self) -> str:
        return _sha256(self.config_bytes)


class _VerifyingReader(io.RawIOBase):
    """Hashes what passes through; checks digest and size when the source reaches EOF."""

    def __init__(self, raw: BinaryIO, digest: str, size: int) -> None:
        super().__init__()
        self._raw, self._digest, self._size = raw, digest, size
        self._hash = hashlib.sha256()
        self._count = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self._raw.read(len(buf))
        if not data:
            self._check()
            return 0
        self._hash.update(data)
        self._count += len(data)
        if self._count > self._size:
            raise DigestMismatch(f"blob {self._digest} is larger than its size {self._size}")
        buf[:len(data)] = data
        return len(data)

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = "sha256:" + self._hash.hexdigest()
        if self._count != self._size or actual != self._digest:
            raise DigestMismatch(
                f"blob {self._digest} ({self._size} bytes) read as {actual} "
                f"({self._count} bytes)")

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_archive(path: str, *, base_name: str | None = None) -> list[ArchiveImage]:
    """Parse the archive or layout at ``path``; returns its images in archive order.

    Blocking (file I/O and hashing): call it from a thread in async code. The returned
    blobs reopen ``path`` on ``open()``, so the file must stay in place until imported.
    Raises ``InvalidArchive`` (malformed/unsafe) or ``DigestMismatch``."""
    source = open_source(path)
    try:
        if source.exists("oci-layout") and source.exists("index.json"):
            return _read_oci(source, base_name)
        if source.exists("manifest.json"):
            return _read_docker(source)
    finally:
        source.close_index()
    raise InvalidArchive(f"{path}: neither an OCI layout (oci-layout, index.json) "
                         "nor a docker save archive (manifest.json)")


# ---------------------------------------------------------------------------- OCI


def _read_oci(source: Source, base_name: str | None) -> list[ArchiveImage]:
    layout = bounded_json(source, "oci-layout")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise InvalidArchive(f"unsupported oci-layout {layout!r}")
    index = bounded_json(source, "index.json")
    images = []
    for desc in _descriptors(index, "index.json"):
        names = _oci_names(desc.get("annotations") or {}, base_name)
        images.append(_oci_image(source, desc, names, depth=0))
    return images


def _descriptors(index: object, where: str) -> list[dict]:
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArchive(f"{where}: not an image index (no manifests list)")
    descs = index["manifests"]
    for d in descs:
        if not isinstance(d, dict):
            raise InvalidArchive(f"{where}: a manifest descriptor is not an object")
        _check_descriptor(d, where)
    return descs


def _check_descriptor(desc: dict, where: str) -> None:
    digest, size = desc.get("digest"), desc.get("size")
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise InvalidArchive(f"{where}: invalid or unsupported digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArchive(f"{where}: invalid size {size!r} for {digest}")
    if not isinstance(desc.get("mediaType", ""), str):
        raise InvalidArchive(f"{where}: invalid mediaType for {digest}")


def _oci_names(annotations: dict, base_name: str | None) -> tuple[str, ...]:
    full = annotations.get(ANN_CONTAINERD_NAME)
    if isinstance(full, str) and full:
        return (full,)
    ref = annotations.get(ANN_REF_NAME)
    if not isinstance(ref, str) or not ref:
        return ()
    if any(c in ref for c in "/:@"):
        return (ref,)
    if TAG_RE.match(ref) and base_name:
        return (f"{base_name}:{ref}",)
    return ()


def _blob_path(digest: str) -> str:
    alg, hexpart = digest.split(":", 1)
    return f"blobs/{alg}/{hexpart}"


def _read_small_blob(source: Source, desc: dict) -> bytes:
    digest = desc["digest"]
    data = source.read_bytes(_blob_path(digest))
    if len(data) != desc["size"] or _sha256(data) != digest:
        raise DigestMismatch(f"blob {digest}: content does not match its descriptor")
    return data


def _oci_image(source: Source, desc: dict, names: tuple[str, ...], depth: int) -> ArchiveImage:
    media_type = desc.get("mediaType", "")
    data = _read_small_blob(source, desc)
    doc = _loads(data, desc["digest"])
    media_type = media_type or doc.get("mediaType", "") or (
        MT_OCI_MANIFEST if "layers" in doc else "")
    if media_type in INDEX_TYPES:
        if depth >= MAX_INDEX_DEPTH:
            raise InvalidArchive(f"index {desc['digest']}: nested too deeply")
        return _oci_image(source, _pick_platform(doc, desc["digest"]), names, depth + 1)
    if media_type not in MANIFEST_TYPES:
        raise InvalidArchive(f"{desc['digest']}: unsupported media type {media_type!r}")
    config_desc = doc.get("config")
    layers = doc.get("layers")
    if not isinstance(config_desc, dict) or not isinstance(layers, list):
        raise InvalidArchive(f"manifest {desc['digest']}: missing config or layers")
    _check_descriptor(config_desc, f"manifest {desc['digest']} config")
    config = _read_small_blob(source, config_desc)
    blobs = []
    for layer in layers:
        if not isinstance(layer, dict):
            raise InvalidArchive(f"manifest {desc['digest']}: a layer is not an object")
        _check_descriptor(layer, f"manifest {desc['digest']} layer")
        blobs.append(_layer_blob(source, layer))
    return ArchiveImage(names, data, media_type, config, tuple(blobs))


def _layer_blob(source: Source, layer: dict) -> ArchiveBlob:
    path = _blob_path(layer["digest"])
    if not source.exists(path):
        raise InvalidArchive(f"layer {layer['digest']} is missing from the archive")
    return ArchiveBlob(layer["digest"], layer.get("mediaType", MT_OCI_LAYER), layer["size"],
                       source.opener(path))


def _pick_platform(index: dict, digest: str) -> dict:
    arch = host_arch()
    for d in _descriptors(index, f"index {digest}"):
        plat = d.get("platform") or {}
        if plat.get("os", "linux") == "linux" and plat.get("architecture", arch) == arch:
            return d
    raise InvalidArchive(f"index {digest}: no manifest for linux/{arch}")


def _loads(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArchive(f"{what}: invalid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidArchive(f"{what}: not a JSON object")
    return doc


# ---------------------------------------------------------------------------- docker save


def _read_docker(source: Source) -> list[ArchiveImage]:
    items = bounded_json(source, "manifest.json")
    if not isinstance(items, list) or not items:
        raise InvalidArchive("manifest.json: expected a non-empty list of images")
    return [_docker_image(source, item, i) for i, item in enumerate(items)]


def _docker_image(source: Source, item: object, i: int) -> ArchiveImage:
    where = f"manifest.json[{i}]"
    if not isinstance(item, dict):
        raise InvalidArchive(f"{where}: not an object")
    config_path, layer_paths = item.get("Config"), item.get("Layers")
    tags = item.get("RepoTags") or []
    if not isinstance(config_path, str) or not isinstance(layer_paths, list) \
            or not all(isinstance(p, str) for p in layer_paths) \
            or not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidArchive(f"{where}: needs Config (string), Layers and RepoTags (lists)")
    config = source.read_bytes(config_path)
    config_doc = _loads(config, config_path)
    diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_paths):
        raise InvalidArchive(f"{where}: config rootfs.diff_ids does not match Layers")
    layers = tuple(_docker_layer(source, p, d) for p, d in zip(layer_paths, diff_ids))
    manifest = {
        "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": _sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size}
                   for b in layers],
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    return ArchiveImage(tuple(tags), manifest_bytes, MT_OCI_MANIFEST, config, layers)


def _docker_layer(source: Source, path: str, diff_id: object) -> ArchiveBlob:
    digest, size, head = hash_stream(source.opener(path))
    media_type = _layer_media_type(head)
    if media_type == MT_OCI_LAYER and digest != diff_id:
        raise DigestMismatch(f"layer {path} hashes to {digest}, config says {diff_id}")
    return ArchiveBlob(digest, media_type, size, source.opener(path))


def _layer_media_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return MT_OCI_LAYER + "+gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return MT_OCI_LAYER + "+zstd"
    return MT_OCI_LAYER
