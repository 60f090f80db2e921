"""Async registry client for the OCI distribution API (pull and push).

Pull: :meth:`RegistryClient.resolve` turns a reference into this node's manifest (choosing
from an index / manifest list by platform); :meth:`RegistryClient.fetch_blob` streams a blob to
a writer while hashing it. Each operation tries the endpoints from
:meth:`RegistriesConfig.endpoints` in order and moves to the next on any failure (connection,
HTTP error after retries, digest mismatch); the endpoint that served is logged and returned.
When every endpoint fails, the error names each attempt; its class is the common class of the
failures (e.g. ManifestNotFound when every endpoint said 404), else RegistryError.

Integrity: a manifest fetched by digest must hash to it; a ``Docker-Content-Digest`` header
must agree with the body; a blob must hash to its digest and have the expected size. Nothing is
trusted before it is verified; a writer only ever sees bytes of a download in progress, and is
``reset()`` before the download is started again (see :class:`BlobWriter`).

Push (for the local test/demo registry): ``push_blob``, ``push_manifest`` go to the reference's
own registry, never to mirrors. Layout pushing lives in :mod:`podling.images.registry_push`.

Cancellation: every method may be cancelled; the response is released; the writer keeps the
partial bytes (the content store's ingest is responsible for discarding them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import aiohttp
from yarl import URL

from podling.images.config import Endpoint, RegistriesConfig
from podling.images.credentials import DockerConfig, credentials_for
from podling.images.errors import DigestMismatch, ImageError, NoMatchingPlatform, RegistryError
from podling.images.interface import ProgressCallback, PullProgress, RegistryAuth
from podling.images.platforms import (ACCEPT_MANIFESTS, DOCKER_SCHEMA1, INDEX_TYPES,
                                      MANIFEST_TYPES, Platform, host_platform, media_type_of,
                                      select_manifest)
from podling.images.refs import Reference, validate_digest
from podling.images.registry_auth import scope_for
from podling.images.registry_http import ClientOptions, Transport
from podling.images.registry_io import BlobWriter, Body, Sink
from podling.images.registry_push import push_oci_layout
from podling.util import failpoints

log = logging.getLogger("podling.images.registry")

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
PULL = ("pull",)
PUSH = ("pull", "push")


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as fetched: verified ``digest``, ``media_type``, raw ``data``."""

    digest: str
    media_type: str
    data: bytes
    endpoint: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.data)


@dataclass(frozen=True)
class Resolved:
    """What a reference resolves to on this node.

    ``manifest_digest`` / ``media_type`` / ``manifest_bytes`` are the platform manifest;
    ``repo_digest`` is what the tag points at (the index's digest when the tag names an
    index, else the manifest's) — the digest for ``RepoDigests``."""

    manifest_digest: str
    media_type: str
    manifest_bytes: bytes
    endpoint: str
    repo_digest: str = ""
    platform: Platform | None = None


@dataclass(frozen=True)
class BlobResult:
    digest: str
    size: int
    endpoint: str


class _Interrupted(RegistryError):
    """A body ended early or the connection dropped while streaming (retryable)."""


