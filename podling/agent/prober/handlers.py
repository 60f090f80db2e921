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
from podling.agent.prober.grpc import grpc_probe
from podling.agent.prober.http_get import MalformedResponse, http_get, tcp_connect
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


async def run_probe(probe: ProbeView, target: ProbeTarget) -> ProbeOutcome:
    """One run of ``probe`` against ``target`` (see the module docstring). Cancellable."""
    timeout = float(probe.timeout_seconds)
    try:
        if probe.exec_command is not None:
            return await _run_exec(list(probe.exec_command), target, timeout)
        if probe.http_get is not None:
            return await _run_http(probe.http_get, target, timeout)
        if probe.is_tcp:
            port = resolve_port(probe.tcp_port, target.container)
            host = probe.tcp_host or target.pod_ip
            if not host:
                raise ValueError("failed to find networking container: the pod has no IP")
            return await tcp_probe(host, port, timeout)
        if probe.grpc_port is not None:
            if not target.pod_ip:
                raise ValueError("failed to find networking container: the pod has no IP")
            ok, message = await grpc_probe(target.pod_ip, probe.grpc_port,
                                           probe.grpc_service, timeout)
            return ProbeOutcome(SUCCESS if ok else FAILURE, message)
    except ValueError as exc:
        return ProbeOutcome(ERROR, str(exc))
    return ProbeOutcome(ERROR, f"missing probe handler for container {target.container.name}")


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


async def _run_http(action: HTTPGetActionView, target: ProbeTarget,
                    timeout: float) -> ProbeOutcome:
    url = http_url(action, target.container, target.pod_ip)  # ValueError: an error
    parts = urlsplit(url)
    headers = {"host": ("Host", parts.netloc), "user-agent": ("User-Agent", USER_AGENT),
               "accept": ("Accept", "*/*")}
    for name, value in action.headers:
        headers[name.lower()] = (name, value)
    try:
        async with asyncio.timeout(timeout):
            if parts.scheme == "https":
                code, body = await _https_get(url, dict(headers.values()), target)
            else:
                code, raw = await http_get(parts.hostname or "", parts.port or 80,
                                           parts.path + (f"?{parts.query}" if parts.query
                                                         else ""), list(headers.values()))
                body = raw.decode(errors="replace")
    except TimeoutError:
        return ProbeOutcome(FAILURE, f'Get "{url}": context deadline exceeded '
                                     "(Client.Timeout exceeded while awaiting headers)")
    except MalformedResponse as exc:
        return ProbeOutcome(FAILURE, f'Get "{url}": net/http: HTTP/1.x transport connection '
                                     f'broken: malformed HTTP response "{exc}"')
    except (aiohttp.ClientError, OSError) as exc:
        return ProbeOutcome(FAILURE, f'Get "{url}": {_go_dial_error(url, exc)}')
    if 200 <= code < 300:
        return ProbeOutcome(SUCCESS, body)
    if 300 <= code < 400:
        return ProbeOutcome(WARNING, f"Probe terminated redirects, Response body: {body}")
    return ProbeOutcome(FAILURE, f"HTTP probe failed with statuscode: {code}")


async def _https_get(url: str, headers: dict[str, str], target: ProbeTarget
                     ) -> tuple[int, str]:
    """HTTPS goes through the shared aiohttp session (certificates not verified)."""
    headers.pop("Host", None)
    async with target.session.get(url, headers=headers, ssl=_TLS,
                                  allow_redirects=False) as resp:
        return resp.status, (await resp.content.read(MAX_OUTPUT)).decode(errors="replace")


def _go_dial_error(url: str, exc: BaseException) -> str:
    """Go's net error text for a failed connection to ``url``'s host:port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    cause = exc
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError):
        cause = os_error
    return _dial_text(host, port, cause)


def _dial_text(host: str, port: int, exc: BaseException) -> str:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == \
            errno.ECONNREFUSED:
        return f"dial tcp {address}: connect: connection refused"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"dial tcp {address}: connect: {(exc.strerror or str(exc)).lower()}"
    return str(exc) or type(exc).__name__


async def tcp_probe(host: str, port: int, timeout: float) -> ProbeOutcome:
    """pkg/probe/tcp: success when a TCP connection to ``host:port`` opens within
    ``timeout`` seconds (it is closed at once)."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            await tcp_connect(host, port)
    except TimeoutError:
        return ProbeOutcome(FAILURE, f"dial tcp {address}: i/o timeout")
    except OSError as exc:
        return ProbeOutcome(FAILURE, _dial_text(host, port, exc))
    return ProbeOutcome(SUCCESS)


__all__ = ["ERROR", "FAILURE", "SUCCESS", "WARNING", "ProbeOutcome", "ProbeTarget",
           "resolve_port", "run_probe", "tcp_probe"]
