"""A content-addressed blob store: ingest → verify digest → commit atomically.

Layout under ``root``::

    blobs/sha256/<hex>          committed blobs, read-only (0444), named by their sha256
    ingest/<hex>.<random>.part  in-flight ingests, each flock()ed by its writer

Guarantees:

- A blob is visible under ``blobs/`` only after its bytes were hashed, compared with the
  digest it is named by, fsynced, renamed into place and the directory fsynced. Nothing
  half-written is ever visible there.
- An ingest that is aborted, left without ``commit()``, or interrupted by kill -9 leaves at
  most a ``.part`` file, which nothing trusts; ``cleanup_stale_ingests()`` (run when the store
  is opened) removes the ones whose writer is gone (their flock is free).
- Digest strings are validated (``sha256:`` + 64 lowercase hex) before any path is built, so
  no digest can name a path outside ``blobs/sha256``.

Thread safety: the store keeps no mutable state of its own; any number of threads (and
processes) may ingest, even the same digest at once — the first commit wins and later ones
find the blob present. Each ``Ingest`` belongs to one thread. All calls block; async callers
use ``asyncio.to_thread``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
from types import TracebackType

from podling.images.errors import DigestMismatch, ImageError

log = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_PART_SUFFIX = ".part"


class InvalidDigest(ImageError, ValueError):
    """A digest string that is not ``sha256:`` followed by 64 lowercase hex digits."""


class BlobNotFound(ImageError, KeyError):
    """The store holds no blob with that digest."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "blob not found"


class IngestClosed(ImageError):
    """``write()`` or ``commit()`` on an ingest that was already committed or aborted."""


def validate_digest(digest: str) -> str:
    """Return ``digest`` unchanged if it is ``sha256:<64 lowercase hex>``; else InvalidDigest."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidDigest(f"invalid digest {digest!r}: want sha256:<64 lowercase hex digits>")
    return digest


def _hex(digest: str) -> str:
    return validate_digest(digest)[len("sha256:"):]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ingest:
    """One in-flight write of a blob whose digest (and maybe size) is known in advance.

    State machine::

        open ──write(data)* / reset()──▶ open
          │
          ├──commit()── size and sha256 match ──▶ committed   (blob visible, fsynced)
          │        └─── mismatch ──▶ aborted + DigestMismatch  (nothing visible)
          │
          └──abort() / leaving the ``with`` block / write past expected_size ──▶ aborted

    ``commit()`` and ``abort()`` are terminal; ``abort()`` is idempotent and a no-op after
    ``commit()``. Any call but ``abort()`` on a closed ingest raises IngestClosed. Created by
    ``ContentStore.ingest``; not shared between threads, except that ``abort()`` (e.g. the
    ``with`` exit of a cancelled task) may run while ``commit()`` runs in a worker thread:
    the commit then owns the file and closes it itself, abort() does nothing.
    """

    def __init__(self, store: ContentStore, expected_digest: str,
                 expected_size: int | None) -> None:
        self._store = store
        self.digest = validate_digest(expected_digest)
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"negative expected size {expected_size}")
        self.expected_size = expected_size
        self.written = 0
        self.state = "open"
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()  # guards the state transitions that decide who closes
        self._tmp, self._fd = store._create_part(_hex(expected_digest))

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``. Exceeding ``expected_size`` aborts at once with DigestMismatch."""
        self._require_open()
        view = memoryview(data).cast("B")
        if self.expected_size is not None and self.written + len(view) > self.expected_size:
            self.abort()
            raise DigestMismatch(
                f"{self.digest}: more than the expected {self.expected_size} bytes")
        self._hash.update(view)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
            self.written += n

    def reset(self) -> None:
        """Discard every byte written so far (a download restarts); the ingest stays open.

        Used by the registry client before it retries a download or tries the next
        endpoint. Raises IngestClosed after ``commit()`` or ``abort()``."""
        self._require_open()
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self.written = 0

    def commit(self) -> str:
        """Verify size and digest, make the blob durable and visible; return its digest.

        On mismatch the ingest is aborted and DigestMismatch raised; nothing is visible.
        If the blob is already present (a concurrent ingest won) the new copy is dropped."""
        with self._lock:
            self._require_open()
            self.state = "committing"  # from now on only this call closes the fd
        try:
            self._verify()
            os.fchmod(self._fd, 0o444)
            os.fsync(self._fd)
            final = self._store._blob_path(self.digest)
            if not os.path.exists(final):
                os.rename(self._tmp, final)
                _fsync_dir(os.path.dirname(final))
        except BaseException:
            self._close("aborted")
            raise
        self._close("committed")
        return self.digest

    def abort(self) -> None:
        """Drop the partial blob. Idempotent; does nothing after (or during) a commit."""
        with self._lock:
            if self.state != "open":
                return
            self.state = "aborting"  # claimed: a concurrent commit() now raises IngestClosed
        self._close("aborted")

    def _verify(self) -> None:
        if self.expected_size is not None and self.written != self.expected_size:
            raise DigestMismatch(
                f"{self.digest}: got {self.written} bytes, expected {self.expected_size}")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            raise DigestMismatch(f"content hashes to {actual}, expected {self.digest}")

    def _close(self, state: str) -> None:
        self.state = state
        try:
            os.unlink(self._tmp)  # after a commit the name is gone already: a no-op
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)  # releases the flock

    def _require_open(self) -> None:
        if self.state != "open":
            raise IngestClosed(f"ingest of {self.digest} is {self.state}")


