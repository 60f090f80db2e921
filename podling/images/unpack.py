"""Safe layer unpacking: one layer blob → one overlayfs-ready directory named by diff ID.

Layout under ``layers_root``::

    sha256/<diffhex>/   unpacked layers (overlayfs lower dirs); shared between images
    tmp/<random>/       extractions in progress; removed on failure, and at open after kill -9

Pipeline (all streaming, constant memory)::

    blob ─▶ decompress (gzip | zstd | plain, by magic bytes) ─▶ cap + sha256 (diff ID)
         ─▶ tar headers (tarfile "r|", parsing only) ─▶ SafeTree writes (tarsafe.py)

State machine of one ``unpack_layer`` call::

    start ─▶ extracting in tmp/<random> ──▶ drained, dirs finalised, synced
                 │ UnsafeLayer / LayerTooLarge / ImageError / any exception
                 ▼                                  │ diff ID ≠ expected → DigestMismatch
           tmp removed, error raised ◀──────────────┤
                                                    ▼
                                rename tmp → sha256/<diffhex>
                                  ├─ ok: the layer is visible (complete by construction)
                                  └─ already there (shared layer / concurrent unpack):
                                     tmp discarded, the existing directory is returned

Policy (what is refused vs. confined):

- Refused with UnsafeLayer naming the entry: a ``..`` climbing above the root; a path
  through a symlink or a non-directory; a NUL byte; paths over PATH_MAX; hardlinks to
  anything outside this layer, to directories, or through symlinked parents; whiteouts of
  ``""``, ``.``, ``..``; ``.wh.`` names on non-regular entries or used as directories;
  sparse files, unknown entry types, corrupt or truncated tar data, oversized metadata
  headers; devices when ``devices=DevicePolicy.REFUSE``.
- Confined (extracted inside the layer): absolute names (``/etc/x`` → ``<layer>/etc/x``),
  ``./`` prefixes, lexical ``..`` that stays inside, symlinks with any target (absolute or
  ``..``: resolved only inside the container), hardlinks to symlinks, fifos, char 0/0
  whiteouts, duplicates (a later entry replaces an earlier one), setuid bits on symlinks
  (ignored: symlinks have no mode).
- Devices other than char 0/0: skipped with a warning by default (``DevicePolicy.SKIP``);
  containers get ``/dev`` from the runtime, never from an image.
- ``trusted.overlay.*`` xattrs from a layer are dropped (only we mark opaque dirs).
- A decompressed stream over ``max_bytes`` (or any entry claiming more) raises
  LayerTooLarge at once, before the excess is read.

``unpack_layer`` blocks; async callers use ``asyncio.to_thread``. Concurrent calls (threads
or processes) are safe, even for the same layer.
"""

from __future__ import annotations

import enum
import errno
import gzip
import hashlib
import logging
import os
import stat
import tarfile
import tempfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any, NoReturn

import zstandard

from podling.images.content import validate_digest
from podling.images.errors import DigestMismatch, ImageError, LayerTooLarge, UnsafeLayer
from podling.images.tarsafe import Meta, SafeTree, force_rmtree, normalize
from podling.util.libc import libc

log = logging.getLogger(__name__)

DEFAULT_MAX = 8 << 30  # 8 GiB of uncompressed tar stream
MAX_META_HEADER = 1 << 20  # PAX / GNU long-name headers are read into memory: cap them
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_UNSUPPORTED_SUFFIXES = ("+bzip2", "+xz", "+lz4", "+encrypted")


class DevicePolicy(enum.Enum):
    """What to do with block/char device entries other than char 0/0 whiteouts."""

    REFUSE = "refuse"  # UnsafeLayer naming the entry
    SKIP = "skip"  # leave it out, log a warning (default)
    ALLOW = "allow"  # create the node (root only)


@dataclass(frozen=True)
class UnpackedLayer:
    """An unpacked layer: its diff ID, directory, and uncompressed tar size in bytes."""

    diff_id: str
    path: str
    size: int


def layer_path(layers_root: str, diff_id: str) -> str:
    """Where the layer with this diff ID lives (pure; it may be absent)."""
    return os.path.join(layers_root, "sha256", validate_digest(diff_id)[len("sha256:"):])


def cleanup_stale_unpacks(layers_root: str) -> int:
    """Remove leftovers of interrupted unpacks (kill -9); return how many.

    Call once at start-up, before any unpack runs in this ``layers_root``."""
    tmp = os.path.join(layers_root, "tmp")
    if not os.path.isdir(tmp):
        return 0
    names = os.listdir(tmp)
    for name in names:
        force_rmtree(os.path.join(tmp, name))
    if names:
        log.info("removed %d interrupted unpack(s) from %s", len(names), tmp)
    return len(names)


