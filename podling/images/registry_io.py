"""Small I/O adapters for the registry client: blob writers and re-sendable bodies."""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Protocol


class BlobWriter(Protocol):
    """Where :meth:`RegistryClient.fetch_blob` puts bytes. ``write`` may be sync or async.

    Optional ``reset()`` (sync or async) discards everything written so far; without it,
    ``seek(0)`` + ``truncate()`` are used if present. A writer that cannot be reset makes a
    download that failed half-way final (no retry, no next endpoint)."""

    def write(self, data: bytes) -> Any: ...


class Sink:
    """Adapts a writer object or a callable to async ``write`` / ``reset``."""

    def __init__(self, writer: BlobWriter | Callable[[bytes], Any]) -> None:
        self._write = writer.write if hasattr(writer, "write") else writer
        self._writer = writer
        self.written = 0

    async def write(self, data: bytes) -> None:
        result = self._write(data)  # type: ignore[operator]
        if inspect.isawaitable(result):
            await result
        self.written += len(data)

    async def reset(self) -> bool:
        """Discard what was written; False when the writer cannot do that."""
        if self.written == 0:
            return True
        w = self._writer
        if hasattr(w, "reset"):
            result = w.reset()
        elif hasattr(w, "seek") and hasattr(w, "truncate"):
            w.seek(0)
            result = w.truncate()
        else:
            return False
        if inspect.isawaitable(result):
            await result
        self.written = 0
        return True


class Body:
    """A re-sendable request body: bytes, or a file opened afresh for each attempt."""

    def __init__(self, data_or_path: bytes | str | os.PathLike[str]) -> None:
        self._data: bytes | None = None
        self._path = ""
        if isinstance(data_or_path, (bytes, bytearray, memoryview)):
            self._data = bytes(data_or_path)
        else:
            self._path = os.fspath(data_or_path)
        self._files: list[Any] = []

    def __call__(self) -> Any:
        if self._data is not None:
            return self._data
        f = open(self._path, "rb")
        self._files.append(f)
        return f

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()
