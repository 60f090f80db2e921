"""attach: a connection to conmon's attach socket of a running container.

conmon (2.1.x) listens on ``<bundle>/attach`` (also reachable as ``<socket dir>/<id>/attach``),
an AF_UNIX SOCK_SEQPACKET socket. Each packet it sends is one output chunk of at most 8 KiB
prefixed by one byte naming the pipe: 2 = stdout, 3 = stderr (conmon's stdpipe_t; a tty
container's console is all stdout). Bytes we send are written to the container's stdin as
they are; our end of file (shutdown SHUT_WR, or closing) makes conmon close the container's
stdin unless it runs with ``--leave-stdin-open`` (the container is not ``stdin_once``).
A socket path can exceed sun_path's 108 bytes, so we connect through ``/proc/self/fd/<n>``
of an O_PATH descriptor of the socket file, as podman does.

Resizing a tty container: one line ``"1 <height> <width>\\n"`` (message type 1 = resize)
written to the ``ctl`` FIFO in the bundle directory; conmon passes ``"<height> <width>"`` on
through its own ``winsz`` FIFO and then resizes the console. conmon 2.1.6 handles only the
first line of what one read() returns (it parses from the start of its buffer for every
line), on either FIFO, so resizes go one at a time: the next is written once *both* FIFOs
are empty again (a second line reaching ``winsz`` before conmon read the first would
repeat the first size), and sizes asked for meanwhile collapse into the latest (kubectl
attach sends two at once: w+1 x h+1, then w x h).

    connect ──▶ attached ──conmon closes (container exited)──▶ read() → None
                   └──────── close(): disconnect only; the container keeps running
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import socket
import termios

from ..interface import STDERR, STDOUT
from . import stdio

PACKET_SIZE = 8192 + 1  # conmon's STDIO_BUF_SIZE + the pipe byte
INPUT_CHUNK = 8192  # conmon reads input packets into a buffer of this order; never more
_PIPES = {2: STDOUT, 3: STDERR}
RESIZE_EVENT = 1


def connect_socket(path: str) -> socket.socket:
    """A non-blocking SEQPACKET connection to conmon's socket at ``path`` (any length)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(f"/proc/self/fd/{fd}")
        except BaseException:
            sock.close()
            raise
    finally:
        os.close(fd)
    sock.setblocking(False)
    return sock


def resize_message(width: int, height: int) -> bytes:
    return f"{RESIZE_EVENT} {height} {width}\n".encode()


async def _fifos_drained(fds: list[int], timeout: float = 10.0) -> None:
    """Wait (bounded) until the FIFOs behind ``fds`` hold no unread bytes. The bound is
    generous: writing the next line while conmon has not read this one yet would merge
    both into one read, and conmon would apply only the first (a busy host lost kubectl
    attach's second resize that way, in ``ctl`` and in ``winsz``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    unread = array.array("i", [0])
    # two empty checks in a row: conmon may be between its read of ctl and its write of winsz
    empty_checks = 0
    while loop.time() < deadline:
        pending = 0
        for fd in fds:
            unread[0] = 0
            with contextlib.suppress(OSError):
                fcntl.ioctl(fd, termios.FIONREAD, unread)
            pending += unread[0]
        empty_checks = empty_checks + 1 if pending == 0 else 0
        if empty_checks == 2:
            return
        await asyncio.sleep(0.005)


class ConmonAttach:
    """The ExecSession of one attachment (see the module doc)."""

    def __init__(self, sock: socket.socket, *, tty: bool, stdin: bool, ctl_path: str) -> None:
        self.tty = tty
        self._sock = sock
        self._stdin = stdin
        self._ctl_path = ctl_path
        self._write_lock = asyncio.Lock()
        self._resize_lock = asyncio.Lock()
        self._wanted_size: tuple[int, int] | None = None
        self._ended = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self._output = stdio.Output()
        self._output.add(self._pump)

    async def _pump(self, emit: stdio.Emit) -> None:
        try:
            while packet := await stdio.read_fd(self._sock.fileno(), PACKET_SIZE):
                stream = _PIPES.get(packet[0])
                if stream is not None:
                    await emit(stream, packet[1:])
        finally:
            self._ended.set()

    async def read(self) -> tuple[int, bytes] | None:
        return await self._output.get()

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            if not self._stdin or self._closing is not None:
                return
            try:
                for start in range(0, len(data), INPUT_CHUNK):
                    await stdio.write_fd(self._sock.fileno(), data[start:start + INPUT_CHUNK])
            except OSError:
                self._stdin = False

    async def close_stdin(self) -> None:
        async with self._write_lock:
            if self._stdin and self._closing is None:
                self._stdin = False
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_WR)

    async def resize(self, width: int, height: int) -> None:
        if not self.tty or width <= 0 or height <= 0:
            return
        self._wanted_size = (width, height)
        async with self._resize_lock:
            if self._wanted_size is None:
                return  # a concurrent call already wrote the latest size
            (width, height), self._wanted_size = self._wanted_size, None
            try:
                fd = os.open(self._ctl_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                return  # conmon is gone: the container has exited
            fds = [fd]
            with contextlib.suppress(OSError):  # only watched, never written
                fds.append(os.open(os.path.join(os.path.dirname(self._ctl_path), "winsz"),
                                   os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            try:
                with contextlib.suppress(BlockingIOError):
                    os.write(fd, resize_message(width, height))
                await _fifos_drained(fds)
            finally:
                for opened in fds:
                    os.close(opened)

    async def wait(self) -> None:
        await self._ended.wait()
        return None

    async def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked write (EPIPE)
        await self._output.stop()
        self._ended.set()
        async with self._write_lock:
            self._sock.close()
