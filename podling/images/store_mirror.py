"""Read-only lookups that let the node's store serve as a registry (the node mirror).

The node API (:mod:`podling.agent.node.registry`) answers OCI distribution requests with
these. A distribution ``name`` is read as an image reference and normalised
(``library/busybox`` and ``docker.io/library/busybox`` are the same repository):

* a manifest by **tag**: the platform manifest of the image tagged ``name:tag``;
* a manifest by **digest**: that manifest when an image of repository ``name`` has it (as its
  manifest, a digest name or a repo digest whose manifest the store keeps);
* a **blob**: a config or compressed layer of an image of repository ``name`` that the
  content store holds (committed, so verified when it was written).

Only what an image record references is served: never partial downloads, never blobs of
images of another repository. Every function blocks briefly (one small JSON read, a stat);
async callers use a thread.
"""

from __future__ import annotations

from podling.images.content import ContentStore
from podling.images.errors import InvalidImageName
from podling.images.interface import StoredBlob, StoredManifest
from podling.images.metadata import MetadataStore
from podling.images.refs import parse_reference, validate_digest


def repository_name(repository: str) -> str:
    """The normalised name of a distribution repository; raises InvalidImageName."""
    if "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        raise InvalidImageName(f"invalid repository name {repository!r}")
    return parse_reference(repository).name


def stored_manifest(metadata: MetadataStore, content: ContentStore, repository: str,
                    reference: str) -> StoredManifest | None:
    """The manifest ``repository`` has under ``reference`` (tag or digest), or None."""
    name = repository_name(repository)
    if ":" in reference:
        validate_digest(reference)
        record = metadata.get_reference(name, "", reference)
        if record is None or record.manifest_digest != reference:
            return None  # e.g. an index digest: the store keeps the platform manifest only
    else:
        parse_reference(f"{name}:{reference}")  # validates the tag
        record = metadata.get_reference(name, reference)
        if record is None:
            return None
    digest = record.manifest_digest
    if not content.has(digest):
        return None
    return StoredManifest(digest=digest, media_type=record.manifest_media_type,
                          data=content.read_bytes(digest))


def stored_blob(metadata: MetadataStore, content: ContentStore, repository: str,
                digest: str) -> StoredBlob | None:
    """Blob ``digest`` of an image of ``repository``, or None."""
    name = repository_name(repository)
    validate_digest(digest)
    if not any(digest in r.blobs() for r in metadata.in_repository(name)):
        return None
    if not content.has(digest):
        return None
    path = content.path(digest)
    return StoredBlob(digest=digest, path=path, size=content.size(digest))