def unpack_layer(blob_path: str, layers_root: str, *, media_type: str,
                 expected_diff_id: str | None = None, max_bytes: int = DEFAULT_MAX,
                 devices: DevicePolicy = DevicePolicy.SKIP,
                 durable: bool = True) -> UnpackedLayer:
    """Extract the layer blob at ``blob_path`` into ``<layers_root>/sha256/<diffhex>``.

    ``media_type`` rejects unsupported encodings (bzip2, xz, encrypted…); gzip, zstd or a
    plain tar are told apart by their magic bytes. With ``expected_diff_id`` a layer whose
    uncompressed stream hashes differently raises DigestMismatch. ``durable`` syncs the
    filesystem before the rename so a crash never exposes a half-written layer.
    Raises UnsafeLayer / LayerTooLarge / DigestMismatch / ImageError; on any failure
    nothing is left behind. See the module docstring for the policy."""
    if expected_diff_id is not None:
        validate_digest(expected_diff_id)
    _check_media_type(media_type)
    final_parent = os.path.join(layers_root, "sha256")
    tmp_parent = os.path.join(layers_root, "tmp")
    for d in (layers_root, final_parent, tmp_parent):
        os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=tmp_parent, prefix="unpack-")
    try:
        diff_id, size = _extract_blob(blob_path, tmp, max_bytes, devices)
        if expected_diff_id is not None and diff_id != expected_diff_id:
            raise DigestMismatch(f"layer {blob_path} has diff ID {diff_id}, "
                                 f"expected {expected_diff_id}")
        if durable:
            _syncfs(tmp)
        final = layer_path(layers_root, diff_id)
        _publish(tmp, final)
    except BaseException:
        force_rmtree(tmp)
        raise
    return UnpackedLayer(diff_id=diff_id, path=final, size=size)


def _publish(tmp: str, final: str) -> None:
    """Atomically rename ``tmp`` to ``final``; if ``final`` exists, drop ``tmp``."""
    try:
        os.rename(tmp, final)
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        log.debug("layer %s already unpacked; discarding the new copy", final)
        force_rmtree(tmp)
        return
    fd = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_media_type(media_type: str) -> None:
    if media_type.endswith(_UNSUPPORTED_SUFFIXES):
        raise UnsafeLayer(f"unsupported layer media type {media_type!r}")


