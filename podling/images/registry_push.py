"""Push an OCI image layout (a directory, or a tar / tar.gz archive of one) to a registry.

``index.json`` → the chosen manifest or index → (child manifests →) config and layer blobs.
Order: blobs first, then each child manifest by digest, then the top manifest at the
reference's tag, so the tag never points at anything incomplete. Blobs the registry already
has are skipped (HEAD). Which entry of ``index.json`` is pushed: the only one; else the one
whose ``org.opencontainers.image.ref.name`` annotation equals the reference's tag (or the full
reference); else InvalidArchive.

The archive is only read, never extracted to disk, except large blobs which are copied to a
temporary file that is removed afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from typing import Any, Iterator, Protocol

from podling.images.errors import DigestMismatch, InvalidArchive
from podling.images.interface import RegistryAuth
from podling.images.platforms import INDEX_TYPES, MANIFEST_TYPES
from podling.images.refs import Reference, validate_digest

REF_NAME = "org.opencontainers.image.ref.name"
IN_MEMORY_LIMIT = 8 * 1024 * 1024
MAX_JSON = 4 * 1024 * 1024


class Pusher(Protocol):
    """The two uploads a push needs; :class:`podling.images.registry.RegistryClient` is one.

    This module depends on this protocol only (never on registry.py, which imports us)."""

    async def push_blob(self, ref: Reference, digest: str,
                        data_or_path: bytes | str | os.PathLike[str], *,
                        auth: RegistryAuth | None = None) -> bool:
        """Upload one blob unless the registry has it; False if it was already there."""
        ...

    async def push_manifest(self, ref: Reference, media_type: str, data: bytes, *,
                            auth: RegistryAuth | None = None) -> str:
        """PUT a manifest or index at ``ref``'s tag (or digest); returns its digest."""
        ...


class LayoutReader:
    """Read-only access to the blobs of an OCI layout directory or archive (close it)."""

    def __init__(self, source: str | os.PathLike[str]) -> None:
        self._path = os.fspath(source)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        self._tmp = tempfile.mkdtemp(prefix="podling-push-")
        if os.path.isdir(self._path):
            return
        try:
            self._tar = tarfile.open(self._path, "r:*")
            for m in self._tar.getmembers():
                if m.isfile():
                    self._members[os.path.normpath(m.name).lstrip("/")] = m
        except (OSError, tarfile.TarError) as e:
            self.close()
            raise InvalidArchive(f"{self._path}: not an OCI layout directory or archive: "
                                 f"{e}") from e

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LayoutReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def index(self) -> dict[str, Any]:
        doc = _json(self._read("index.json", MAX_JSON), "index.json")
        if not isinstance(doc.get("manifests"), list):
            raise InvalidArchive(f"{self._path}: index.json has no manifests list")
        return doc

    def blob_bytes(self, digest: str, limit: int = MAX_JSON) -> bytes:
        data = self._read(_blob_name(digest), limit)
        algorithm = digest.partition(":")[0]
        if f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}" != digest:
            raise DigestMismatch(f"{self._path}: blob {digest} does not match its digest")
        return data

    def blob_source(self, digest: str) -> bytes | str:
        """The blob as bytes (small) or a path to a file holding it."""
        name = _blob_name(digest)
        if self._tar is None:
            path = os.path.join(self._path, name)
            if not os.path.isfile(path):
                raise InvalidArchive(f"{self._path}: missing blob {digest}")
            return path
        member = self._member(name)
        if member.size <= IN_MEMORY_LIMIT:
            return self._read(name, IN_MEMORY_LIMIT)
        dest = os.path.join(self._tmp, digest.replace(":", "-"))
        with self._tar.extractfile(member) as src, open(dest, "wb") as out:  # type: ignore
            shutil.copyfileobj(src, out, 1024 * 1024)
        return dest

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self._members.get(name)
        if member is None:
            raise InvalidArchive(f"{self._path}: missing {name}")
        return member

    def _read(self, name: str, limit: int) -> bytes:
        if self._tar is None:
            path = os.path.join(self._path, name)
            try:
                if os.path.getsize(path) > limit:
                    raise InvalidArchive(f"{self._path}: {name} is too large")
                with open(path, "rb") as f:
                    return f.read()
            except FileNotFoundError as e:
                raise InvalidArchive(f"{self._path}: missing {name}") from e
        member = self._member(name)
        if member.size > limit:
            raise InvalidArchive(f"{self._path}: {name} is too large")
        with self._tar.extractfile(member) as f:  # type: ignore[union-attr]
            return f.read()


def choose_entry(index: dict[str, Any], ref: Reference) -> dict[str, Any]:
    """The ``index.json`` descriptor to push under ``ref`` (see the module docstring)."""
    entries = [d for d in index["manifests"] if isinstance(d, dict)]
    if len(entries) == 1:
        return entries[0]
    wanted = {ref.tag, str(ref)} - {""}
    matches = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME) in wanted]
    if len(matches) == 1:
        return matches[0]
    raise InvalidArchive(f"the layout has {len(entries)} images and none is named "
                         f"{ref.tag or ref}")


async def push_oci_layout(client: Pusher, source: str | os.PathLike[str],
                          ref: Reference, *, auth: RegistryAuth | None = None) -> str:
    """Push the layout at ``source`` to ``ref``; returns the digest ``ref`` now points to.

    Raises InvalidArchive (bad layout), DigestMismatch, RegistryError."""
    reader = await asyncio.to_thread(LayoutReader, source)
    with reader:
        desc = choose_entry(await asyncio.to_thread(reader.index), ref)
        return await _push_descriptor(client, reader, ref, desc, top=True, auth=auth)


async def _push_descriptor(client: Pusher, reader: LayoutReader, ref: Reference,
                           desc: dict[str, Any], *, top: bool,
                           auth: RegistryAuth | None) -> str:
    digest = _digest_of(desc)
    media_type = str(desc.get("mediaType", ""))
    data = await asyncio.to_thread(reader.blob_bytes, digest)
    doc = _json(data, digest)
    media_type = str(doc.get("mediaType") or media_type)
    if media_type in INDEX_TYPES:
        for child in doc.get("manifests") or []:
            await _push_descriptor(client, reader, ref, child, top=False, auth=auth)
    elif media_type in MANIFEST_TYPES:
        for blob in _blobs_of(doc):
            blob_digest = _digest_of(blob)
            source = await asyncio.to_thread(reader.blob_source, blob_digest)
            await client.push_blob(ref, blob_digest, source, auth=auth)
    else:
        raise InvalidArchive(f"manifest {digest}: unsupported media type {media_type!r}")
    target = ref if top else ref.with_digest(digest)
    return await client.push_manifest(target, media_type, data, auth=auth)


def _blobs_of(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise InvalidArchive("manifest has no config descriptor")
    yield config
    for layer in manifest.get("layers") or []:
        if isinstance(layer, dict):
            yield layer


def _digest_of(desc: Any) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    try:
        validate_digest(str(digest))
    except Exception as e:
        raise InvalidArchive(f"invalid descriptor digest {digest!r}") from e
    return str(digest)


def _blob_name(digest: str) -> str:
    try:
        validate_digest(digest)
    except Exception as e:
        raise InvalidArchive(f"invalid digest {digest!r}") from e
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidArchive(f"{what} is not valid JSON") from e
    if not isinstance(doc, dict):
        raise InvalidArchive(f"{what} is not a JSON object")
    return doc
