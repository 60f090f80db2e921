"""SPDY/3(.1) frames: the wire format, header blocks and their zlib compression.

Pure codec, no I/O: :class:`FrameEncoder` turns frames into bytes and :class:`FrameDecoder`
turns an arbitrarily split byte stream back into frames. Each owns the one zlib context of
its direction for the whole connection (header blocks are compressed with the SPDY/3
dictionary and flushed with ``Z_SYNC_FLUSH`` after every block), so one encoder and one
decoder belong to exactly one connection and frames must be encoded in wire order.

Wire layout (all integers big-endian)::

    control: |1| version(15)=3 | type(16) | flags(8) | length(24) | payload…
    data:    |0| stream id(31)            | flags(8) | length(24) | data…

Malformed input raises :class:`SpdyProtocolError` and nothing else.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Union

VERSION = 3

TYPE_SYN_STREAM = 1
TYPE_SYN_REPLY = 2
TYPE_RST_STREAM = 3
TYPE_SETTINGS = 4
TYPE_PING = 6
TYPE_GOAWAY = 7
TYPE_HEADERS = 8
TYPE_WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
FRAME_TOO_LARGE = 11

# GOAWAY status codes.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

SETTINGS_INITIAL_WINDOW_SIZE = 7

MAX_LENGTH = (1 << 24) - 1
MAX_HEADER_BLOCK = 1 << 20  # decompressed; more is a protocol error, not a memory bomb
_STREAM_MASK = 0x7FFFFFFF


def _spec_dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (spec draft 3, section 2.6.10.1).

    The spec lists it as length-prefixed words followed by one run of status codes, reason
    phrases, dates and common values; 1423 bytes, Adler-32 ``0xe3c6a7c2``.
    """
    words = (
        "options head post put delete trace accept accept-charset accept-encoding"
        " accept-language accept-ranges age allow authorization cache-control connection"
        " content-base content-encoding content-language content-length content-location"
        " content-md5 content-range content-type date etag expect expires from host"
        " if-match if-modified-since if-none-match if-range if-unmodified-since"
        " last-modified location max-forwards pragma proxy-authenticate"
        " proxy-authorization range referer retry-after server te trailer"
        " transfer-encoding upgrade user-agent vary via warning www-authenticate method"
        " get status 200|OK version HTTP/1.1 url public set-cookie keep-alive origin"
    ).split()
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416"
        "417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct"
        " Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,"
        "image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset="
        "iso-8859-1,utf-,*,enq=0."
    )
    out = bytearray()
    for word in words:
        raw = word.replace("|", " ").encode("ascii")
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out) + tail.encode("ascii")


DICTIONARY = _spec_dictionary()


class SpdyError(Exception):
    """Base of every SPDY error."""


