"""One run of a probe's handler (kubelet prober.go ``runProbe``, pkg/probe/{exec,http,tcp}).

``run_probe`` returns a :class:`ProbeOutcome`; it never raises for the target's trouble:

    exec ──── ``exec_sync(argv, timeout)``: exit 0 ─▶ success, else failure with the
              combined output; a timeout ─▶ failure "command \\"…\\" timed out"; the
              runtime refusing (container gone) ─▶ error
    httpGet ─ GET scheme://host:port/path (host: the pod IP unless set; a named port is
              the container's port of that name; plain HTTP through :mod:`.http_get`,
              HTTPS through the shared session, not verified; Host, User-Agent
              kube-probe/1.32, Accept */*, then httpHeaders) within the timeout, no
              redirect followed: 2xx ─▶ success, 3xx ─▶ warning "Probe terminated
              redirects…", else failure "HTTP probe failed with statuscode: N"; a
              transport error ─▶ failure with Go's text (``Get "url": dial tcp …``)
    tcpSocket connect within the timeout ─▶ success, else failure "dial tcp …"
    grpc ──── grpc.health.v1.Health/Check of ``service`` at the pod IP (hostNetwork: the
              node's) and ``port`` (:mod:`.grpc`): SERVING ─▶ success, else failure with
              the kubelet's text

An *error* (a port name not found, no pod IP, the runtime refusing) is not a failure:
the kubelet records "<Kind> probe errored: …" and throws the result away.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

from podling.agent.kuberuntime.lifecycle import go_quote, http_url, resolve_port
from podling.agent.prober.http_get import (MalformedResponse, build_request, exchange,
                                           literal_address, resolve, tcp_connect)
from podling.api.views import ContainerView, HTTPGetActionView, ProbeView
from podling.runtime.interface import ExecResult, ExecTimeout

USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024  # the kubelet reads at most 10 KiB of output / body

SUCCESS = "success"
WARNING = "warning"
FAILURE = "failure"
ERROR = "error"

ExecSync = Callable[[list[str], float], Awaitable[ExecResult]]


@dataclass(frozen=True)
class ProbeOutcome:
    """``result`` is SUCCESS, WARNING (a success with a ProbeWarning event), FAILURE or
    ERROR; ``output`` the text the events quote."""

    result: str
    output: str = ""


@dataclass(frozen=True)
class ProbeTarget:
    """What a probe run needs besides the probe: the container, the pod IP, an exec into
    the container and the shared HTTP session (a connector that closes connections)."""

    container: ContainerView
    pod_ip: str
    exec_sync: ExecSync
    session: aiohttp.ClientSession


class PreparedProbe:
    """``probe`` against ``target`` with what does not change between runs worked out
    once, at the first run (the URL, address and request bytes of an httpGet, the address
    of a tcpSocket): a worker's pod IP and container do not change during its life.
    ``run()`` is one run (see the module docstring); an error while preparing is retried
    at the next run. Cancellable."""

    __slots__ = ("_probe", "_target", "_runner")

    def __init__(self, probe: ProbeView, target: ProbeTarget) -> None:
        self._probe, self._target = probe, target
        self._runner: Callable[[], Awaitable[ProbeOutcome]] | None = None

    async def run(self) -> ProbeOutcome:
        try:
            if self._runner is None:
                self._runner = _prepare(self._probe, self._target)
            return await self._runner()
        except ValueError as exc:
            return ProbeOutcome(ERROR, str(exc))


async def run_probe(probe: ProbeView, target: ProbeTarget) -> ProbeOutcome:
    """One run of ``probe`` against ``target`` (see the module docstring). Cancellable."""
    return await PreparedProbe(probe, target).run()


def _prepare(probe: ProbeView, target: ProbeTarget) -> Callable[[], Awaitable[ProbeOutcome]]:
    """The run of ``probe``'s handler (ValueError: an error, such as no pod IP)."""
    timeout = float(probe.timeout_seconds)
    if probe.exec_command is not None:
        argv = list(probe.exec_command)
        return lambda: _run_exec(argv, target, timeout)
    if probe.http_get is not None:
        return HttpRun(probe.http_get, target, timeout)
    if probe.is_tcp:
        host = probe.tcp_host or target.pod_ip
        if not host:
            raise ValueError("failed to find networking container: the pod has no IP")
        return TcpRun(host, resolve_port(probe.tcp_port, target.container), timeout)
    if probe.grpc_port is not None:
        if not target.pod_ip:
            raise ValueError("failed to find networking container: the pod has no IP")
        pod_ip, port, service = target.pod_ip, probe.grpc_port, probe.grpc_service
        return lambda: _run_grpc(pod_ip, port, service, timeout)
    message = f"missing probe handler for container {target.container.name}"
    return lambda: _constant(ProbeOutcome(ERROR, message))


async def _constant(outcome: ProbeOutcome) -> ProbeOutcome:
    return outcome


async def _run_grpc(pod_ip: str, port: int, service: str,
                    timeout: float) -> ProbeOutcome:
    from podling.agent.prober.grpc import grpc_probe  # h2 weighs ~4 MiB: on first use
    ok, message = await grpc_probe(pod_ip, port, service, timeout)
    return ProbeOutcome(SUCCESS if ok else FAILURE, message)


