"""Events expire: one is deleted once ``ttl`` seconds have passed since it was last written
(kube-apiserver's ``--event-ttl``, 1 h by default, which Kubernetes implements with an etcd
lease renewed on every write of the event).

An API client like the other controllers: every ``period`` seconds one :meth:`sync` pass
lists the events of all namespaces and deletes, each with its resourceVersion as a
precondition (an event written again meanwhile is kept: 409), those whose newest time is
older than the TTL. An event's newest time is the latest of its ``lastTimestamp``,
``eventTime``, ``series.lastObservedTime``, ``firstTimestamp`` and creation time; an event
is thus kept between ``ttl`` and ``ttl + period`` seconds after its last write. Without this,
every event ever recorded stays in the store and the server's memory (issue 11: bounded
after churn).
"""

from __future__ import annotations

import logging

from ..api import errors
from ..api.resources import EVENTS
from ..api.types import Obj
from ..client import ApiClient
from ..util.clock import Clock, SystemClock
from ..util.timefmt import parse_rfc3339
from .periodic import PeriodicController

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 3600.0  # kube-apiserver --event-ttl
PERIOD_SECONDS = 60.0


def last_written(event: Obj) -> float | None:
    """The newest of the event's own times (epoch seconds), None when it has none."""
    times = [event.get("lastTimestamp"), event.get("eventTime"),
             (event.get("series") or {}).get("lastObservedTime"), event.get("firstTimestamp"),
             (event.get("metadata") or {}).get("creationTimestamp")]
    parsed: list[float] = []
    for text in times:
        if isinstance(text, str) and text:
            try:
                parsed.append(parse_rfc3339(text).timestamp())
            except ValueError:
                continue
    return max(parsed) if parsed else None


class EventTTLController(PeriodicController):
    """Deletes expired events (see the module docstring). ``client`` is the caller's."""

    name = "event-ttl-controller"

    def __init__(self, client: ApiClient, *, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 period: float = PERIOD_SECONDS, clock: Clock | None = None) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._period = period
        self._clock = clock or SystemClock()

    async def sync(self) -> int:
        """One pass; returns how many events it deleted."""
        events, _ = await self._client.list(EVENTS)
        cutoff = self._clock.now() - self._ttl
        deleted = 0
        for event in events:
            written = last_written(event)
            if written is None or written > cutoff:
                continue
            meta = event["metadata"]
            try:
                await self._client.delete(EVENTS, meta["name"], meta.get("namespace"),
                                          preconditions={"resourceVersion":
                                                         meta["resourceVersion"]})
                deleted += 1
            except errors.ApiError as exc:
                if exc.code not in (404, 409):  # gone, or written again: kept
                    raise
        if deleted:
            log.info("deleted %d events older than %ss", deleted, self._ttl)
        return deleted
