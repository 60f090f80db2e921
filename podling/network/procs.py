"""Run a helper program (a CNI plugin, iptables, ip) with a timeout; never leave it behind.

The child runs in a new session (its own process group). On timeout, cancellation or any
other failure the whole group is SIGKILLed and the child is reaped before the exception
propagates, so no zombie or orphan survives the call. If the agent itself is killed, the
child gets SIGKILL too (its parent-death signal): a plugin does not go on adding a pod's
network after the agent that asked is gone and a new one has torn that network down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass

from podling.network.interface import NetworkError
from podling.util.children import dies_with_parent


@dataclass(frozen=True)
class ProcResult:
    """How a finished helper ended."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def run(
    argv: list[str],
    *,
    timeout: float,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> ProcResult:
    """Run ``argv`` to completion, feeding ``stdin``; NetworkError on timeout or exec failure.

    A non-zero exit is *not* an error here: the caller reads ``returncode``.
    """
    if shutil.which(argv[0], path=(env if env is not None else os.environ).get("PATH")) is None:
        raise NetworkError(f"cannot run {argv[0]}: not found or not executable")
    try:
        proc = await asyncio.create_subprocess_exec(
            *dies_with_parent(argv),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as err:
        raise NetworkError(f"cannot run {argv[0]}: {err}") from err
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError as err:
        await _kill(proc)
        raise NetworkError(f"{os.path.basename(argv[0])} timed out after {timeout:g}s") from err
    except BaseException:
        await _kill(proc)
        raise
    return ProcResult(proc.returncode if proc.returncode is not None else -1, stdout, stderr)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group and reap the child, even if we are being cancelled."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    # Reaping must finish even when the caller is cancelled, or the child stays a zombie.
    waiter = asyncio.ensure_future(proc.wait())
    try:
        await asyncio.shield(waiter)
    except asyncio.CancelledError:
        await waiter
        raise