def _syncfs(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc().syncfs(fd) != 0:
            os.sync()
    except (AttributeError, OSError):
        os.sync()
    finally:
        os.close(fd)


# -- the decompressed, capped, hashed stream ------------------------------------------------

class _CappedHashReader:
    """A read-only stream that hashes what passes and stops at ``max_bytes``."""

    def __init__(self, inner: IO[bytes], max_bytes: int) -> None:
        self._inner = inner
        self.max_bytes = max_bytes
        self.count = 0
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        try:
            data = self._inner.read(min(n, self.max_bytes - self.count + 1))
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
            raise UnsafeLayer(f"corrupt compressed layer data: {e}") from e
        self.count += len(data)
        if self.count > self.max_bytes:
            raise LayerTooLarge(f"layer decompresses to more than {self.max_bytes} bytes")
        self.hash.update(data)
        return data

    def drain(self) -> None:
        """Read to the end so the diff ID covers the whole stream (tar padding included)."""
        while self.read(1 << 20):
            pass


def _open_decompressed(stack: ExitStack, blob_path: str) -> IO[bytes]:
    raw = stack.enter_context(open(blob_path, "rb"))
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if magic == _ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return stack.enter_context(reader)
    return raw


# -- tar parsing --------------------------------------------------------------------------

class _StrictTarInfo(tarfile.TarInfo):
    """TarInfo that refuses corrupt headers, sparse files and oversized metadata headers.

    (tarfile silently ends the archive at a corrupt header; we want an error.)"""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> Any:
        try:
            return super().frombuf(buf, encoding, errors)
        except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as e:
            raise UnsafeLayer(f"corrupt tar header: {e}") from None

    def _proc_member(self, tf: tarfile.TarFile) -> Any:
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise UnsafeLayer(f"layer entry {self.name!r}: sparse files are not supported")
        meta_types = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                      tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
        if self.type in meta_types and self.size > MAX_META_HEADER:
            raise UnsafeLayer(f"oversized tar metadata header ({self.size} bytes, "
                              f"limit {MAX_META_HEADER})")
        return super()._proc_member(tf)  # type: ignore[misc]


def _extract_blob(blob_path: str, tmp: str, max_bytes: int,
                  devices: DevicePolicy) -> tuple[str, int]:
    """Extract into ``tmp``; return (diff ID, uncompressed size)."""
    with ExitStack() as stack:
        reader = _CappedHashReader(_open_decompressed(stack, blob_path), max_bytes)
        tree = SafeTree(tmp)
        stack.callback(tree.close)
        try:
            tar = stack.enter_context(tarfile.open(
                fileobj=reader, mode="r|", tarinfo=_StrictTarInfo))  # type: ignore[arg-type]
            _extract_members(tar, tree, max_bytes, devices)
        except (tarfile.TarError, RecursionError) as e:
            raise UnsafeLayer(f"invalid tar stream: {e}") from e
        reader.drain()
        tree.finish()
        return "sha256:" + reader.hash.hexdigest(), reader.count


def _extract_members(tar: tarfile.TarFile, tree: SafeTree, max_bytes: int,
                     devices: DevicePolicy) -> None:
    last = "<start of archive>"
    while True:
        try:
            member = tar.next()
        except UnsafeLayer as e:
            _reraise_naming(e, f"after {last!r}")
        if member is None:
            return
        tar.members.clear()  # stream mode keeps every header otherwise: O(entries) memory
        last = member.name
        try:
            _apply(member, tar, tree, max_bytes, devices)
        except UnsafeLayer as e:
            _reraise_naming(e, f"layer entry {member.name!r}")
        except ImageError:
            raise
        except tarfile.TarError as e:
            raise UnsafeLayer(f"layer entry {member.name!r}: {e}") from e
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
                raise ImageError(f"unpacking layer entry {member.name!r}: {e}") from e
            raise UnsafeLayer(f"layer entry {member.name!r}: {e.strerror or e}") from e
        except (ValueError, OverflowError) as e:
            raise UnsafeLayer(f"layer entry {member.name!r}: {e}") from e


def _reraise_naming(e: UnsafeLayer, where: str) -> NoReturn:
    """Re-raise ``e``, its message prefixed with ``where`` unless it names an entry already."""
    if str(e).startswith("layer entry"):
        raise e
    raise type(e)(f"{where}: {e}") from e


def _meta(m: tarfile.TarInfo) -> Meta:
    if not (0 <= m.uid < 2**32 - 1 and 0 <= m.gid < 2**32 - 1):
        raise UnsafeLayer(f"layer entry {m.name!r}: uid/gid {m.uid}/{m.gid} out of range")
    mtime_ns = int(m.mtime * 1_000_000_000)
    atime = m.pax_headers.get("atime")
    atime_ns = int(float(atime) * 1_000_000_000) if atime else mtime_ns
    xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
              for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return Meta(uid=m.uid, gid=m.gid, mode=m.mode & 0o7777, mtime_ns=mtime_ns,
                atime_ns=atime_ns, xattrs=xattrs)


def _apply(m: tarfile.TarInfo, tar: tarfile.TarFile, tree: SafeTree, max_bytes: int,
           devices: DevicePolicy) -> None:
    """Apply one archive member to the tree (dispatch on type; whiteouts first)."""
    name = m.name
    if m.size > max_bytes:
        raise LayerTooLarge(f"layer entry {name!r} claims {m.size} bytes "
                            f"(limit {max_bytes})")
    if m.sparse is not None:
        raise UnsafeLayer(f"layer entry {name!r}: sparse files are not supported")
    path = normalize(name, name)
    base = path[-1] if path else ""
    if base.startswith(".wh."):
        _apply_whiteout(m, path, tree)
    elif m.isdir():
        tree.make_dir(path, _meta(m), name)
    elif m.isreg():
        src = tar.extractfile(m)
        assert src is not None
        tree.make_file(path, src, m.size, _meta(m), name)
    elif m.issym():
        tree.make_symlink(path, m.linkname, _meta(m), name)
    elif m.islnk():
        tree.make_hardlink(path, normalize(m.linkname, name), name)
    elif m.ischr() or m.isblk():
        _apply_device(m, path, tree, devices)
    elif m.isfifo():
        tree.make_node(path, stat.S_IFIFO, 0, _meta(m), name)
    else:
        raise UnsafeLayer(f"layer entry {name!r}: unsupported tar entry type {m.type!r}")


def _apply_whiteout(m: tarfile.TarInfo, path: tuple[str, ...], tree: SafeTree) -> None:
    base = path[-1]
    if not m.isreg():
        raise UnsafeLayer(f"layer entry {m.name!r}: the whiteout name {base!r} is reserved "
                          "for empty regular files")
    if base == ".wh..wh..opq":
        tree.opaque(path[:-1], m.name)
    elif base.startswith(".wh..wh."):
        log.debug("layer entry %r: skipping aufs metadata", m.name)
    else:
        tree.whiteout(path[:-1], base[len(".wh."):], m.name)


def _apply_device(m: tarfile.TarInfo, path: tuple[str, ...], tree: SafeTree,
                  devices: DevicePolicy) -> None:
    kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
    whiteout = kind == stat.S_IFCHR and m.devmajor == 0 and m.devminor == 0
    if not whiteout and devices is not DevicePolicy.ALLOW:
        what = (f"layer entry {m.name!r}: {'char' if m.ischr() else 'block'} device "
                f"{m.devmajor}:{m.devminor}")
        if devices is DevicePolicy.REFUSE:
            raise UnsafeLayer(f"{what} refused")
        log.warning("%s skipped (devices come from the runtime)", what)
        return
    tree.make_node(path, kind, os.makedev(m.devmajor, m.devminor), _meta(m), m.name)
