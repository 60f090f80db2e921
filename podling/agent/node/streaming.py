"""The streaming half of the node API: exec, attach and port-forward (docs/streaming.md §2).

    GET /exec/{namespace}/{pod}/{container}?command=…&stdin&stdout&stderr&tty   WebSocket v5
    GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty           WebSocket v5
    GET /portforward/{namespace}/{pod}?port=N       WebSocket, one per forwarded connection

Only the API server calls these (the node API's bearer token). A session's process or socket
never outlives the WebSocket: whichever side ends first, the other is closed.

Session (exec / attach)::

    upgrade ─▶ pump output (ch 1/2) ─▶ output ends ─▶ wait exit ─▶ status (ch 3) ─▶ close 1000
       └─ pump input: ch 0 stdin, ch 4 resize, ch 255 close stdin; client gone ─▶ session.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Callable

from aiohttp import WSMsgType, web

from podling.agent.kuberuntime import labels
from podling.api import remotecommand as rc
from podling.api.views import PodView
from podling.runtime.interface import (ContainerState, ExecSession, PortForwardError,
                                       RuntimeError_, RuntimeService, SandboxState)

log = logging.getLogger(__name__)

FindPod = Callable[[str, str], "dict[str, Any] | None"]
READ_LIMIT = 1 << 20  # the largest forwarded chunk


class NodeStreams:
    """Serves exec / attach / port-forward for the pods this node runs."""

    def __init__(self, runtime: RuntimeService, find_pod: FindPod) -> None:
        self._runtime = runtime
        self._find_pod = find_pod

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/exec/{namespace}/{pod}/{container}", self._exec)
        router.add_get("/attach/{namespace}/{pod}/{container}", self._attach)
        router.add_get("/portforward/{namespace}/{pod}", self._port_forward)

    # -- lookups ---------------------------------------------------------------------------

    def _pod(self, request: web.Request) -> PodView:
        name = request.match_info["pod"]
        pod = self._find_pod(request.match_info["namespace"], name)
        if pod is None:
            raise _refused(web.HTTPNotFound, f'pod "{name}" not found on this node')
        return PodView.from_obj(pod)

    async def _running_container(self, request: web.Request) -> str:
        pod, name = self._pod(request), request.match_info["container"]
        found = await self._runtime.list_containers(
            labels={labels.POD_UID: pod.metadata.uid, labels.CONTAINER_NAME: name})
        running = [c for c in found if c.state is ContainerState.RUNNING]
        if not running:
            raise _refused(web.HTTPNotFound, f'container not found ("{name}")')
        return running[-1].id

    # -- exec and attach -------------------------------------------------------------------

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        options = rc.StreamOptions.from_query(request.query, request.query.getall("command", []))
        if not options.command:
            raise _refused(web.HTTPBadRequest, "you must specify at least one command for "
                                               "the container")
        cid = await self._running_container(request)
        session = await self._open(self._runtime.exec(cid, list(options.command),
                                                      stdin=options.stdin, tty=options.tty))
        return await self._serve(request, session, options)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        options = rc.StreamOptions.from_query(request.query, [])
        cid = await self._running_container(request)
        session = await self._open(self._runtime.attach(cid, stdin=options.stdin))
        return await self._serve(request, session, options)

    @staticmethod
    async def _open(opening) -> ExecSession:
        try:
            return await opening
        except RuntimeError_ as exc:
            raise _refused(web.HTTPBadRequest, str(exc) or type(exc).__name__) from None

    async def _serve(self, request: web.Request, session: ExecSession,
                     options: rc.StreamOptions) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(rc.V5,), max_msg_size=0, heartbeat=None)
        try:
            await ws.prepare(request)
            reader = asyncio.create_task(self._pump_input(ws, session))
            try:
                status = await self._pump_output(ws, session, options)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
            if not ws.closed:
                await ws.send_bytes(bytes([rc.ERROR]) + rc.encode_status(status))
                await ws.close()
        except ConnectionError:
            pass  # the API server went away: the session ends below
        finally:
            await session.close()
        return ws

    @staticmethod
    async def _pump_output(ws: web.WebSocketResponse, session: ExecSession,
                           options: rc.StreamOptions) -> dict[str, Any]:
        """Copy output until it ends; then the session's status."""
        wanted = {rc.STDOUT: options.stdout or options.tty, rc.STDERR: options.stderr}
        while True:
            chunk = await session.read()
            if chunk is None:
                break
            channel, data = chunk
            if wanted.get(channel, False) and data:
                await ws.send_bytes(bytes([channel]) + data)
        code = await session.wait()
        if not code:
            return rc.success_status()
        return rc.exit_code_status(options.command, code)

    @staticmethod
    async def _pump_input(ws: web.WebSocketResponse, session: ExecSession) -> None:
        """Feed stdin and resizes until the client closes; a client gone ends the session."""
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == rc.STDIN and data:
                await session.write(data)
            elif channel == rc.RESIZE:
                size = rc.parse_resize(data)
                if size is not None:
                    await session.resize(*size)
            elif channel == rc.CLOSE and data[:1] == bytes([rc.STDIN]):
                await session.close_stdin()
        await session.close()  # the client went away: nothing outlives it

    # -- port-forward ----------------------------------------------------------------------

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        pod = self._pod(request)
        try:
            port = int(request.query.get("port", ""))
        except ValueError:
            raise _refused(web.HTTPBadRequest, "port must be an integer") from None
        if not 0 < port < 65536:
            raise _refused(web.HTTPBadRequest, f"invalid port {port}")
        sandboxes = await self._runtime.list_pod_sandbox(
            labels={labels.POD_UID: pod.metadata.uid})
        ready = [s for s in sandboxes if s.state is SandboxState.READY]
        if not ready:
            raise _refused(web.HTTPNotFound, f'pod "{pod.metadata.name}" has no running '
                                             f'sandbox')
        ws = web.WebSocketResponse(protocols=(rc.PORT_FORWARD_NODE,), max_msg_size=0,
                                   heartbeat=None)
        await ws.prepare(request)
        try:
            reader, writer = await self._runtime.port_forward(ready[-1].id, port)
        except (PortForwardError, RuntimeError_) as exc:
            await ws.send_str(str(exc))
            await ws.close()
            return ws
        try:
            await _splice(ws, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return ws


def _refused(kind: type[web.HTTPException], text: str) -> web.HTTPException:
    """An answer that refuses the upgrade; the text travels in the body and in a header."""
    header = " ".join(text.split()).encode("ascii", "replace").decode()
    return kind(text=text, headers={rc.NODE_ERROR_HEADER: header})


async def _splice(ws: web.WebSocketResponse, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    """Copy both ways until the pod side reaches EOF or the WebSocket closes."""

    async def from_pod() -> None:
        while data := await reader.read(READ_LIMIT):
            await ws.send_bytes(data)

    async def to_pod() -> None:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()
            elif msg.type is WSMsgType.TEXT and msg.data == "eof" and writer.can_write_eof():
                writer.write_eof()

    down, up = asyncio.create_task(from_pod()), asyncio.create_task(to_pod())
    try:
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        if down.done() and not up.done():
            await ws.close()  # pod side finished: tell the API server
    except ConnectionError:
        pass
    finally:
        for task in (down, up):
            task.cancel()
        for task in (down, up):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not ws.closed:
            await ws.close()
