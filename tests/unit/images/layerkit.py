"""Builders for layer tarballs in tests: full control over every header, even broken ones."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass, field

import zstandard

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
PLAIN = "application/vnd.oci.image.layer.v1.tar"

KINDS = {
    "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
    "link": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass
class E:
    """One tar entry. ``size`` overrides the header size (the body stays ``data``)."""

    name: str
    kind: str | bytes = "file"
    data: bytes = b""
    linkname: str = ""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    mtime: float = 1_600_000_000
    major: int = 0
    minor: int = 0
    pax: dict[str, str] = field(default_factory=dict)
    size: int | None = None


def header(e: E, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    ti = tarfile.TarInfo(e.name)
    ti.type = KINDS.get(e.kind, e.kind) if isinstance(e.kind, str) else e.kind
    ti.size = len(e.data) if e.size is None else e.size
    ti.linkname = e.linkname
    ti.mode = e.mode if e.mode is not None else (0o755 if e.kind == "dir" else 0o644)
    ti.uid, ti.gid, ti.mtime = e.uid, e.gid, e.mtime
    ti.devmajor, ti.devminor = e.major, e.minor
    ti.pax_headers = dict(e.pax)
    return ti.tobuf(fmt, "utf-8", "surrogateescape")


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def build_tar(entries: list[E | bytes], fmt: int = tarfile.PAX_FORMAT,
              end: bool = True) -> bytes:
    """Entries in order (raw ``bytes`` items are spliced in as-is), then the end marker."""
    out = io.BytesIO()
    for e in entries:
        if isinstance(e, bytes):
            out.write(e)
            continue
        out.write(header(e, fmt))
        out.write(pad(e.data))
    if end:
        out.write(b"\0" * 1024)
    return out.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == GZIP:
        return gzip.compress(data, compresslevel=1)
    if how == ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_blob(directory: str, tar: bytes, how: str = GZIP) -> str:
    blob = compress(tar, how)
    path = os.path.join(directory, "blob-" + hashlib.sha256(blob).hexdigest()[:12])
    with open(path, "wb") as f:
        f.write(blob)
    return path
