"""A lean HTTP/1.1 GET and TCP connect for probes over non-blocking sockets and the event
loop's ``sock_*`` calls (no transports, no streams, no client session), since a node runs
many of them every second (docs/architecture.md, probes).

    tcp_connect(host, port) ─ connect, close; OSError on failure
    http_get(host, port, target, headers) ─ connect, send ``GET target HTTP/1.1`` with
        ``Connection: close`` and the given headers, read the status line, the headers and
        at most MAX_BODY bytes of body (Content-Length, chunked, or up to EOF) ─▶ (code,
        body); OSError on a transport failure, MalformedResponse on a bad status line

Both close their socket on every path (a connection per probe, as the kubelet's; no
keep-alive). Cancellable: the caller bounds them with its timeout. A host name (not an IP
literal) is resolved with the loop's ``getaddrinfo``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

MAX_BODY = 10 * 1024
_RECV = 16 * 1024
_MAX_HEAD = 64 * 1024


class MalformedResponse(Exception):
    """The peer did not answer with HTTP/1.x (the text says what was read)."""


async def _connect(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        ip = ipaddress.ip_address(host)
        family, address = (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"lookup {host}: no such host")
        family, address = infos[0][0], str(infos[0][4][0])
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def tcp_connect(host: str, port: int) -> None:
    """Open a TCP connection to ``host:port`` and close it at once."""
    sock = await _connect(host, port)
    sock.close()


async def http_get(host: str, port: int, target: str,
                   headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """(status code, first MAX_BODY bytes of the body) of ``GET target``."""
    loop = asyncio.get_running_loop()
    lines = [f"GET {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers] + \
        ["Connection: close", "", ""]
    sock = await _connect(host, port)
    try:
        await loop.sock_sendall(sock, "\r\n".join(lines).encode("latin-1", "replace"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, _RECV)
            if not chunk or len(data) > _MAX_HEAD:
                raise MalformedResponse(data[:200].decode(errors="replace") or "EOF")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        code, fields = _parse_head(head)
        length = fields.get("content-length")
        chunked = "chunked" in fields.get("transfer-encoding", "").lower()
        want = min(int(length), MAX_BODY) if length and length.isdigit() else MAX_BODY
        while len(body) < want + (64 if chunked else 0) and not _chunked_done(body, chunked):
            chunk = await loop.sock_recv(sock, _RECV)
            if not chunk:
                break
            body += chunk
    finally:
        sock.close()
    return code, (_dechunk(body) if chunked else body)[:want]


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status, *rest = head.decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
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


__all__ = ["MAX_BODY", "MalformedResponse", "http_get", "tcp_connect"]
