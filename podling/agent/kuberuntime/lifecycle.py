"""postStart / preStop hook handlers and the kill-sequence arithmetic (kubelet
lifecycle/handlers.go, kuberuntime_container.go killContainer).

``run_hook`` runs one ``LifecycleHandler`` (``exec``, ``httpGet`` or ``sleep``) and returns
an ``HookResult``; a failed hook is a value, never an exception (docs/architecture.md §5).
The caller decides what a failure means (postStart: FailedPostStartHook event, kill,
restart per restartPolicy; preStop: FailedPreStopHook event, the kill goes on) and emits
the events with ``HookResult.message``.

Kill sequence of one container (executed by the caller)::

    Killing event ─▶ preStop (only if grace > 0; at most grace s) ─▶ stop signal
        ─▶ wait kill_sequence_plan(grace, preStop seconds) ─▶ SIGKILL

Cancellation: cancelling ``run_hook`` cancels the exec / request / sleep in flight.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable

import aiohttp

from podling.agent.kuberuntime.labels import format_pod
from podling.api.views import ContainerView, HandlerView, HTTPGetActionView, PodView
from podling.runtime.interface import ExecResult, ExecTimeout

MINIMUM_GRACE_SECONDS = 2.0
DEFAULT_GRACE_SECONDS = 30.0
USER_AGENT = "kube-lifecycle/1.31"

ExecSync = Callable[[list[str], float | None], Awaitable[ExecResult]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class HookResult:
    """``ok`` or not; ``message`` is the kubelet's failure text ("" on success)."""

    ok: bool
    message: str = ""


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string: double-quoted with backslash escapes."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else
                       (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


async def run_hook(handler: HandlerView, *, container: ContainerView, pod: PodView,
                   exec_sync: ExecSync, pod_ip: str, timeout: float | None,
                   sleep: Sleep = asyncio.sleep, check_status: bool = True) -> HookResult:
    """Run ``handler`` for ``container`` of ``pod``, giving up after ``timeout`` seconds
    (None: no limit; cancelling the caller still stops it).

    The kubelet bounds only preStop, by the grace period (executePreStopHook). postStart has
    no limit: its exec runs with the CRI timeout 0, its httpGet with a client without a
    timeout, its sleep for the seconds given; a pod deletion cancels the sync that runs it.

    exec: ``exec_sync(argv, timeout)`` in the container; a non-zero exit fails.
    httpGet: GET ``scheme://host:port/path`` (host defaults to ``pod_ip``; a named port is
    looked up in the container's ports; HTTPS does not verify certificates). Transport
    errors fail; with ``check_status`` (default) so does a status outside 2xx/3xx — the
    kubelet itself ignores the status code, pass ``check_status=False`` for that.
    sleep: wait ``sleep.seconds``.
    """
    try:
        async with asyncio.timeout(timeout):
            if handler.exec_command is not None:
                return await _run_exec(handler.exec_command, container, pod,
                                       exec_sync=exec_sync, timeout=timeout)
            if handler.http_get is not None:
                return await _run_http(handler.http_get, container, pod, pod_ip=pod_ip,
                                       check_status=check_status)
            if handler.sleep_seconds is not None:
                await sleep(handler.sleep_seconds)
                return HookResult(True)
    except TimeoutError:
        return HookResult(False, f"lifecycle hook for Container {container.name!r} "
                                 f"in Pod {format_pod(pod)!r} did not finish in {timeout or 0:g}s")
    return HookResult(False, f"invalid handler: {list(handler.kinds)}")


async def _run_exec(command: tuple[str, ...], container: ContainerView, pod: PodView, *,
                    exec_sync: ExecSync, timeout: float | None) -> HookResult:
    argv = list(command)
    joined = " ".join(argv)
    try:
        result = await exec_sync(argv, timeout)
        output = result.stdout + result.stderr
        if result.exit_code == 0:
            return HookResult(True)
        error = (f"command '{joined}' exited with {result.exit_code}: "
                 f"{result.stderr.decode(errors='replace')}")
    except ExecTimeout as e:
        error, output = f"command '{joined}' timed out: {e}", b""
    except Exception as e:  # the runtime's errors (not running, not found) become a failure
        error, output = str(e) or type(e).__name__, b""
    return HookResult(False, (
        f"Exec lifecycle hook ([{joined}]) for Container \"{container.name}\" "
        f"in Pod \"{format_pod(pod)}\" failed - error: {error}, "
        f"message: {go_quote(output.decode(errors='replace'))}"))


def resolve_port(port: int | str | None, container: ContainerView) -> int:
    """A port number, or the containerPort of the named port; raises ValueError."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        number = int(port)
    else:
        found = [p.container_port for p in container.ports if p.name == port]
        if not found:
            raise ValueError(f"couldn't find port: {port} in {container.name}")
        number = found[0]
    if not 0 < number < 65536:
        raise ValueError(f"invalid port number: {number}")
    return number


def http_url(action: HTTPGetActionView, container: ContainerView, pod_ip: str) -> str:
    """The URL an httpGet action requests (raises ValueError on a bad port or host)."""
    scheme = action.scheme.lower()
    host = action.host or pod_ip
    if not host:
        raise ValueError("failed to find networking container: the pod has no IP")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    path = action.path
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{host}:{resolve_port(action.port, container)}{path}"


async def _run_http(action: HTTPGetActionView, container: ContainerView, pod: PodView, *,
                    pod_ip: str, check_status: bool) -> HookResult:
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for name, value in action.headers:
        headers[name] = value
    try:
        url = http_url(action, container, pod_ip)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        # no client timeout (aiohttp's default is 5 min): the caller's bound, if any, applies
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            async with session.get(url, headers=headers, ssl=insecure,
                                   allow_redirects=False) as resp:
                await resp.read()
                status = resp.status
        if check_status and not 200 <= status < 400:
            raise ValueError(f"HTTP probe failed with statuscode: {status}")
        return HookResult(True)
    except (aiohttp.ClientError, ValueError, OSError) as e:
        return HookResult(False, (
            f"HTTP lifecycle hook ({action.path}) for Container "
            f"\"{container.name}\" in Pod \"{format_pod(pod)}\" failed - "
            f"error: {e}"))


# -- kill sequence -------------------------------------------------------------------------------


def grace_period_seconds(pod: PodView) -> float:
    """The grace period to kill ``pod`` with: ``metadata.deletionGracePeriodSeconds`` once
    deleted, else ``spec.terminationGracePeriodSeconds`` (default 30)."""
    value = pod.metadata.deletion_grace_period_seconds
    if value is None:
        value = pod.spec.termination_grace_period_seconds
    return float(DEFAULT_GRACE_SECONDS if value is None else value)


def should_run_prestop(container: ContainerView | None, grace: float) -> bool:
    """preStop runs only when the container has one and the grace period is positive."""
    return container is not None and container.lifecycle.pre_stop is not None and grace > 0


def kill_sequence_plan(grace: float, prestop_elapsed: float) -> float:
    """Seconds between the stop signal and SIGKILL: ``grace`` minus the whole seconds the
    preStop hook took (the kubelet truncates), but never less than 2."""
    return max(float(grace) - int(prestop_elapsed), MINIMUM_GRACE_SECONDS)