class RegistryClient:
    """Pulls from and pushes to registries. Use as ``async with RegistryClient(...) as c``
    or call :meth:`close`. Safe for concurrent use by many tasks on one event loop.

    ``credentials`` are docker config sources consulted per endpoint host after an explicit
    ``auth`` argument (which applies to the reference's own registry only) and after
    ``configs.<host>.auth`` of the registries config."""

    def __init__(self, config: RegistriesConfig | None = None, *,
                 credentials: Sequence[DockerConfig] = (),
                 options: ClientOptions | None = None,
                 platform: Platform | None = None) -> None:
        self.config = config or RegistriesConfig()
        self.options = options or ClientOptions()
        self.platform = platform or host_platform()
        self._credentials = tuple(credentials)
        self._transport = Transport(self.config, self.options)

    async def __aenter__(self) -> "RegistryClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    def set_config(self, config: RegistriesConfig) -> None:
        """Use ``config`` from the next operation on (a reloaded registries.yaml, the
        current cluster nodes); operations in progress finish with the endpoints they had."""
        self.config = config
        self._transport.set_config(config)

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._transport.session

    # ---- endpoints and credentials -------------------------------------------------------

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        eps = self.config.endpoints(ref)
        if not eps:
            raise RegistryError(f"no registry endpoint configured for {ref.registry}")
        return eps

    def auth_for(self, ep: Endpoint, ref: Reference,
                 auth: RegistryAuth | None) -> RegistryAuth | None:
        """Credentials for ``ep``: explicit ``auth`` (own registry only), then
        ``configs.<host>.auth``, then the docker config sources."""
        if auth is not None and not ep.mirror:
            return auth
        if ep.auth is not None:
            return ep.auth
        return credentials_for(ep.host, self._credentials, ep.repository) or (
            credentials_for(ref.registry, self._credentials, ref.repository)
            if not ep.mirror else None)

    async def _each_endpoint(self, ref: Reference, what: str,
                             op: Callable[[Endpoint], Awaitable[Any]],
                             can_continue: Callable[[], Awaitable[bool]] | None = None) -> Any:
        failures: list[tuple[Endpoint, ImageError]] = []
        for ep in self.endpoints(ref):
            try:
                return await op(ep)
            except NoMatchingPlatform:
                raise
            except (RegistryError, DigestMismatch) as e:
                failures.append((ep, e))
                log.warning("%s from %s failed: %s", what, ep, e)
                if can_continue is not None and not await can_continue():
                    break
        raise _combine(what, failures)

    # ---- manifests -----------------------------------------------------------------------

    async def fetch_manifest(self, ref: Reference, obj: str = "", *,
                             auth: RegistryAuth | None = None) -> Manifest:
        """The manifest or index named by ``obj`` (a tag or digest; default: the reference's
        digest, else its tag), verified, from the first endpoint that serves it."""
        obj = obj or ref.object
        return await self._each_endpoint(
            ref, f"manifest {ref.name}:{obj}" if ":" not in obj else f"manifest {obj}",
            lambda ep: self._fetch_manifest_from(ep, ref, obj, auth))

    async def _fetch_manifest_from(self, ep: Endpoint, ref: Reference, obj: str,
                                   auth: RegistryAuth | None) -> Manifest:
        url = ep.api_url(f"{ep.repository}/manifests/{obj}")
        async with self._transport.open(ep, "GET", url, scope=scope_for(ep.repository, PULL),
                                        auth=self.auth_for(ep, ref, auth),
                                        headers={"Accept": ACCEPT_MANIFESTS}) as resp:
            data = await _read_limited(resp, MAX_MANIFEST_SIZE, url)
            header_digest = resp.headers.get("Docker-Content-Digest", "")
            ctype = resp.headers.get("Content-Type", "")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if obj.startswith("sha") and ":" in obj and _hash(obj, data) != obj:
            raise DigestMismatch(f"manifest from {url} does not match its digest {obj}")
        if header_digest.startswith("sha256:") and header_digest != digest:
            raise DigestMismatch(f"manifest from {url} hashes to {digest}, but the registry "
                                 f"says {header_digest}")
        if obj.startswith("sha") and ":" in obj:
            digest = obj
        try:
            body = json.loads(data)
        except ValueError as e:
            raise RegistryError(f"manifest from {url} is not valid JSON") from e
        if not isinstance(body, dict):
            raise RegistryError(f"manifest from {url} is not a JSON object")
        media_type = media_type_of(ctype, body)
        log.info("manifest %s of %s served by %s", digest, ref, ep)
        return Manifest(digest=digest, media_type=media_type, data=data, endpoint=str(ep))

    async def head_manifest(self, ref: Reference, *,
                            auth: RegistryAuth | None = None) -> tuple[str, str]:
        """``(digest, endpoint)`` of what ``ref`` names, from ``HEAD .../manifests/<tag>``
        (its ``Docker-Content-Digest``) at the first endpoint that answers; nothing is
        downloaded. The digest is "" when that endpoint does not send the header."""
        return await self._each_endpoint(
            ref, f"manifest {ref.name}:{ref.object}",
            lambda ep: self._head_manifest_from(ep, ref, auth))

    async def _head_manifest_from(self, ep: Endpoint, ref: Reference,
                                  auth: RegistryAuth | None) -> tuple[str, str]:
        url = ep.api_url(f"{ep.repository}/manifests/{ref.object}")
        async with self._transport.open(ep, "HEAD", url, scope=scope_for(ep.repository, PULL),
                                        auth=self.auth_for(ep, ref, auth),
                                        headers={"Accept": ACCEPT_MANIFESTS}) as resp:
            digest = resp.headers.get("Docker-Content-Digest", "")
        log.info("manifest %s of %s resolved by %s", digest or "(no digest)", ref, ep)
        return (digest if digest.startswith("sha256:") else ""), str(ep)

    async def resolve(self, ref: Reference, *, auth: RegistryAuth | None = None) -> Resolved:
        """Resolve ``ref`` to this node's platform manifest (see :class:`Resolved`).

        Raises ManifestNotFound, RegistryUnauthorized, NoMatchingPlatform, DigestMismatch,
        RegistryError (including for Docker schema 1 and unknown media types)."""
        top = await self.fetch_manifest(ref, auth=auth)
        if top.media_type in MANIFEST_TYPES:
            return Resolved(top.digest, top.media_type, top.data, top.endpoint,
                            repo_digest=top.digest)
        if top.media_type not in INDEX_TYPES:
            raise RegistryError(_unsupported(ref, top.media_type))
        desc = select_manifest(top.json(), self.platform)
        digest = str(desc.get("digest", ""))
        _check_digest(digest, "index entry")
        child = await self.fetch_manifest(ref, digest, auth=auth)
        if "size" in desc and desc["size"] != len(child.data):
            raise DigestMismatch(f"manifest {digest} is {len(child.data)} bytes, the index "
                                 f"says {desc['size']}")
        if child.media_type not in MANIFEST_TYPES:
            raise RegistryError(_unsupported(ref, child.media_type))
        p = desc.get("platform") or {}
        return Resolved(child.digest, child.media_type, child.data, child.endpoint,
                        repo_digest=top.digest,
                        platform=Platform(p.get("os", ""), p.get("architecture", ""),
                                          p.get("variant", "")))

    # ---- blobs ---------------------------------------------------------------------------

    async def fetch_blob(self, ref: Reference, digest: str,
                         dest_writer: BlobWriter | Callable[[bytes], Any],
                         size: int | None = None, progress: ProgressCallback | None = None,
                         *, auth: RegistryAuth | None = None) -> BlobResult:
        """Stream blob ``digest`` of ``ref``'s repository into ``dest_writer``, hashing as it
        goes. ``size`` (from the descriptor) is enforced when given. Raises DigestMismatch
        when the content does not hash to ``digest``, RegistryError when it is truncated or
        no endpoint can serve it."""
        _check_digest(digest, "blob")
        sink = Sink(dest_writer)
        return await self._each_endpoint(
            ref, f"blob {digest}",
            lambda ep: self._fetch_blob_from(ep, ref, digest, sink, size, progress, auth),
            can_continue=sink.reset)

    async def fetch_blob_bytes(self, ref: Reference, digest: str, size: int | None = None,
                               *, auth: RegistryAuth | None = None,
                               limit: int = MAX_MANIFEST_SIZE) -> bytes:
        """A small blob (an image config) in memory, verified; larger than ``limit`` fails."""
        if size is not None and size > limit:
            raise RegistryError(f"blob {digest} is {size} bytes, more than {limit}")
        buf = bytearray()

        class _Buf:
            def write(self, data: bytes) -> None:
                if len(buf) + len(data) > limit:
                    raise RegistryError(f"blob {digest} is larger than {limit} bytes")
                buf.extend(data)

            def reset(self) -> None:
                buf.clear()

        await self.fetch_blob(ref, digest, _Buf(), size, auth=auth)
        return bytes(buf)

    async def _fetch_blob_from(self, ep: Endpoint, ref: Reference, digest: str, sink: Sink,
                               size: int | None, progress: ProgressCallback | None,
                               auth: RegistryAuth | None) -> BlobResult:
        attempt = 0
        while True:
            try:
                n = await self._stream_blob(ep, ref, digest, sink, size, progress, auth)
            except _Interrupted:
                if attempt >= self.options.retries or not await sink.reset():
                    raise
                await self._transport.backoff(attempt)
                attempt += 1
                continue
            log.info("blob %s (%d bytes) of %s served by %s", digest, n, ref, ep)
            return BlobResult(digest=digest, size=n, endpoint=str(ep))

    async def _stream_blob(self, ep: Endpoint, ref: Reference, digest: str, sink: Sink,
                           size: int | None, progress: ProgressCallback | None,
                           auth: RegistryAuth | None) -> int:
        url = ep.api_url(f"{ep.repository}/blobs/{digest}")
        hasher = hashlib.new(digest.partition(":")[0])
        done = 0
        fault = failpoints.fire("registry.blob")  # drop: mid-blob; corrupt: one byte
        async with self._transport.open(ep, "GET", url, scope=scope_for(ep.repository, PULL),
                                        auth=self.auth_for(ep, ref, auth)) as resp:
            total = size if size is not None else (resp.content_length or 0)
            _report(progress, digest, 0, total, "downloading", ep)
            try:
                async for chunk in resp.content.iter_chunked(self.options.chunk_size):
                    if fault is not None and fault.kind == "corrupt" and done == 0:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    done += len(chunk)
                    if size is not None and done > size:
                        raise RegistryError(f"blob {digest} from {url} is larger than the "
                                            f"{size} bytes its descriptor says")
                    hasher.update(chunk)
                    await sink.write(chunk)
                    _report(progress, digest, done, total, "downloading", ep)
                    if fault is not None and fault.kind == "drop":
                        raise aiohttp.ClientPayloadError("failpoint registry.blob: "
                                                         "connection dropped")
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    TimeoutError) as e:
                raise _Interrupted(f"blob {digest} from {url}: download interrupted after "
                                   f"{done} bytes: {type(e).__name__}: {e}") from e
        if total and done < total:
            raise _Interrupted(f"blob {digest} from {url}: truncated, got {done} of {total} "
                               f"bytes")
        _report(progress, digest, done, total, "verifying", ep)
        actual = f"{digest.partition(':')[0]}:{hasher.hexdigest()}"
        if actual != digest:
            raise DigestMismatch(f"blob {digest} from {url} hashes to {actual}")
        return done

    # ---- push ----------------------------------------------------------------------------

    def push_endpoint(self, ref: Reference) -> Endpoint:
        """The reference's own registry (pushes never go to mirrors)."""
        return self.config.default_endpoint(ref)

    async def blob_exists(self, ref: Reference, digest: str, *,
                          auth: RegistryAuth | None = None) -> bool:
        ep = self.push_endpoint(ref)
        url = ep.api_url(f"{ep.repository}/blobs/{digest}")
        async with self._transport.open(ep, "HEAD", url, scope=scope_for(ep.repository, PUSH),
                                        auth=self.auth_for(ep, ref, auth),
                                        expect=(200, 404)) as resp:
            return resp.status == 200

    async def push_blob(self, ref: Reference, digest: str,
                        data_or_path: bytes | str | os.PathLike[str], *,
                        auth: RegistryAuth | None = None) -> bool:
        """Upload one blob monolithically (POST then PUT ?digest=); False if it was already
        there. The registry verifies the digest; a mismatch comes back as RegistryError."""
        _check_digest(digest, "blob")
        if await self.blob_exists(ref, digest, auth=auth):
            return False
        ep = self.push_endpoint(ref)
        creds = self.auth_for(ep, ref, auth)
        scope = scope_for(ep.repository, PUSH)
        start = ep.api_url(f"{ep.repository}/blobs/uploads/")
        async with self._transport.open(ep, "POST", start, scope=scope, auth=creds,
                                        headers={"Content-Length": "0"},
                                        expect=(202,)) as resp:
            location = resp.headers.get("Location", "")
        if not location:
            raise RegistryError(f"POST {start}: no upload Location")
        upload = str(resp.url.join(URL(location)).update_query(digest=digest))
        body = Body(data_or_path)
        try:
            async with self._transport.open(
                    ep, "PUT", upload, scope=scope, auth=creds, data=body,
                    headers={"Content-Type": "application/octet-stream"}, expect=(201,)):
                pass
        finally:
            body.close()
        log.info("pushed blob %s to %s", digest, ep)
        return True

    async def push_manifest(self, ref: Reference, media_type: str, data: bytes, *,
                            auth: RegistryAuth | None = None) -> str:
        """PUT a manifest or index at ``ref``'s tag (or digest); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if ref.digest and ref.digest != digest:
            raise DigestMismatch(f"manifest hashes to {digest}, not {ref.digest}")
        ep = self.push_endpoint(ref)
        url = ep.api_url(f"{ep.repository}/manifests/{ref.tag or digest}")
        async with self._transport.open(ep, "PUT", url, scope=scope_for(ep.repository, PUSH),
                                        auth=self.auth_for(ep, ref, auth),
                                        headers={"Content-Type": media_type},
                                        data=lambda: data, expect=(201, 200)):
            pass
        log.info("pushed manifest %s to %s as %s", digest, ep, ref)
        return digest

    async def push_oci_layout(self, layout_dir_or_archive: str | os.PathLike[str],
                              ref: Reference, *, auth: RegistryAuth | None = None) -> str:
        """Push an OCI layout directory or archive to ``ref``; returns the pushed digest.
        See :mod:`podling.images.registry_push`."""
        return await push_oci_layout(self, layout_dir_or_archive, ref, auth=auth)


def _hash(digest: str, data: bytes) -> str:
    algorithm = digest.partition(":")[0]
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _check_digest(digest: str, what: str) -> None:
    try:
        validate_digest(digest)
    except ImageError as e:
        raise RegistryError(f"{what}: {e}") from e


def _unsupported(ref: Reference, media_type: str) -> str:
    if media_type in DOCKER_SCHEMA1:
        return f"{ref}: Docker schema 1 manifests are not supported"
    return f"{ref}: unsupported manifest media type {media_type!r}"


def _report(progress: ProgressCallback | None, digest: str, done: int, total: int,
            status: str, ep: Endpoint) -> None:
    if progress is not None:
        progress(PullProgress(layer=digest, done=done, total=total, status=status,
                              endpoint=str(ep)))


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    if (resp.content_length or 0) > limit:
        raise RegistryError(f"{url}: manifest larger than {limit} bytes")
    buf = bytearray()
    try:
        async for chunk in resp.content.iter_chunked(64 * 1024):
            buf.extend(chunk)
            if len(buf) > limit:
                raise RegistryError(f"{url}: manifest larger than {limit} bytes")
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
        raise RegistryError(f"{url}: manifest download interrupted: {e}") from e
    return bytes(buf)


def _combine(what: str, failures: list[tuple[Endpoint, ImageError]]) -> ImageError:
    """One error for a list of endpoint failures: the common class, else RegistryError."""
    if len(failures) == 1:
        return failures[0][1]
    classes = {type(e) for _, e in failures}
    cls: type[ImageError] = classes.pop() if len(classes) == 1 else RegistryError
    if cls is _Interrupted:
        cls = RegistryError
    detail = "; ".join(f"{ep}: {e}" for ep, e in failures)
    return cls(f"{what}: every endpoint failed: {detail}")
