"""The image records store: which images the node has, under which names.

One JSON document, ``<root>/images.json``, replaced atomically on every change
(:func:`podling.util.files.atomic_write`); a reader sees the old or the new state, never a
mix. Read-modify-write cycles hold an exclusive ``flock`` on ``<root>/images.lock``, so
threads and processes (the agent and the CLI) never lose each other's updates. ::

    {"version": 1, "images": {"sha256:<config digest>": {<ImageRecord fields>}, ...}}

An image is identified by its **ID**, the digest of its config (like Docker and the CRI).
Its ``names`` are normalised references — tags (``docker.io/library/nginx:latest``) and
references pulled by digest (``docker.io/library/nginx@sha256:…``); ``repo_digests`` are
``name@<manifest or index digest>`` for each repository it came from.

Lookup (:meth:`MetadataStore.get`) accepts, in this order:

1. a full image ID: ``sha256:<64 hex>`` or ``<64 hex>``;
2. a reference, normalised first (``nginx`` → ``docker.io/library/nginx:latest``): a tag
   matches ``names``; ``name@digest`` (with or without a tag) matches a digest name, a repo
   digest, or the manifest digest of an image with that repository;
3. a unique prefix of an image ID (hex, at least :data:`MIN_PREFIX` digits, optionally with
   ``sha256:``); an ambiguous prefix raises :class:`AmbiguousImageReference`.

A tag names at most one image: :meth:`MetadataStore.add` moves a tag that another image had
to the new one; the old image stays, untagged ("dangling"), until it is removed or garbage
collected — containers may still run it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator

from podling.images.errors import ImageError, InvalidImageName, RegistryError
from podling.images.interface import ImageConfig
from podling.images.refs import parse_reference
from podling.util.files import atomic_write
from podling.util.timefmt import now_rfc3339

FORMAT_VERSION = 1
MIN_PREFIX = 3
_FULL_ID_RE = re.compile(r"(?:sha256:)?([0-9a-f]{64})\Z")
_PREFIX_RE = re.compile(r"(?:sha256:)?([0-9a-f]+)\Z")


class AmbiguousImageReference(ImageError):
    """An image ID prefix that matches more than one image."""


class CorruptMetadata(ImageError):
    """``images.json`` cannot be parsed; the message names the file."""


@dataclass(frozen=True)
class LayerRecord:
    """One layer of an image: compressed blob ``digest``, ``diff_id``, blob ``size``."""

    digest: str
    diff_id: str
    size: int
    media_type: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """What the store knows about one image (see the module docstring)."""

    id: str  # the config digest
    manifest_digest: str
    manifest_media_type: str
    layers: tuple[LayerRecord, ...]
    config_size: int
    names: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    created: str = ""  # RFC 3339, when the store first recorded it
    os: str = "linux"
    architecture: str = "amd64"

    @property
    def size(self) -> int:
        """Compressed layers plus config, in bytes (what a pull transfers)."""
        return self.config_size + sum(layer.size for layer in self.layers)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    def blobs(self) -> set[str]:
        """Every content-store digest this image references (manifest, config, layers)."""
        return {self.manifest_digest, self.id, *(layer.digest for layer in self.layers)}

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["layers"] = [asdict(layer) for layer in self.layers]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "ImageRecord":
        layers = tuple(LayerRecord(**layer) for layer in doc.get("layers", ()))
        values = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        values.update(layers=layers, names=tuple(doc.get("names", ())),
                      repo_digests=tuple(doc.get("repo_digests", ())))
        return cls(**values)


@dataclass
class _State:
    images: dict[str, ImageRecord] = field(default_factory=dict)


class MetadataStore:
    """Image records under ``root`` (created if missing). All methods block; they are
    quick (one small JSON file) but async callers should still use a thread for writes."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.path = os.path.join(self.root, "images.json")
        self._lock_path = os.path.join(self.root, "images.lock")

    # -- reading --------------------------------------------------------------------------

    def list(self) -> list[ImageRecord]:
        """Every record, sorted by first name then ID (untagged images last)."""
        records = self._load().images.values()
        return sorted(records, key=lambda r: (not r.names, r.names[:1], r.id))

    def get_by_id(self, image_id: str) -> ImageRecord | None:
        return self._load().images.get(image_id)

    def get(self, ref: str) -> ImageRecord | None:
        """The record ``ref`` names (see the module docstring), or None.

        Raises InvalidImageName when ``ref`` is neither a reference nor hex, and
        AmbiguousImageReference for a prefix matching several images."""
        return find(self._load().images, ref)

    def get_reference(self, name: str, tag: str, digest: str = "") -> ImageRecord | None:
        """The record a normalised ``name`` has under ``tag`` or ``digest`` (a digest name,
        a repo digest, or the manifest digest of an image of that repository); never an ID
        or a prefix."""
        return _by_reference(self._load().images, name, tag, digest)

    def in_repository(self, name: str) -> list[ImageRecord]:
        """Every record with a name or repo digest in repository ``name``."""
        return [r for r in self._load().images.values()
                if any(_repo_of(n) == name for n in (*r.names, *r.repo_digests))]

    # -- writing --------------------------------------------------------------------------

    def add(self, record: ImageRecord) -> ImageRecord:
        """Record an image; merge names and repo digests into an existing record with the
        same ID (keeping its ``created``); take its tags away from other images. Returns
        the stored record."""
        def change(images: dict[str, ImageRecord]) -> ImageRecord:
            old = images.get(record.id)
            merged = record
            if old is not None:
                merged = replace(record, names=_union(old.names, record.names),
                                 repo_digests=_union(old.repo_digests, record.repo_digests),
                                 created=old.created or record.created)
            for other_id, other in list(images.items()):
                if other_id != record.id and set(other.names) & set(record.names):
                    images[other_id] = replace(
                        other, names=tuple(n for n in other.names if n not in record.names))
            images[record.id] = merged
            return merged
        return self._update(change)

    def remove_name(self, ref: str) -> tuple[ImageRecord | None, bool]:
        """Untag: drop the name ``ref`` normalises to from its image.

        A reference by ID, ID prefix or digest removes the whole record. The record is also removed
        when no names remain. Returns (the record before the change or None, removed)."""
        def change(images: dict[str, ImageRecord]) -> tuple[ImageRecord | None, bool]:
            record = find(images, ref)
            if record is None:
                return None, False
            name = _tag_name(ref)
            by_tag = bool(name) and name in record.names
            remaining = tuple(n for n in record.names if n != name) if by_tag else ()
            if remaining:
                images[record.id] = replace(record, names=remaining)
                return record, False
            del images[record.id]
            return record, True
        return self._update(change)

    def delete(self, image_id: str) -> ImageRecord | None:
        """Remove the record with this ID (idempotent); returns what was removed."""
        return self._update(lambda images: images.pop(image_id, None))

    # -- internals ------------------------------------------------------------------------

    def _update(self, change: Callable[[dict[str, ImageRecord]], Any]) -> Any:
        with self._locked():
            state = self._load()
            before = {k: v.to_json() for k, v in state.images.items()}
            result = change(state.images)
            if {k: v.to_json() for k, v in state.images.items()} != before:
                self._save(state)
            return result

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self) -> _State:
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            return _State()
        except ValueError as e:
            raise CorruptMetadata(f"{self.path}: not valid JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise CorruptMetadata(f"{self.path}: unknown format (want version "
                                  f"{FORMAT_VERSION})")
        try:
            images = {k: ImageRecord.from_json(v) for k, v in doc.get("images", {}).items()}
        except (TypeError, AttributeError) as e:
            raise CorruptMetadata(f"{self.path}: bad image record: {e}") from e
        return _State(images=images)

    def _save(self, state: _State) -> None:
        doc = {"version": FORMAT_VERSION,
               "images": {k: v.to_json() for k, v in sorted(state.images.items())}}
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode(), 0o600)


