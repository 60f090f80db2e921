"""Watch: a chunked stream of JSON lines ``{"type": ..., "object": ...}``.

    resourceVersion "" or "0"  → synthetic ADDED for every current match, then live changes
    resourceVersion N          → every change after N, in order; if N is no longer retained,
                                 one ERROR event carrying a 410 Expired Status, then the end

Label and field selectors apply to both the old and the new state of each change, so an
object that stops matching is sent as DELETED and one that starts matching as ADDED. The stream
ends after ``timeoutSeconds`` (default: 30 to 60 minutes), when the client goes away, or when
the server stops. With ``allowWatchBookmarks=true`` an idle stream gets BOOKMARK events.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from ..api import errors
from ..api.types import Obj
from ..storage.cache import stamp
from ..storage.interface import Compacted, WatchEvent, WatchStream
from . import bodies
from .encoding import encode_event
from .registry.store import RegistryStore, collection_prefix
from .requestinfo import RequestInfo, is_true



log = logging.getLogger(__name__)

BATCH_EVENTS = 256  # at most this many queued events go out in one write


@dataclass(frozen=True)
class WatchOptions:
    bookmark_interval: float = 10.0
    min_timeout: float = 1800.0


def _timeout(request: web.Request, options: WatchOptions) -> float:
    text = request.query.get("timeoutSeconds")
    if text is None:
        return options.min_timeout * (1 + random.random())
    try:
        return max(0.0, float(int(text)))
    except ValueError:
        raise errors.bad_request(f'timeoutSeconds: Invalid value: "{text}"') from None


def _start_revision(request: web.Request) -> int | None:
    """None for "" and "0" (start with the current state); otherwise the revision."""
    text = request.query.get("resourceVersion", "")
    if text in ("", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.bad_request(f'resourceVersion: Invalid value: "{text}": must be a '
                                 f'non-negative integer')
    return value


def classify(event: WatchEvent, matches: Callable[[Obj], bool]) -> str | None:
    """The event type this watcher sees for ``event``, or None when it sees nothing."""
    now = event.type != "DELETED" and matches(event.obj)
    before = event.prev is not None and matches(event.prev)
    if event.type == "DELETED":
        return "DELETED" if before else None
    if now:
        return "MODIFIED" if before else "ADDED"
    return "DELETED" if before else None


class _Writer:
    """Encodes events as JSON lines, as objects or one-row Tables."""

    def __init__(self, request: web.Request, info: RequestInfo, response: web.StreamResponse):
        self.request, self.info, self.response = request, info, response
        self.table = bodies.wants_table(request, info.resource)
        self.columns_sent = False

    def encode(self, type_: str, obj: Obj, *, stored: bool = True) -> bytes:
        """One event line; ``stored`` objects come from the store (encoded once for all
        watchers), others were built for this event."""
        if self.table and type_ not in ("BOOKMARK", "ERROR"):
            obj = bodies.as_table(self.request, self.info.resource, [obj],
                                  obj["metadata"].get("resourceVersion", ""),
                                  with_columns=not self.columns_sent)
            self.columns_sent = True
            stored = False
        return encode_event(type_, obj, stored=stored)

    async def send(self, type_: str, obj: Obj, *, stored: bool = True) -> None:
        """Write one event (see :meth:`encode`)."""
        await self.response.write(self.encode(type_, obj, stored=stored))


async def serve(request: web.Request, info: RequestInfo, store: RegistryStore,
                matches: Callable[[Obj], bool], options: WatchOptions) -> web.StreamResponse:
    if info.name:
        by_name = matches
        matches = lambda obj: obj["metadata"].get("name") == info.name and by_name(obj)  # noqa: E731
    timeout = _timeout(request, options)
    start = _start_revision(request)
    bookmarks = is_true(request.query.get("allowWatchBookmarks", ""))
    prefix = collection_prefix(info.resource, info.namespace)
    initial: list[Obj] = []
    expired: errors.ApiError | None = None
    stream = None
    if start is None:
        items, start = await store.list(info.namespace)
        initial = [obj for obj in items if matches(obj)]
    try:
        stream = await store.storage.watch(prefix, start)
    except Compacted as exc:
        expired = errors.gone(f"too old resource version: {exc.requested} ({exc.oldest})")

    response = web.StreamResponse(status=200)
    writer = _Writer(request, info, response)
    response.headers["Content-Type"] = (bodies.TABLE_CONTENT_TYPE if writer.table
                                        else bodies.JSON)
    response.enable_chunked_encoding()
    await response.prepare(request)
    if expired is not None:
        await writer.send("ERROR", expired.status(), stored=False)
        return response
    assert stream is not None
    try:
        for at in range(0, len(initial), BATCH_EVENTS):
            await response.write(b"".join(writer.encode("ADDED", obj)
                                          for obj in initial[at:at + BATCH_EVENTS]))
        await _pump(stream, _Sink(stream, writer, matches, request.transport), info, timeout,
                    options.bookmark_interval if bookmarks else None)
    except ConnectionResetError:
        pass  # the client went away: an ordinary end of a watch
    finally:
        stream.close()
    return response


class _Sink:
    """Writes a watcher's events to its connection straight from the store's fan-out.

    Attached to the stream (:meth:`deliver`) while the watch task is parked, so a change
    reaches every watcher without a task switch per watcher. It takes events only while the
    connection keeps up (its write buffer at most the transport's high-water mark); beyond
    that, or while the connection is closing, it refuses and the task writes the backlog
    with flow control. A failed write ends the stream (the client re-watches).
    """

    def __init__(self, stream: WatchStream, writer: _Writer, matches: Callable[[Obj], bool],
                 transport: asyncio.WriteTransport | None) -> None:
        self.stream, self.writer, self.matches = stream, writer, matches
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.last_write = self.loop.time()

    def chunk(self, events: list[WatchEvent]) -> bytes:
        """The lines this watcher gets for ``events``, joined (b"" when it sees none)."""
        return b"".join(_line(self.writer, event, self.matches) for event in events)

    def deliver(self) -> bool:
        transport = self.transport
        try:
            while True:
                if transport is None or transport.is_closing() or \
                        transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
                    return False
                events = self.stream.ready(BATCH_EVENTS)
                if not events:
                    return True
                chunk = self.chunk(events)
                if chunk:  # one HTTP chunk, framed as aiohttp frames them
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    self.last_write = self.loop.time()
        except Exception:  # noqa: BLE001 - never into the store's write; the watch ends
            log.debug("watch: direct write failed", exc_info=True)
            self.stream.close()
            return False


async def _pump(stream: WatchStream, sink: _Sink, info: RequestInfo, timeout: float,
                bookmark_interval: float | None) -> None:
    """Send events until the deadline or the stream's end: what is queued with flow control,
    then parked with ``sink`` attached until the stream needs this task again."""
    loop = sink.loop
    deadline = loop.time() + timeout
    while True:
        events = stream.ready(BATCH_EVENTS)
        if events:
            chunk = sink.chunk(events)
            if chunk:
                await sink.writer.response.write(chunk)  # one chunk (one TLS record)
                sink.last_write = loop.time()
            continue
        if stream.closed:
            return
        now = loop.time()
        if now >= deadline:
            return
        wait = deadline - now
        if bookmark_interval:
            wait = min(wait, max(0.0, sink.last_write + bookmark_interval - now))
        stream.attach(sink.deliver)
        try:
            async with asyncio.timeout(wait):
                await stream.wait()
        except TimeoutError:
            if bookmark_interval and loop.time() < deadline and \
                    loop.time() - sink.last_write >= bookmark_interval:
                await sink.writer.send("BOOKMARK", {
                    "kind": info.resource.kind, "apiVersion": info.resource.api_version,
                    "metadata": {"resourceVersion": str(stream.bookmark_revision())}},
                    stored=False)
                sink.last_write = loop.time()
            continue
        finally:
            stream.attach(None)


def _line(writer: _Writer, event: WatchEvent, matches: Callable[[Obj], bool]) -> bytes:
    """The line this watcher gets for ``event`` (b"" when it sees nothing of it)."""
    seen_as = classify(event, matches)
    if seen_as == "DELETED" and event.type != "DELETED":
        # it stopped matching: send the last state it matched in, at this revision
        assert event.prev is not None
        return writer.encode(seen_as, stamp(event.prev, event.rev), stored=False)
    if seen_as:
        return writer.encode(seen_as, event.obj)
    return b""
