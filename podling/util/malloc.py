"""Fixed glibc malloc thresholds for a process that relays bulk streams.

A stream (exec output, port-forward) moves its bytes in buffers of 64 KiB to 1 MiB: the
chunk read from a pipe or socket, the WebSocket or SPDY frame around it, the TLS records.
With glibc's defaults each such buffer, being above the (dynamic) mmap threshold or at the
top of a heap that is then trimmed, lives in pages just mapped for it: every chunk costs
page faults, zeroing and a munmap or brk, which measured about 2/3 of the CPU of a relay
hop (1 MiB WebSocket messages over a Unix socket, both ends in one process: 0.98 ms of CPU
per MiB with the defaults, 0.36 ms with these thresholds).

:func:`tune_for_streams` sets ``M_MMAP_THRESHOLD`` (allocations from which malloc maps
their own pages) to 2 MiB and ``M_TRIM_THRESHOLD`` (free memory at the top of the heap
before it is returned) to 4 MiB, so such buffers reuse heap pages. Setting them turns off
glibc's dynamic adjustment, which would otherwise raise the mmap threshold as high as
32 MiB; what the process may keep beyond its live data is the 4 MiB at the top of its heap.
Per process, idempotent; a C library without ``mallopt`` (musl) is left alone.
"""

from __future__ import annotations

import threading

from .libc import libc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 2 * 1024 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024

_lock = threading.Lock()
_tuned: bool | None = None


def tune_for_streams() -> bool:
    """Set the thresholds once for this process; True if the C library took them."""
    global _tuned
    with _lock:
        if _tuned is None:
            _tuned = _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and \
                _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        return _tuned


def _mallopt(param: int, value: int) -> bool:
    try:
        mallopt = libc().mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(param, value))  # int (int, int): ctypes' default conversions