def find(images: dict[str, ImageRecord], ref: str) -> ImageRecord | None:
    """Look ``ref`` up in ``images`` by ID, reference, then ID prefix (pure)."""
    m = _FULL_ID_RE.match(ref)
    if m and f"sha256:{m.group(1)}" in images:
        return images[f"sha256:{m.group(1)}"]
    try:
        parsed = parse_reference(ref)
    except InvalidImageName:
        if not _PREFIX_RE.match(ref):
            raise
        parsed = None
    if parsed is not None:
        found = _by_reference(images, parsed.name, parsed.tag, parsed.digest)
        if found is not None:
            return found
    return _by_prefix(images, ref)


def _by_reference(images: dict[str, ImageRecord], name: str, tag: str,
                  digest: str) -> ImageRecord | None:
    if digest:
        wanted = f"{name}@{digest}"
        for record in images.values():
            if wanted in record.names or wanted in record.repo_digests:
                return record
        for record in images.values():
            if record.manifest_digest == digest and any(
                    _repo_of(n) == name for n in (*record.names, *record.repo_digests)):
                return record
        return None
    wanted = f"{name}:{tag}"
    for record in images.values():
        if wanted in record.names:
            return record
    return None


def _by_prefix(images: dict[str, ImageRecord], ref: str) -> ImageRecord | None:
    m = _PREFIX_RE.match(ref)
    if not m or len(m.group(1)) < MIN_PREFIX:
        return None
    matches = [r for k, r in images.items() if k[len("sha256:"):].startswith(m.group(1))]
    if len(matches) > 1:
        raise AmbiguousImageReference(
            f"image ID prefix {ref!r} matches {len(matches)} images; give more digits")
    return matches[0] if matches else None


