"""Atomic file writes."""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a partial one.

    The file is created with ``mode`` before any byte is written, then fsynced (unless
    ``sync`` is False: atomic against a process crash, not durable across a machine crash —
    for state that does not outlive the machine anyway) and renamed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:  # f owns fd from here on (closed exactly once)
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
