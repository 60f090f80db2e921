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


def write_in_place(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` into ``path`` itself (created with ``mode`` when missing), keeping its
    inode: what a bind mount of ``path`` shows changes with it, which a rename would not do.
    Unchanged contents are not rewritten. A reader may see a mix of old and new while the
    contents change (the kubelet's /etc/hosts has the same property); not fsynced."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        if os.fstat(fd).st_size == len(data) and os.read(fd, len(data) + 1) == data:
            return
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
