"""``spec.activeDeadlineSeconds`` (kubelet active_deadline.go): pure.

A pod whose ``status.startTime`` lies ``activeDeadlineSeconds`` or more in the past is
killed and reported ``Failed`` with the reason ``DeadlineExceeded`` (and a Normal event of
that reason, as the kubelet's ``activeDeadlineHandler.ShouldEvict`` records it)::

    no activeDeadlineSeconds ──────────────────▶ nothing to do
    startTime + deadline > now ────────────────▶ resync at the deadline
    startTime + deadline <= now ───────────────▶ kill the pod, phase Failed, DeadlineExceeded

A pod without a startTime yet (its first status is on its way) counts from ``now``: the
worker is requeued then, and looks again with the startTime it wrote.
"""

from __future__ import annotations

from podling.api.views import PodView
from podling.util.timefmt import parse_rfc3339

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"


def seconds_left(pod: PodView, now: float) -> float | None:
    """Seconds until the pod's active deadline (<= 0: exceeded); None without one."""
    allowed = pod.spec.active_deadline_seconds
    if allowed is None:
        return None
    started = now
    if pod.status.start_time:
        try:
            started = parse_rfc3339(pod.status.start_time).timestamp()
        except ValueError:
            pass
    return started + allowed - now


def past_deadline(pod: PodView, now: float) -> bool:
    """kubelet ``pastActiveDeadline``: a start time and at least the deadline since."""
    left = seconds_left(pod, now)
    return bool(pod.status.start_time) and left is not None and left <= 0


def requeue_after(pod: PodView, now: float, current: float | None) -> float | None:
    """``current`` (the plan's requeue), or sooner when the deadline comes first."""
    left = seconds_left(pod, now)
    if left is None or left <= 0:
        return current
    return left if current is None else min(current, left)