class ContentStore:
    """Blobs named by sha256 digest under ``root`` (see the module docstring).

    Opening a store creates its directories (0700) and removes stale ingests.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._blobs = os.path.join(self.root, "blobs", "sha256")
        self._ingest = os.path.join(self.root, "ingest")
        for d in (self.root, self._blobs, self._ingest):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.cleanup_stale_ingests()

    # -- writing --------------------------------------------------------------------------

    def ingest(self, expected_digest: str, expected_size: int | None = None) -> Ingest:
        """Start writing a blob; use as a context manager (see ``Ingest``)."""
        return Ingest(self, expected_digest, expected_size)

    def put_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store a small blob (manifest, config) and return its digest.

        With ``expected_digest`` the content must hash to it (else DigestMismatch)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected_digest is not None and validate_digest(expected_digest) != digest:
            raise DigestMismatch(f"content hashes to {digest}, expected {expected_digest}")
        if self.has(digest):
            return digest
        with self.ingest(digest, len(data)) as ing:
            ing.write(data)
            return ing.commit()

    # -- reading --------------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        """True if a committed blob with this digest exists (not re-verified)."""
        return os.path.isfile(self._blob_path(digest))

    def path(self, digest: str) -> str:
        """The path a committed blob has (pure: no I/O, the blob may be absent)."""
        return self._blob_path(digest)

    def size(self, digest: str) -> int:
        """Size in bytes of a committed blob; BlobNotFound if absent."""
        try:
            return os.stat(self._blob_path(digest)).st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None

    def read_bytes(self, digest: str) -> bytes:
        """The blob's content, re-verified against its digest on every read.

        Meant for small blobs (manifests, configs): re-hashing costs little and a blob
        corrupted on disk surfaces as DigestMismatch instead of being trusted."""
        try:
            with open(self._blob_path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatch(f"stored blob {digest} is corrupt: it hashes to {actual}")
        return data

    def verify(self, digest: str) -> None:
        """Re-hash a stored blob in chunks; DigestMismatch if corrupt, BlobNotFound if absent."""
        h = hashlib.sha256()
        try:
            with open(self._blob_path(digest), "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None
        if "sha256:" + h.hexdigest() != digest:
            raise DigestMismatch(f"stored blob {digest} is corrupt")

    def digests(self) -> list[str]:
        """Digests of all committed blobs, sorted. Foreign files are ignored."""
        out = []
        for name in os.listdir(self._blobs):
            digest = "sha256:" + name
            if _DIGEST_RE.fullmatch(digest):
                out.append(digest)
        return sorted(out)

    # -- removal --------------------------------------------------------------------------

    def delete(self, digest: str) -> None:
        """Remove a blob. Idempotent: deleting an absent blob is not an error."""
        try:
            os.unlink(self._blob_path(digest))
        except FileNotFoundError:
            return
        _fsync_dir(self._blobs)

    def cleanup_stale_ingests(self) -> int:
        """Remove ingests whose writer is gone (kill -9, crash); return how many.

        An ingest in progress holds an exclusive flock on its file, in this process or
        another one, and is left alone. Stale files are removed, never trusted."""
        removed = 0
        for name in os.listdir(self._ingest):
            if self._remove_if_stale(os.path.join(self._ingest, name)):
                removed += 1
        if removed:
            log.info("removed %d stale ingest(s) from %s", removed, self._ingest)
        return removed

    # -- internals ------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> str:
        return os.path.join(self._blobs, _hex(digest))

    def _create_part(self, hexdigest: str) -> tuple[str, int]:
        """Create and flock a fresh ``.part`` file; retry if a cleanup raced us."""
        for _ in range(3):
            path = os.path.join(self._ingest,
                                f"{hexdigest}.{secrets.token_hex(8)}{_PART_SUFFIX}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                         | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                linked = os.fstat(fd).st_nlink > 0
            except BaseException:
                os.close(fd)
                raise
            if linked:
                return path, fd  # the Ingest owns fd now
            os.close(fd)  # a concurrent cleanup unlinked it before we locked it
        raise ImageError(f"could not create an ingest file in {self._ingest}")

    @staticmethod
    def _remove_if_stale(path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            os.unlink(path)  # a symlink has no business here
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live writer holds it
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)  # the one close of fd, on every path
        return True
