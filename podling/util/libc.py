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