async def _run_exec(argv: list[str], target: ProbeTarget, timeout: float) -> ProbeOutcome:
    try:
        result = await target.exec_sync(argv, timeout)
    except ExecTimeout:
        return ProbeOutcome(FAILURE, f"command {go_quote(' '.join(argv))} timed out")
    except Exception as exc:  # the runtime refused: not running, not found
        return ProbeOutcome(ERROR, str(exc) or type(exc).__name__)
    output = (result.stdout + result.stderr)[:MAX_OUTPUT].decode(errors="replace")
    return ProbeOutcome(SUCCESS if result.exit_code == 0 else FAILURE, output)


def _insecure_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_TLS = _insecure_tls()


class HttpRun:
    """One httpGet probe's runs: the URL, the address (an IP literal: parsed once; a
    name: looked up at each run), the request bytes and the messages built once."""

    __slots__ = ("url", "host", "port", "https", "headers", "request", "address",
                 "timeout", "session")

    def __init__(self, action: HTTPGetActionView, target: ProbeTarget,
                 timeout: float) -> None:
        self.url = url = http_url(action, target.container, target.pod_ip)  # ValueError
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.https = parts.scheme == "https"
        self.port = parts.port or (443 if self.https else 80)
        headers = {"host": ("Host", parts.netloc), "user-agent": ("User-Agent", USER_AGENT),
                   "accept": ("Accept", "*/*")}
        for name, value in action.headers:
            headers[name.lower()] = (name, value)
        self.headers = dict(headers.values())
        self.headers.pop("Host", None)  # aiohttp sets it (HTTPS)
        self.request = build_request(parts.path + (f"?{parts.query}" if parts.query else ""),
                                     list(headers.values()))
        self.address = literal_address(self.host, self.port)
        self.timeout, self.session = timeout, target.session

    async def __call__(self) -> ProbeOutcome:
        try:
            if self.https:
                code, body = await self._https()
            elif self.address is not None:  # an IP literal (the pod IP): the common case
                code, raw = await exchange(self.address, self.request, self.timeout)
                body = raw.decode(errors="replace")
            else:
                code, body = await self._http_by_name()
        except TimeoutError:
            return ProbeOutcome(FAILURE, f'Get "{self.url}": context deadline exceeded '
                                         "(Client.Timeout exceeded while awaiting headers)")
        except MalformedResponse as exc:
            return ProbeOutcome(FAILURE, f'Get "{self.url}": net/http: HTTP/1.x transport '
                                         f'connection broken: malformed HTTP response "{exc}"')
        except (aiohttp.ClientError, OSError) as exc:
            return ProbeOutcome(FAILURE, f'Get "{self.url}": {self._dial_error(exc)}')
        if 200 <= code < 300:
            return ProbeOutcome(SUCCESS, body)
        if 300 <= code < 400:
            return ProbeOutcome(WARNING, f"Probe terminated redirects, Response body: {body}")
        return ProbeOutcome(FAILURE, f"HTTP probe failed with statuscode: {code}")

    async def _http_by_name(self) -> tuple[int, str]:
        """A host name is looked up at each run, within the timeout."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(self.timeout):
            address = await resolve(self.host, self.port)
        code, raw = await exchange(address, self.request,
                                   self.timeout - (loop.time() - start))
        return code, raw.decode(errors="replace")

    async def _https(self) -> tuple[int, str]:
        """HTTPS goes through the shared aiohttp session (certificates not verified)."""
        async with asyncio.timeout(self.timeout):
            async with self.session.get(self.url, headers=self.headers, ssl=_TLS,
                                        allow_redirects=False) as resp:
                return resp.status, (await resp.content.read(MAX_OUTPUT)).decode(
                    errors="replace")

    def _dial_error(self, exc: BaseException) -> str:
        """Go's net error text for a failed connection to the URL's host:port."""
        os_error = getattr(exc, "os_error", None)
        return _dial_text(self.host, self.port, os_error if isinstance(os_error, OSError)
                          else exc)


def _dial_text(host: str, port: int, exc: BaseException) -> str:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == \
            errno.ECONNREFUSED:
        return f"dial tcp {address}: connect: connection refused"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"dial tcp {address}: connect: {(exc.strerror or str(exc)).lower()}"
    return str(exc) or type(exc).__name__


class TcpRun:
    """One tcpSocket probe's runs (pkg/probe/tcp): success when a TCP connection to
    ``host:port`` opens within ``timeout`` seconds (it is closed at once)."""

    __slots__ = ("host", "port", "address", "text", "timeout")

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.address = literal_address(host, port)
        self.text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def __call__(self) -> ProbeOutcome:
        try:
            if self.address is not None:
                await exchange(self.address, None, self.timeout)
            else:
                await tcp_connect(self.host, self.port, self.timeout)
        except TimeoutError:
            return ProbeOutcome(FAILURE, f"dial tcp {self.text}: i/o timeout")
        except OSError as exc:
            return ProbeOutcome(FAILURE, _dial_text(self.host, self.port, exc))
        return ProbeOutcome(SUCCESS)


async def tcp_probe(host: str, port: int, timeout: float) -> ProbeOutcome:
    """One run of a tcpSocket probe of ``host:port`` (see :class:`TcpRun`)."""
    return await TcpRun(host, port, timeout)()


__all__ = ["ERROR", "FAILURE", "SUCCESS", "WARNING", "HttpRun", "PreparedProbe", "ProbeOutcome",
           "ProbeTarget", "TcpRun",
           "resolve_port", "run_probe", "tcp_probe"]
