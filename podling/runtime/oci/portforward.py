"""port-forward: a TCP connection to localhost:<port> inside a pod's network namespace.

No socat, no nsenter: a dedicated short-lived thread enters the namespace (setns
CLONE_NEWNET through libc; Python 3.11 has no os.setns), creates and connects the socket,
and switches back. A socket keeps the namespace it was created in, so the connected socket
is then handed to asyncio (``open_connection(sock=…)``) on the event loop. The thread is
never reused, so a failed switch back cannot leak the pod's namespace into other work.
An empty namespace path (hostNetwork) connects in the host's namespace.

Like containerd, IPv4 (127.0.0.1) is tried first, then IPv6 (::1); when both fail the error
reads ``failed to connect to localhost:80 inside namespace "<id>", IPv4: dial tcp4
127.0.0.1:80: connect: connection refused IPv6 dial tcp6 [::1]:80: connect: connection
refused``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Callable, TypeVar

from podling.util.libc import libc, os_error

from ..interface import PortForwardError

CLONE_NEWNET = 0x40000000
STREAM_LIMIT = 1024 * 1024  # the reader buffers up to twice this before it stops reading the pod
T = TypeVar("T")


def setns(fd: int, nstype: int) -> None:
    if libc().setns(fd, nstype) != 0:
        raise os_error("setns")


def in_netns(netns_path: str, work: Callable[[], T]) -> T:
    """Run ``work()`` with the calling thread in the network namespace at ``netns_path``
    (as is for ''). The thread must be one that is never reused (see ``run_in_thread``)."""
    if not netns_path:
        return work()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            return work()
        finally:
            setns(own, CLONE_NEWNET)  # if this fails the thread ends anyway
    finally:
        os.close(own)


async def run_in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a new thread that ends with it; the result or exception comes back."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if done.cancelled():
            if isinstance(result, socket.socket):
                result.close()
        elif error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def main() -> None:
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(deliver, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, result, None)

    threading.Thread(target=main, name="podling-netns", daemon=True).start()
    return await done


def _go_error(exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def dial_localhost(port: int, *, namespace: str, timeout: float) -> socket.socket:
    """A connected, non-blocking socket to localhost:``port`` (IPv4, else IPv6) in the
    calling thread's network namespace. Raises PortForwardError."""
    errors = []
    for family, host, label in ((socket.AF_INET, "127.0.0.1", f"tcp4 127.0.0.1:{port}"),
                                (socket.AF_INET6, "::1", f"tcp6 [::1]:{port}")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            errors.append(f"dial {label.split()[0]}: socket: {_go_error(exc)}")
            continue
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except OSError as exc:
            sock.close()
            reason = "i/o timeout" if isinstance(exc, TimeoutError) else _go_error(exc)
            errors.append(f"dial {label}: connect: {reason}")
            continue
        sock.setblocking(False)
        return sock
    raise PortForwardError(f'failed to connect to localhost:{port} inside namespace '
                           f'"{namespace}", IPv4: {errors[0]} IPv6 {errors[1]}')


async def connect(netns_path: str, port: int, *, namespace: str, timeout: float
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the connection (see the module doc); ``namespace`` names it in errors."""
    if not 0 < port < 65536:
        raise PortForwardError(f"invalid port {port}")
    try:
        sock = await run_in_thread(lambda: in_netns(
            netns_path, lambda: dial_localhost(port, namespace=namespace, timeout=timeout)))
    except OSError as exc:
        raise PortForwardError(f'failed to enter network namespace of "{namespace}": '
                               f'{exc}') from exc
    try:
        return await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)
    except BaseException:
        sock.close()
        raise
