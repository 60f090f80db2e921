"""Random access to the files of an image archive: a tar (maybe compressed) or a directory.

A :class:`Source` maps *archive names* (``manifest.json``, ``blobs/sha256/<hex>``) to
content. Names are normalised (``./x`` → ``x``) and checked: absolute names, ``..``
escapes and NUL bytes raise ``InvalidArchive``. Symlinks and hard links inside a tar are
followed within the archive only; in a directory the resolved real path must stay inside
the directory. Only regular files can be read.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import platform
import posixpath
import tarfile
from typing import BinaryIO, Callable, Protocol

from podling.images.errors import InvalidArchive

MAX_JSON_BYTES = 8 << 20
MAX_LINK_HOPS = 16
CHUNK = 1 << 20


class Source(Protocol):
    def exists(self, name: str) -> bool:
        """True if ``name`` resolves to a regular file."""
        ...

    def read_bytes(self, name: str, limit: int = MAX_JSON_BYTES) -> bytes:
        """The whole file; ``InvalidArchive`` if missing or larger than ``limit``."""
        ...

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        """A function returning a new reader of ``name`` each call (checked now)."""
        ...

    def close_index(self) -> None:
        """Release what parsing held open (openers stay usable)."""
        ...


def host_arch() -> str:
    """This host's architecture in OCI/GOARCH spelling (``amd64``, ``arm64``…)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine)


def safe_name(name: str) -> str:
    """Normalise an archive-relative name; reject anything that could leave the archive."""
    if not name or "\x00" in name or name.startswith("/"):
        raise InvalidArchive(f"unsafe path {name!r} in archive")
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../"):
        raise InvalidArchive(f"unsafe path {name!r} in archive (escapes it)")
    return norm


def open_source(path: str) -> Source:
    """A :class:`TarSource` or :class:`DirSource` for ``path``."""
    if os.path.isdir(path):
        return DirSource(path)
    if not os.path.isfile(path):
        raise InvalidArchive(f"{path}: no such archive file or directory")
    return TarSource(path)


def bounded_json(source: Source, name: str) -> object:
    """Parse a JSON document of the archive (at most ``MAX_JSON_BYTES``)."""
    data = source.read_bytes(name)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArchive(f"{name}: invalid JSON: {e}") from e


def hash_stream(opener: Callable[[], BinaryIO]) -> tuple[str, int, bytes]:
    """(sha256 digest, size, first 4 bytes) of what ``opener()`` reads."""
    h, size, head = hashlib.sha256(), 0, b""
    with opener() as f:
        while chunk := f.read(CHUNK):
            if size < 4:
                head = (head + chunk)[:4]
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size, head


class _Bounded(io.RawIOBase):
    """Reads at most ``length`` bytes of ``raw`` from its current position."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        super().__init__()
        self._raw, self._left = raw, length

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        data = self._raw.read(min(len(buf), self._left))
        if not data:
            raise InvalidArchive("archive is truncated")
        buf[:len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _decompressor(path: str) -> Callable[[], BinaryIO]:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return lambda: gzip.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        return lambda: bz2.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lambda: lzma.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidArchive(f"{path}: zstd-compressed archives are not supported; "
                             "decompress it first (zstd -d)")
    return lambda: open(path, "rb")


class TarSource:
    """A tar archive, indexed once; each opener reopens the file and seeks to the member.

    A compressed archive (gzip, bzip2, xz) is supported, but each open decompresses from the
    start up to the member: fine for a few layers, slow for big many-layer archives."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._open = _decompressor(path)
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            with self._open() as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                for info in tar:
                    try:
                        self._members[safe_name(info.name)] = info
                    except InvalidArchive:
                        continue  # never read; a reference to it is rejected by name
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as e:
            raise InvalidArchive(f"{path}: not a readable tar archive: {e}") from e

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        current = safe_name(name)
        for _ in range(MAX_LINK_HOPS):
            info = self._members.get(current)
            if info is None:
                return None
            if info.issym():
                target = posixpath.join(posixpath.dirname(current), info.linkname)
                current = safe_name(target)
            elif info.islnk():
                current = safe_name(info.linkname)
            elif info.isreg() and not info.issparse():
                return info
            else:
                raise InvalidArchive(f"{name}: not a regular file in the archive")
        raise InvalidArchive(f"{name}: too many links in the archive")

    def exists(self, name: str) -> bool:
        return self._resolve(name) is not None

    def _info(self, name: str) -> tarfile.TarInfo:
        info = self._resolve(name)
        if info is None:
            raise InvalidArchive(f"{self._path}: {name} is missing from the archive")
        return info

    def read_bytes(self, name: str, limit: int = MAX_JSON_BYTES) -> bytes:
        info = self._info(name)
        if info.size > limit:
            raise InvalidArchive(f"{name}: {info.size} bytes is larger than {limit}")
        with self.opener(name)() as f:
            return f.read()

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        info = self._info(name)
        offset, size, open_ = info.offset_data, info.size, self._open

        def _open() -> BinaryIO:
            raw = open_()
            try:
                raw.seek(offset)
            except BaseException:
                raw.close()
                raise
            return io.BufferedReader(_Bounded(raw, size), CHUNK)  # type: ignore[return-value]

        return _open

    def close_index(self) -> None:
        self._members.clear()


class DirSource:
    """An unpacked layout or docker-save directory."""

    def __init__(self, path: str) -> None:
        self._root = os.path.realpath(path)

    def _real(self, name: str) -> str | None:
        real = os.path.realpath(os.path.join(self._root, safe_name(name)))
        if not real.startswith(self._root + os.sep):
            raise InvalidArchive(f"{name}: resolves outside {self._root}")
        return real if os.path.isfile(real) else None

    def exists(self, name: str) -> bool:
        return self._real(name) is not None

    def _must(self, name: str) -> str:
        real = self._real(name)
        if real is None:
            raise InvalidArchive(f"{self._root}: {name} is missing")
        return real

    def read_bytes(self, name: str, limit: int = MAX_JSON_BYTES) -> bytes:
        real = self._must(name)
        if os.path.getsize(real) > limit:
            raise InvalidArchive(f"{name}: larger than {limit} bytes")
        with open(real, "rb") as f:
            return f.read(limit + 1)

    def opener(self, name: str) -> Callable[[], BinaryIO]:
        real = self._must(name)
        return lambda: open(real, "rb")

    def close_index(self) -> None:
        pass
