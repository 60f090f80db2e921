"""A lean TCP connect and HTTP/1.1 GET for probes: one non-blocking socket driven by the
event loop's reader/writer callbacks, resolving one future (no transports, no streams, no
``sock_*`` coroutines, no client session), since a node runs many of them every second
(docs/architecture.md, probes).

    exchange(family, sockaddr, request, timeout) ─▶ future of (code, body)
        connect_ex ─ EINPROGRESS ─▶ writable: SO_ERROR ≠ 0 ─▶ OSError (errno set, so a
            refusal is a ConnectionRefusedError); a handshake that completed within
            connect_ex (a local bridge) goes on at once
        request None (tcpSocket) ─▶ (0, b"") once connected
        else send the request bytes ─▶ readable: read the status line and the headers
            (MalformedResponse on a bad status line, on EOF or more than 64 KiB before
            the blank line), then at most MAX_BODY bytes of body (Content-Length,
            chunked, or up to EOF)
        ``timeout`` seconds after the start ─▶ TimeoutError
    build_request(target, headers) ─ the bytes of ``GET target HTTP/1.1``, the headers,
        ``Connection: close``
    literal_address(host, port) ─ (family, sockaddr) of an IP literal, None for a name;
        resolve(host, port) also looks a name up with the loop's ``getaddrinfo``
    http_get / tcp_connect ─ the same for a host and port (tests, one-off callers)

The socket is closed on every path, also when the awaiting task is cancelled (a
connection per probe, as the kubelet's; no keep-alive).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from typing import Any

MAX_BODY = 10 * 1024
_RECV = 16 * 1024
_MAX_HEAD = 64 * 1024
_PENDING = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)

Address = tuple[int, tuple[Any, ...]]  # (address family, socket address)


class MalformedResponse(Exception):
    """The peer did not answer with HTTP/1.x (the text says what was read)."""


def literal_address(host: str, port: int) -> Address | None:
    """(family, sockaddr) when ``host`` is an IPv4 or IPv6 literal, else None."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if ip.version == 6:
        return socket.AF_INET6, (str(ip), port, 0, 0)
    return socket.AF_INET, (str(ip), port)


async def resolve(host: str, port: int) -> Address:
    """``literal_address``, else the first address ``getaddrinfo`` gives (OSError when
    there is none)."""
    found = literal_address(host, port)
    if found is not None:
        return found
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"lookup {host}: no such host")
    return infos[0][0], infos[0][4]


def build_request(target: str, headers: list[tuple[str, str]]) -> bytes:
    """The request bytes of ``GET target`` with ``headers`` and ``Connection: close``."""
    lines = [f"GET {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers] + \
        ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1", "replace")


