"""Streaming methods of OciRuntime, on top of RuntimeCore (core.py):

    exec:         runc exec in the foreground, one directory per exec (execs.py)
    exec_sync:    exec with the output collected and a deadline; the process is killed on
                  timeout or cancellation
    attach:       conmon's attach socket and ctl FIFO (attach.py)
    port_forward: a socket created inside the pod's network namespace (portforward.py)
"""

from __future__ import annotations

import asyncio
import os

from ..interface import (STDOUT, ContainerState, ExecResult, ExecSession, ExecTimeout,
                         InvalidState, PortForwardError, SandboxNotFound)
from . import attach as _attach
from . import execs, portforward, state
from .core import RuntimeCore
from .names import new_id
from .store import ContainerRecord


class StreamingOps(RuntimeCore):
    """The streaming half of the RuntimeService; a base of OciRuntime."""

    def _running_record(self, container_id: str) -> ContainerRecord:
        record = self._record(container_id)
        if self._status(record).state is not ContainerState.RUNNING:
            raise InvalidState(f"container {container_id} is not running")
        return record

    async def exec(self, container_id: str, argv: list[str], *, stdin: bool,
                   tty: bool) -> ExecSession:
        self._running_record(container_id)
        if not argv:
            raise InvalidState("exec needs a command")
        return await execs.start_exec(execs.ExecRequest(
            runc=self.runc, container_id=container_id, argv=list(argv), stdin=stdin, tty=tty,
            directory=self.store.path("execs", new_id())))

    async def exec_sync(self, container_id: str, argv: list[str],
                        timeout: float | None) -> ExecResult:
        session = await self.exec(container_id, argv, stdin=False, tty=False)
        try:
            return await asyncio.wait_for(_collect(session), timeout)
        except asyncio.TimeoutError:
            raise ExecTimeout(f"command {argv!r} timed out after {timeout:g}s") from None
        finally:
            await session.close()

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        record = self._running_record(container_id)
        directory = self.store.container_dir(container_id)
        try:
            sock = _attach.connect_socket(os.path.join(directory, "attach"))
        except OSError as exc:
            raise InvalidState(f"cannot attach to container {container_id}: {exc}") from exc
        return _attach.ConmonAttach(sock, tty=record.config.tty,
                                    stdin=stdin and record.config.stdin,
                                    ctl_path=os.path.join(directory, "ctl"))

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        record = self.store.sandboxes.get(sandbox_id)
        if record is None:
            raise SandboxNotFound(sandbox_id)
        if not state.sandbox_ready(record, self.exit_dir):
            raise PortForwardError(f'pod sandbox "{sandbox_id}" is not running')
        return await portforward.connect(record.netns_path, port, namespace=sandbox_id,
                                         timeout=self.config.command_timeout)


async def _collect(session: ExecSession) -> ExecResult:
    out, err = bytearray(), bytearray()
    while (chunk := await session.read()) is not None:
        (out if chunk[0] == STDOUT else err).extend(chunk[1])
    code = await session.wait()
    return ExecResult(code or 0, bytes(out), bytes(err))