class SpdyProtocolError(SpdyError):
    """The peer sent bytes that are not valid SPDY/3; the connection cannot continue."""

    def __init__(self, message: str, status: int = GOAWAY_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.status = status


Headers = dict[str, str]
"""Header names are lower-case; several values of one name are joined with NUL."""


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Setting:
    id: int
    value: int
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    entries: tuple[Setting, ...] = ()
    clear: bool = False


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = Union[DataFrame, SynStream, SynReply, RstStream, Settings, Ping, GoAway,
              HeadersFrame, WindowUpdate]


def encode_header_block(headers: Mapping[str, str | list[str]]) -> bytes:
    """The uncompressed block: count, then (length, name, length, value) pairs."""
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw_name = name.lower().encode()
        raw_value = ("\0".join(value) if isinstance(value, list) else value).encode()
        parts += [struct.pack(">I", len(raw_name)), raw_name,
                  struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(parts)


def decode_header_block(block: bytes) -> Headers:
    """Inverse of :func:`encode_header_block`; names are lower-cased, repeats NUL-joined."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos, headers = 4, {}
        for _ in range(count):
            name, pos = _length_prefixed(block, pos)
            value, pos = _length_prefixed(block, pos)
            if not name:
                raise SpdyProtocolError("empty header name")
            key = name.decode("utf-8", "surrogateescape").lower()
            text = value.decode("utf-8", "surrogateescape")
            headers[key] = headers[key] + "\0" + text if key in headers else text
    except struct.error as exc:
        raise SpdyProtocolError("truncated header block") from exc
    if pos != len(block):
        raise SpdyProtocolError("trailing bytes after the header block")
    return headers


def _length_prefixed(block: bytes, pos: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">I", block, pos)
    end = pos + 4 + length
    if end > len(block):
        raise SpdyProtocolError("header block shorter than its lengths")
    return block[pos + 4:end], end


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError("control frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, flags << 24 | len(payload)) + payload


def encode_data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    """One DATA frame; *data* must be at most :data:`MAX_LENGTH` bytes."""
    if not 0 < stream_id <= _STREAM_MASK or len(data) > MAX_LENGTH:
        raise ValueError("bad stream id or data too large for one frame")
    return struct.pack(">II", stream_id, (FLAG_FIN if fin else 0) << 24 | len(data)) + data


def encode_data_frames(stream_id: int, data: bytes | memoryview, max_frame: int) -> bytearray:
    """*data* as consecutive DATA frames of at most *max_frame* bytes each (none if empty), in
    one buffer: a single copy of the payload, whatever the number of frames."""
    if not 0 < stream_id <= _STREAM_MASK or not 0 < max_frame <= MAX_LENGTH:
        raise ValueError("bad stream id or frame size")
    view = memoryview(data).cast("B")
    out = bytearray()
    for start in range(0, len(view), max_frame):
        piece = view[start:start + max_frame]
        out += struct.pack(">II", stream_id, len(piece))
        out += piece
    return out


class FrameEncoder:
    """Serializes frames of one connection direction (owns its compression context)."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                      DICTIONARY)

    def compress(self, headers: Mapping[str, str | list[str]]) -> bytes:
        block = encode_header_block(headers)
        return self._zlib.compress(block) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        """The frame's bytes; header blocks advance the shared context, so keep wire order."""
        match frame:
            case DataFrame(sid, data, fin):
                return encode_data(sid, data, fin)
            case SynStream(sid, headers, assoc, prio, slot, fin, uni):
                flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if uni else 0)
                head = struct.pack(">IIBB", sid, assoc, (prio & 7) << 5, slot)
                return _control(TYPE_SYN_STREAM, flags, head + self.compress(headers))
            case SynReply(sid, headers, fin):
                payload = struct.pack(">I", sid) + self.compress(headers)
                return _control(TYPE_SYN_REPLY, FLAG_FIN if fin else 0, payload)
            case HeadersFrame(sid, headers, fin):
                payload = struct.pack(">I", sid) + self.compress(headers)
                return _control(TYPE_HEADERS, FLAG_FIN if fin else 0, payload)
            case RstStream(sid, status):
                return _control(TYPE_RST_STREAM, 0, struct.pack(">II", sid, status))
            case Settings(entries, clear):
                body = b"".join(struct.pack(">II", e.flags << 24 | e.id, e.value)
                                for e in entries)
                payload = struct.pack(">I", len(entries)) + body
                return _control(TYPE_SETTINGS, FLAG_SETTINGS_CLEAR if clear else 0, payload)
            case Ping(ping_id):
                return _control(TYPE_PING, 0, struct.pack(">I", ping_id))
            case GoAway(last, status):
                return _control(TYPE_GOAWAY, 0, struct.pack(">II", last, status))
            case WindowUpdate(sid, delta):
                return _control(TYPE_WINDOW_UPDATE, 0, struct.pack(">II", sid, delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameDecoder:
    """Parses the peer's byte stream, split anywhere, into frames (owns its zlib context).

    Unknown control frame types are skipped, as the spec requires. Any other malformation
    raises :class:`SpdyProtocolError`; after that the decoder must not be used again.
    """

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(15, DICTIONARY)
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by *data*, in order."""
        return list(self.parse(data))

    def parse(self, data: bytes) -> Iterator[Frame]:
        """Like :meth:`feed`, one frame at a time: frames before a malformed one are
        yielded (and can be acted on) before the error is raised."""
        self._buf += data
        buf, pos = self._buf, 0
        try:
            while len(buf) - pos >= 8:
                word, flags_len = struct.unpack_from(">II", buf, pos)
                end = pos + 8 + (flags_len & MAX_LENGTH)
                if end > len(buf):
                    break
                payload = bytes(buf[pos + 8:end])
                frame = self._parse(word, flags_len >> 24, payload)
                pos = end
                if frame is not None:
                    yield frame
        finally:
            del buf[:pos]

    def eof(self) -> None:
        """The stream ended: raise if it stopped in the middle of a frame."""
        if self._buf:
            raise SpdyProtocolError(f"connection ended inside a frame ({len(self._buf)} bytes)")

    def _parse(self, word: int, flags: int, payload: bytes) -> Frame | None:
        if not word & 0x80000000:
            if word == 0 or flags & ~FLAG_FIN:
                raise SpdyProtocolError("invalid DATA frame (stream 0 or unknown flags)")
            return DataFrame(word, payload, bool(flags & FLAG_FIN))
        version, frame_type = word >> 16 & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise SpdyProtocolError(f"unsupported SPDY version {version}")
        parser = _PARSERS.get(frame_type)
        if parser is None:
            return None
        try:
            return parser(self, flags, payload)
        except struct.error as exc:
            raise SpdyProtocolError(f"control frame type {frame_type} too short") from exc

    def headers(self, block: bytes) -> Headers:
        """Decompress one header block with the connection's context."""
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyProtocolError(f"header block does not decompress: {exc}") from exc
        if self._zlib.unconsumed_tail:
            raise SpdyProtocolError("header block too large")
        return decode_header_block(raw)

    def _syn_stream(self, flags: int, p: bytes) -> SynStream:
        _check_flags(flags, FLAG_FIN | FLAG_UNIDIRECTIONAL)
        sid, assoc, prio, slot = struct.unpack_from(">IIBB", p)
        headers = self.headers(p[10:])
        return SynStream(_stream_id(sid), headers, assoc & _STREAM_MASK, prio >> 5, slot,
                         bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL))

    def _syn_reply(self, flags: int, p: bytes) -> SynReply:
        _check_flags(flags, FLAG_FIN)
        (sid,) = struct.unpack_from(">I", p)
        return SynReply(_stream_id(sid), self.headers(p[4:]), bool(flags & FLAG_FIN))

    def _headers(self, flags: int, p: bytes) -> HeadersFrame:
        _check_flags(flags, FLAG_FIN)
        (sid,) = struct.unpack_from(">I", p)
        return HeadersFrame(_stream_id(sid), self.headers(p[4:]), bool(flags & FLAG_FIN))

    def _rst_stream(self, flags: int, p: bytes) -> RstStream:
        sid, status = _fixed(flags, p, 8)
        if status == 0:
            raise SpdyProtocolError("RST_STREAM with status 0")
        return RstStream(_stream_id(sid), status)

    def _settings(self, flags: int, p: bytes) -> Settings:
        _check_flags(flags, FLAG_SETTINGS_CLEAR)
        (count,) = struct.unpack_from(">I", p)
        if len(p) != 4 + 8 * count:
            raise SpdyProtocolError("SETTINGS length does not match its count")
        entries = tuple(Setting(fid & 0xFFFFFF, value, fid >> 24)
                        for fid, value in struct.iter_unpack(">II", p[4:]))
        return Settings(entries, bool(flags & FLAG_SETTINGS_CLEAR))

    def _ping(self, flags: int, p: bytes) -> Ping:
        if flags or len(p) != 4:
            raise SpdyProtocolError("invalid PING frame")
        return Ping(struct.unpack(">I", p)[0])

    def _goaway(self, flags: int, p: bytes) -> GoAway:
        last, status = _fixed(flags, p, 8)
        return GoAway(last & _STREAM_MASK, status)

    def _window_update(self, flags: int, p: bytes) -> WindowUpdate:
        sid, delta = _fixed(flags, p, 8)
        if not delta & _STREAM_MASK:
            raise SpdyProtocolError("WINDOW_UPDATE with a zero delta")
        return WindowUpdate(sid & _STREAM_MASK, delta & _STREAM_MASK)


def _check_flags(flags: int, allowed: int) -> None:
    if flags & ~allowed:
        raise SpdyProtocolError(f"unknown control frame flags {flags:#x}")


def _fixed(flags: int, payload: bytes, length: int) -> tuple[int, int]:
    if flags or len(payload) != length:
        raise SpdyProtocolError("invalid fixed-size control frame")
    return struct.unpack(">II", payload)


def _stream_id(raw: int) -> int:
    sid = raw & _STREAM_MASK
    if sid == 0:
        raise SpdyProtocolError("stream id 0")
    return sid


_PARSERS = {
    TYPE_SYN_STREAM: FrameDecoder._syn_stream,
    TYPE_SYN_REPLY: FrameDecoder._syn_reply,
    TYPE_RST_STREAM: FrameDecoder._rst_stream,
    TYPE_SETTINGS: FrameDecoder._settings,
    TYPE_PING: FrameDecoder._ping,
    TYPE_GOAWAY: FrameDecoder._goaway,
    TYPE_HEADERS: FrameDecoder._headers,
    TYPE_WINDOW_UPDATE: FrameDecoder._window_update,
}
