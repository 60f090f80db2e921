"""Named network namespaces and their loopback interface, in-process (no ``unshare`` / ``ip``
/ CNI ``loopback`` programs).

A network namespace belongs to a *thread*: the work runs in a fresh, short-lived thread that
``unshare(CLONE_NEWNET)``s or ``setns``es into the namespace and then ends, so no thread of
the process — neither the event loop's nor a pooled worker's — is ever left in another
namespace. Blocking (a few hundred microseconds); async callers use ``asyncio.to_thread``.

    create(path)       new netns, bind-mounted at ``path`` (a new file), ``lo`` up
    loopback_up(path)  ``lo`` up in the netns bound at ``path`` (what CNI's loopback ADD does)

Errors are OSError with the syscall's errno; ``create`` leaves nothing behind on failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import threading
from typing import Callable

from .libc import libc, os_error
from .mounts import MS_BIND, mount, unmount

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1


def create(path: str) -> None:
    """A new network namespace kept alive by a bind mount at ``path`` (created; must not
    exist), with ``lo`` up. On failure nothing is left (no file, no mount)."""
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    with open(path, "x"):
        pass
    try:
        in_fresh_thread(lambda: _create_here(path))
    except BaseException:
        with contextlib.suppress(OSError):
            unmount(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def loopback_up(path: str) -> None:
    """Set ``lo`` up in the network namespace bound at ``path`` (idempotent)."""
    in_fresh_thread(lambda: _loopback_up_in(path))


def _create_here(path: str) -> None:
    if libc().unshare(CLONE_NEWNET) != 0:
        raise os_error("unshare(CLONE_NEWNET)")
    mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, MS_BIND)
    _set_lo_up()


def _loopback_up_in(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc().setns(fd, CLONE_NEWNET) != 0:
            raise os_error(f"setns {path}")
    finally:
        os.close(fd)
    _set_lo_up()


def _set_lo_up() -> None:
    """ioctl SIOCSIFFLAGS on ``lo`` of the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo",
                                                                 flags | IFF_UP))


def in_fresh_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a new thread that ends right after it (taking its namespace with it);
    re-raise what it raised."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=body, name="podling-netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
