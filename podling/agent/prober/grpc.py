"""The grpc probe handler: one unary ``grpc.health.v1.Health/Check`` call over plaintext
HTTP/2 (kubelet pkg/probe/grpc), built on the pure-Python ``h2`` state machine.

    connect ─ TCP to host:port, retried until the timeout (gRPC's blocking dial), then the
              HTTP/2 preface; no SETTINGS from the server within the timeout ─▶ failure
              ``timeout: failed to connect service "host:port" within 1s: context deadline
              exceeded``
    call ──── POST /grpc.health.v1.Health/Check (content-type application/grpc, te
              trailers, grpc-timeout) with the length-prefixed HealthCheckRequest
              {service}; the answer's ``grpc-status`` (trailers, or a trailers-only reply):
                  0 and status SERVING (1) ─▶ success "service healthy"
                  0 and another status ────▶ failure ``service unhealthy (responded with
                                              "NOT_SERVING")``
                  Unimplemented ───────────▶ failure "error: this server does not implement
                                              the grpc health protocol …"
                  another code ────────────▶ failure "error: health rpc probe failed: rpc
                                              error: code = NotFound desc = unknown service"
              no answer within what is left of the timeout ─▶ failure "timeout: health rpc
              did not complete within 1s"

One connection per probe, closed afterwards (the kubelet keeps none). Never raises for the
target's trouble; cancellable.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import unquote

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    H2_MISSING = ""
except ImportError as exc:  # an install without the dependency: only grpc probes error
    H2_MISSING = f"grpc probes need the h2 package ({exc})"

from podling.agent.backoff import go_duration
from podling.api.protobuf import encode_varint, fields

USER_AGENT = "kube-probe/1.32"
PATH = "/grpc.health.v1.Health/Check"
SERVING = 1
HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
CODES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
         "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
         "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
         "Unauthenticated")
UNIMPLEMENTED, UNAVAILABLE, DEADLINE_EXCEEDED = 12, 14, 4
# grpc-go's code for a reply whose HTTP status is not 200
_HTTP_CODES = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
_DIAL_RETRY = 0.2  # seconds between TCP attempts while the timeout lasts
_READ = 65536


class RpcError(Exception):
    """A gRPC status other than OK: ``code`` (numeric) and ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        name = CODES[self.code] if 0 <= self.code < len(CODES) else f"Code({self.code})"
        return f"rpc error: code = {name} desc = {self.message}"


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def grpc_probe(host: str, port: int, service: str, timeout: float) -> tuple[bool, str]:
    """(healthy, message) of one Health/Check of ``service`` at ``host:port`` within
    ``timeout`` seconds (see the module docstring). ValueError (a probe error) when the
    ``h2`` package is missing."""
    if H2_MISSING:
        raise ValueError(H2_MISSING)
    addr = join_host_port(host, port)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    took = go_duration(timeout)
    try:
        async with asyncio.timeout_at(deadline):
            call = await _Call.open(host, port, addr)
    except TimeoutError:
        return False, (f'timeout: failed to connect service "{addr}" within {took}: '
                       "context deadline exceeded")
    try:
        async with asyncio.timeout_at(deadline):
            reply = await call.check(service, deadline - loop.time())
    except TimeoutError:
        return False, f"timeout: health rpc did not complete within {took}"
    except RpcError as exc:
        if exc.code == UNIMPLEMENTED:
            return False, ("error: this server does not implement the grpc health protocol "
                           f"(grpc.health.v1.Health): {exc.message}")
        if exc.code == DEADLINE_EXCEEDED:
            return False, f"timeout: health rpc did not complete within {took}"
        return False, f"error: health rpc probe failed: {exc}"
    finally:
        await call.close()
    if reply != SERVING:
        return False, f'service unhealthy (responded with "{HEALTH_STATUS.get(reply, reply)}")'
    return True, "service healthy"


def encode_request(service: str) -> bytes:
    """A gRPC message (flag 0, 4-byte length) holding HealthCheckRequest{service}."""
    body = b""
    if service:
        raw = service.encode()
        body = b"\x0a" + encode_varint(len(raw)) + raw
    return b"\x00" + len(body).to_bytes(4, "big") + body


def decode_status(message: bytes) -> int:
    """The ``status`` (field 1, the last one wins) of a HealthCheckResponse; 0 (UNKNOWN)
    when absent. Raises ValueError (ProtobufError) on a malformed message."""
    values = [v for v in fields(message).get(1, ()) if isinstance(v, int)]
    return values[-1] if values else 0


class _Call:
    """One HTTP/2 connection carrying one Health/Check stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 addr: str) -> None:
        self.reader, self.writer, self.addr = reader, writer, addr
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.headers: dict[str, str] = {}
        self.data = b""
        self.ended = False

    @classmethod
    async def open(cls, host: str, port: int, addr: str) -> "_Call":
        """Connect and wait for the server's SETTINGS, trying again (a refused or dropped
        connection) until cancelled, as gRPC's blocking dial does."""
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(_DIAL_RETRY)
                continue
            call = cls(reader, writer, addr)
            try:
                call.conn.initiate_connection()
                await call._flush()
                while not await call._pump(settings=True):
                    pass
                return call
            except (OSError, RpcError):
                await call.close()
                await asyncio.sleep(_DIAL_RETRY)
            except BaseException:
                await call.close()
                raise

    async def check(self, service: str, remaining: float) -> int:
        """Send the request, read the reply; the health status or RpcError."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "POST"), (":scheme", "http"), (":path", PATH),
            (":authority", self.addr), ("content-type", "application/grpc"),
            ("user-agent", USER_AGENT), ("te", "trailers"),
            ("grpc-timeout", f"{max(1, int(remaining * 1000))}m")])
        self.conn.send_data(sid, encode_request(service), end_stream=True)
        await self._flush()
        while not self.ended:
            await self._pump(settings=False)
        return self._result()

    def _result(self) -> int:
        http = self.headers.get(":status", "200")
        if http != "200":
            code = _HTTP_CODES.get(int(http), 2)
            raise RpcError(code, f"unexpected HTTP status code received from server: {http}")
        if "grpc-status" not in self.headers:
            raise RpcError(13, "server closed the stream without sending trailers")
        code = int(self.headers["grpc-status"])
        if code != 0:
            raise RpcError(code, unquote(self.headers.get("grpc-message", "")))
        if len(self.data) < 5:
            raise RpcError(13, "grpc: error unmarshalling response: no message")
        size = int.from_bytes(self.data[1:5], "big")
        try:
            return decode_status(self.data[5:5 + size])
        except ValueError as exc:
            raise RpcError(13, f"grpc: failed to unmarshal the received message: {exc}") \
                from exc

    async def _pump(self, *, settings: bool) -> bool:
        """Read once and handle the events; True when (``settings``) the server's
        SETTINGS came. Raises RpcError(Unavailable) when the server goes away."""
        chunk = await self.reader.read(_READ)
        if not chunk:
            raise RpcError(UNAVAILABLE, "error reading from server: EOF")
        got_settings = False
        try:
            events = self.conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as exc:
            raise RpcError(13, f"connection error: {exc}") from exc
        for event in events:
            if isinstance(event, h2.events.RemoteSettingsChanged):
                got_settings = True
            elif isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                self.headers.update({str(k): str(v) for k, v in event.headers})
            elif isinstance(event, h2.events.DataReceived):
                self.data += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise RpcError(UNAVAILABLE, "the server closed the stream")
        await self._flush()
        return got_settings

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


__all__ = ["RpcError", "decode_status", "encode_request", "grpc_probe", "join_host_port"]