class _Exchange:
    """The state machine of one connection (see the module docstring); ``future`` gets
    the result or the exception; ``close()`` is idempotent and frees everything."""

    __slots__ = ("loop", "sock", "fd", "future", "out", "data", "head", "timer", "watch",
                 "connected")

    def __init__(self, address: Address, request: bytes | None, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[tuple[int, bytes]] = self.loop.create_future()
        self.out, self.data = request, b""
        self.head: tuple[int, int, bool] | None = None  # code, wanted body bytes, chunked
        self.watch = ""  # "w" / "r": the callback registered for fd
        self.connected = False
        self.sock = socket.socket(address[0], socket.SOCK_STREAM)
        self.fd = self.sock.fileno()
        self.sock.setblocking(False)
        self.timer = self.loop.call_later(timeout, self._fail, TimeoutError())
        try:
            err = self.sock.connect_ex(address[1])
        except BaseException:  # a bad address: nothing may stay open
            self.close()
            raise
        if err == 0 or (err in _PENDING and self._established()):
            self._connected()
        elif err in _PENDING:
            self._watch("w", self._on_writable)
        else:
            self._fail(OSError(err, os.strerror(err)))

    def _established(self) -> bool:
        """Whether the handshake already completed during ``connect`` (it often has to a
        local bridge: no writer callback, no loop wake-up needed then)."""
        try:
            self.sock.getpeername()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Stop watching the socket, close it, cancel the timer."""
        self._watch("", None)
        self.timer.cancel()
        self.sock.close()

    def _watch(self, how: str, callback: Any) -> None:
        if self.watch == "w":
            self.loop.remove_writer(self.fd)
        elif self.watch == "r":
            self.loop.remove_reader(self.fd)
        self.watch = how
        if how == "w":
            self.loop.add_writer(self.fd, callback)
        elif how == "r":
            self.loop.add_reader(self.fd, callback)

    def _fail(self, exc: BaseException) -> None:
        self.close()
        if not self.future.done():
            self.future.set_exception(exc)

    def _done(self, code: int, body: bytes) -> None:
        self.close()
        if not self.future.done():
            self.future.set_result((code, body))

    def _on_writable(self) -> None:
        if self.connected:
            self._send()  # the rest of a request that did not fit at once
            return
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(OSError(err, os.strerror(err)))
        else:
            self._connected()

    def _connected(self) -> None:
        self.connected = True
        if self.out is None:
            self._done(0, b"")
        else:
            self._send()

    def _send(self) -> None:
        assert self.out is not None
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._fail(exc)
            return
        self.out = self.out[sent:]
        if self.out:
            if self.watch != "w":
                self._watch("w", self._on_writable)
            return
        self._watch("r", self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = self.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        try:
            self._feed(chunk)
        except Exception as exc:  # MalformedResponse; nothing may escape into the loop
            self._fail(exc)

    def _feed(self, chunk: bytes) -> None:
        """Take what was read (b"" at EOF); finish once the answer is complete."""
        if self.head is None:
            if not chunk or len(self.data) > _MAX_HEAD:
                raise MalformedResponse(self.data[:200].decode(errors="replace") or "EOF")
            self.data += chunk
            if b"\r\n\r\n" not in self.data:
                return
            head, _, self.data = self.data.partition(b"\r\n\r\n")
            code, fields = _parse_head(head)
            length = fields.get("content-length")
            chunked = "chunked" in fields.get("transfer-encoding", "").lower()
            want = min(int(length), MAX_BODY) if length and length.isascii() and \
                length.isdigit() else MAX_BODY
            self.head = (code, want, chunked)
        elif chunk:
            self.data += chunk
        code, want, chunked = self.head
        body = self.data
        if chunk and len(body) < want + (64 if chunked else 0) and \
                not _chunked_done(body, chunked):
            return
        self._done(code, (_dechunk(body) if chunked else body)[:want])


async def exchange(address: Address, request: bytes | None,
                   timeout: float) -> tuple[int, bytes]:
    """Connect to ``address``; with a ``request``, send it and read the answer: (status
    code, first MAX_BODY bytes of the body); without, (0, b"") once connected. OSError,
    MalformedResponse, TimeoutError after ``timeout`` seconds. Cancellable."""
    ex = _Exchange(address, request, timeout)
    try:
        return await ex.future
    finally:
        ex.close()


async def tcp_connect(host: str, port: int, timeout: float = 3600.0) -> None:
    """Open a TCP connection to ``host:port`` and close it at once."""
    await exchange(await resolve(host, port), None, timeout)


async def http_get(host: str, port: int, target: str, headers: list[tuple[str, str]],
                   timeout: float = 3600.0) -> tuple[int, bytes]:
    """(status code, first MAX_BODY bytes of the body) of ``GET target``."""
    return await exchange(await resolve(host, port), build_request(target, headers), timeout)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status, *rest = head.decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (
            parts[1].isascii() and parts[1].isdigit()):
        raise MalformedResponse(status[:200])
    fields: dict[str, str] = {}
    for line in rest:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(parts[1]), fields


def _chunked_done(body: bytes, chunked: bool) -> bool:
    return chunked and (body.startswith(b"0\r\n") or b"\r\n0\r\n" in body)


def _dechunk(body: bytes) -> bytes:
    """The data of a chunked body read so far (a cut-off last chunk gives what it has)."""
    out = bytearray()
    while body and len(out) < MAX_BODY:
        size_line, sep, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if not sep or size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return bytes(out)


__all__ = ["MAX_BODY", "Address", "MalformedResponse", "build_request", "exchange",
           "http_get", "literal_address", "resolve", "tcp_connect"]