def _repo_of(name: str) -> str:
    """``docker.io/library/nginx`` from a tag or digest name."""
    if "@" in name:
        return name.partition("@")[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def _tag_name(ref: str) -> str:
    """The normalised tag name ``ref`` names, or "" when it is an ID or has a digest."""
    if _FULL_ID_RE.match(ref):
        return ""
    try:
        parsed = parse_reference(ref)
    except InvalidImageName:
        return ""
    return "" if parsed.digest else f"{parsed.name}:{parsed.tag}"


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*a, *b)))


# ---- building records ----------------------------------------------------------------

def parse_image_config(doc: dict[str, Any]) -> ImageConfig:
    """The runtime part of an OCI / Docker image config document."""
    c = doc.get("config") or {}
    return ImageConfig(entrypoint=list(c.get("Entrypoint") or []), cmd=list(c.get("Cmd") or []),
                       env=list(c.get("Env") or []), working_dir=c.get("WorkingDir") or "",
                       user=c.get("User") or "", stop_signal=c.get("StopSignal") or "",
                       exposed_ports=sorted(c.get("ExposedPorts") or {}),
                       volumes=sorted(c.get("Volumes") or {}),
                       labels=dict(c.get("Labels") or {}))


def manifest_json(data: bytes, where: str) -> dict[str, Any]:
    """Decode an image manifest; RegistryError unless it has ``config`` and ``layers``."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{where}: manifest is not JSON") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list) \
            or not isinstance(doc.get("config"), dict):
        raise RegistryError(f"{where}: manifest has no config or layers")
    return doc


def record_from(where: str, manifest: dict[str, Any], manifest_digest: str,
                media_type: str, config_bytes: bytes) -> ImageRecord:
    """An (unnamed) record from a verified manifest and config; checks they agree."""
    try:
        config = json.loads(config_bytes)
        diff_ids = list(config["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError) as e:
        raise ImageError(f"{where}: image config has no rootfs.diff_ids") from e
    descs = manifest["layers"]
    if len(diff_ids) != len(descs):
        raise ImageError(f"{where}: manifest has {len(descs)} layers, config "
                         f"{len(diff_ids)} diff IDs")
    layers = tuple(LayerRecord(digest=str(d.get("digest", "")), diff_id=str(diff),
                               size=int(d.get("size", 0)),
                               media_type=str(d.get("mediaType", "")))
                   for d, diff in zip(descs, diff_ids))
    now = now_rfc3339()
    return ImageRecord(id=str(manifest["config"].get("digest", "")),
                       manifest_digest=manifest_digest, manifest_media_type=media_type,
                       layers=layers, config_size=len(config_bytes), created=now,
                       os=str(config.get("os", "linux")),
                       architecture=str(config.get("architecture", "")))
