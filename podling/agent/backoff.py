"""Exponential back-off per key, as the kubelet's (client-go flowcontrol.Backoff).

Used for the CrashLoopBackOff of restarting containers (key ``(pod uid, container name)``)
and for ImagePullBackOff (key ``(pod uid, "image:" + container name)``). Numbers
(docs/kubernetes-fidelity.md §3): 10 s initial, doubling, capped at 300 s, forgotten after
``reset_after`` (600 s) without a new failure.

Per key::

                record_failure                     record_failure (within reset_after)
    (no entry) ───────────────▶ delay = initial ─────────────────────────────────────▶
                                       ▲            delay = min(2 * delay, cap)
                                       │
                                       └── record_failure more than reset_after after
                                           the previous one (or reset(key))

``in_backoff(key, now, since=t)`` asks "is ``now`` still inside the current delay counted
from ``t``?". Containers pass their last ``finished_at`` as ``since`` (the kubelet's
``IsInBackOffSince``) and call ``record_failure`` when they actually restart; image pulls
pass no ``since`` — the window then starts at the last ``record_failure`` (the kubelet's
``IsInBackOffSinceUpdate``).

Not thread-safe; the agent uses it from its one event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from podling.util.clock import Clock, SystemClock

INITIAL_SECONDS = 10.0
CAP_SECONDS = 300.0
RESET_AFTER_SECONDS = 600.0


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Per-key exponential back-off. Times are float seconds; ``now`` defaults to the clock."""

    def __init__(self, initial: float = INITIAL_SECONDS, cap: float = CAP_SECONDS,
                 reset_after: float = RESET_AFTER_SECONDS, *,
                 clock: Clock | None = None) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("need 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.reset_after = reset_after
        self.clock: Clock = clock or SystemClock()
        self._entries: dict[Hashable, _Entry] = {}

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    def _live(self, key: Hashable, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or now - entry.last_update > self.reset_after:
            return None
        return entry

    def current(self, key: Hashable, now: float | None = None) -> float:
        """The delay in force for ``key`` (0 when it has none or it has expired)."""
        entry = self._live(key, self._now(now))
        return entry.delay if entry else 0.0

    def next_delay(self, key: Hashable, now: float | None = None, *,
                   since: float | None = None) -> float:
        """The delay ``record_failure(key, now, since=since)`` would set; changes nothing."""
        t = self._now(now)
        entry = self._live(key, t if since is None else since)
        if entry is None:
            return self.initial
        return min(entry.delay * 2, self.cap)

    def record_failure(self, key: Hashable, now: float | None = None, *,
                       since: float | None = None) -> float:
        """Step the back-off for ``key`` (see the state machine); returns the new delay.

        ``since`` (a container's finish time) is the moment the reset test is made against,
        as in the kubelet; the new window is stamped at ``now`` either way.
        """
        t = self._now(now)
        delay = self.next_delay(key, t, since=since)
        self._entries[key] = _Entry(delay, t)
        return delay

    def in_backoff(self, key: Hashable, now: float | None = None, *,
                   since: float | None = None) -> tuple[bool, float]:
        """``(True, remaining seconds)`` while ``now`` is within the current delay counted
        from ``since`` (default: the last ``record_failure``); else ``(False, 0.0)``.

        An entry older than ``reset_after`` (measured to ``since`` when given, as the kubelet
        does with the container's finish time) does not hold anything back.
        """
        t = self._now(now)
        entry = self._live(key, t if since is None else since)
        if entry is None:
            return False, 0.0
        start = entry.last_update if since is None else since
        remaining = start + entry.delay - t
        return (True, remaining) if remaining > 0 else (False, 0.0)

    def reset(self, key: Hashable) -> None:
        """Forget ``key`` (e.g. after a successful image pull). Idempotent."""
        self._entries.pop(key, None)

    def forget_prefix(self, first: Hashable) -> None:
        """Forget every tuple key whose first element is ``first`` (a pod uid that is gone)."""
        for key in [k for k in self._entries if isinstance(k, tuple) and k and k[0] == first]:
            del self._entries[key]

    def gc(self, now: float | None = None) -> None:
        """Drop entries whose failures are older than ``reset_after``."""
        t = self._now(now)
        for key in [k for k, e in self._entries.items() if t - e.last_update > self.reset_after]:
            del self._entries[key]


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` for whole seconds: ``10s``, ``1m20s``,
    ``5m0s``, ``1h0m0s`` (used in the CrashLoopBackOff message)."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m}m{sec}s" if h else f"{m}m{sec}s"
