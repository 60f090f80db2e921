"""The C library, loaded once for every ctypes caller in podling.

``libc()`` returns the process's libc with ``use_errno=True``, so after a failed call
``ctypes.get_errno()`` (or :func:`os_error`) gives the reason. The prototypes of the calls
podling makes with pointer arguments are declared here, once, so that no module sets
``argtypes`` on the shared handle behind another's back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library (thread-safe to call; loaded on first use)."""
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                          ctypes.c_char_p]
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return lib


def os_error(what: str) -> OSError:
    """An OSError for the errno the last libc call on this thread left, e.g.
    ``OSError(EBUSY, "umount /x: Device or resource busy")``."""
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def release_freed_memory() -> None:
    """Hand memory that was freed but is still held by malloc back to the system
    (glibc's ``malloc_trim(0)``); a no-op where the C library has no such call."""
    trim = getattr(libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc's malloc keep at most ``arenas`` arenas (``mallopt(M_ARENA_MAX)``, as the
    ``MALLOC_ARENA_MAX`` environment variable does at exec) unless the environment already
    chose; returns whether the limit was set.

    By default each thread that allocates may get an arena of its own (up to 8 per core),
    whose freed pages stay resident; podling's threads (the asyncio executor, SQLite) run
    mostly under the GIL, so sharing arenas costs no parallelism. Call it early, before the
    process starts threads: arenas that already exist are kept."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(libc(), "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1
