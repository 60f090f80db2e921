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
from typing import Any, Awaitable, Callable

import aiohttp

from podling.agent.kuberuntime.labels import format_pod
from podling.runtime.interface import ExecResult, ExecTimeout

MINIMUM_GRACE_SECONDS = 2.0
DEFAULT_GRACE_SECONDS = 30.0
USER_AGENT = "kube-lifecycle/1.31"

ExecSync = Callable[[list[str], float], Awaitable[ExecResult]]
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


async def run_hook(handler: dict[str, Any], *, container: dict[str, Any], pod: dict[str, Any],
                   exec_sync: ExecSync, pod_ip: str, timeout: float,
                   sleep: Sleep = asyncio.sleep, check_status: bool = True) -> HookResult:
    """Run ``handler`` for ``container`` of ``pod``, giving up after ``timeout`` seconds.

    exec: ``exec_sync(argv, timeout)`` in the container; a non-zero exit fails.
    httpGet: GET ``scheme://host:port/path`` (host defaults to ``pod_ip``; a named port is
    looked up in the container's ports; HTTPS does not verify certificates). Transport
    errors fail; with ``check_status`` (default) so does a status outside 2xx/3xx — the
    kubelet itself ignores the status code, pass ``check_status=False`` for that.
    sleep: wait ``sleep.seconds``.
    """
    try:
        async with asyncio.timeout(timeout):
            if "exec" in handler:
                return await _run_exec(handler["exec"], container, pod, exec_sync=exec_sync,
                                       timeout=timeout)
            if "httpGet" in handler:
                return await _run_http(handler["httpGet"], container, pod, pod_ip=pod_ip,
                                       check_status=check_status)
            if "sleep" in handler:
                await sleep(float(handler["sleep"].get("seconds", 0)))
                return HookResult(True)
    except TimeoutError:
        return HookResult(False, f"lifecycle hook for Container {container.get('name')!r} "
                                 f"in Pod {format_pod(pod)!r} did not finish in {timeout:g}s")
    return HookResult(False, f"invalid handler: {sorted(handler)}")


async def _run_exec(action: dict[str, Any], container: dict[str, Any], pod: dict[str, Any], *,
                    exec_sync: ExecSync, timeout: float) -> HookResult:
    argv = [str(a) for a in action.get("command") or []]
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
        f"Exec lifecycle hook ([{joined}]) for Container \"{container.get('name', '')}\" "
        f"in Pod \"{format_pod(pod)}\" failed - error: {error}, "
        f"message: {go_quote(output.decode(errors='replace'))}"))


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """A port number, or the containerPort of the named port; raises ValueError."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        number = int(port)
    else:
        found = [p.get("containerPort") for p in container.get("ports") or []
                 if p.get("name") == port]
        if not found:
            raise ValueError(f"couldn't find port: {port} in {container.get('name', '')}")
        number = int(found[0])
    if not 0 < number < 65536:
        raise ValueError(f"invalid port number: {number}")
    return number


def http_url(action: dict[str, Any], container: dict[str, Any], pod_ip: str) -> str:
    """The URL an httpGet action requests (raises ValueError on a bad port or host)."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    if not host:
        raise ValueError("failed to find networking container: the pod has no IP")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    path = str(action.get("path") or "")
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{host}:{resolve_port(action.get('port'), container)}{path}"


async def _run_http(action: dict[str, Any], container: dict[str, Any], pod: dict[str, Any], *,
                    pod_ip: str, check_status: bool) -> HookResult:
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        headers[str(h.get("name", ""))] = str(h.get("value", ""))
    try:
        url = http_url(action, container, pod_ip)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        async with aiohttp.ClientSession() as session:
            async with session.get(url, headers=headers, ssl=insecure,
                                   allow_redirects=False) as resp:
                await resp.read()
                status = resp.status
        if check_status and not 200 <= status < 400:
            raise ValueError(f"HTTP probe failed with statuscode: {status}")
        return HookResult(True)
    except (aiohttp.ClientError, ValueError, OSError) as e:
        return HookResult(False, (
            f"HTTP lifecycle hook ({action.get('path', '')}) for Container "
            f"\"{container.get('name', '')}\" in Pod \"{format_pod(pod)}\" failed - "
            f"error: {e}"))


# -- kill sequence -------------------------------------------------------------------------------


def grace_period_seconds(pod: dict[str, Any]) -> float:
    """The grace period to kill ``pod`` with: ``metadata.deletionGracePeriodSeconds`` once
    deleted, else ``spec.terminationGracePeriodSeconds`` (default 30)."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    value = meta.get("deletionGracePeriodSeconds")
    if value is None:
        value = spec.get("terminationGracePeriodSeconds")
    return float(DEFAULT_GRACE_SECONDS if value is None else value)


def should_run_prestop(container: dict[str, Any] | None, grace: float) -> bool:
    """preStop runs only when the container has one and the grace period is positive."""
    return bool(container and (container.get("lifecycle") or {}).get("preStop")) and grace > 0


def kill_sequence_plan(grace: float, prestop_elapsed: float) -> float:
    """Seconds between the stop signal and SIGKILL: ``grace`` minus the whole seconds the
    preStop hook took (the kubelet truncates), but never less than 2."""
    return max(float(grace) - int(prestop_elapsed), MINIMUM_GRACE_SECONDS)
