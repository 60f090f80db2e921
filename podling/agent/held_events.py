"""Events held back and released later, in an order chosen by the caller.

The pod's containers are prepared concurrently (image, config, create) but the kubelet's
events of one container come together and in spec order (Pulled, Created, Started of the
first, then of the second, …). Each concurrent preparation records into its own
:class:`HeldEvents`; the starter releases them into the node's recorder, one container
after the other: the first container's at once, the next one's once the one before it
started. A container whose start is abandoned (its sandbox failed under it) never releases
its events: nothing of it remains.
"""

from __future__ import annotations

from typing import Protocol

from podling.api.types import ObjMap


class EventSink(Protocol):
    """What records an event (:class:`podling.client.events.EventRecorder.event`)."""

    def event(self, obj: ObjMap, type: str, reason: str, message: str,
              field_path: str | None = None) -> None: ...


class HeldEvents:
    """An :class:`EventSink` that keeps events until :meth:`release`, and from then on
    passes them through at once (a long image pull shows its Pulling event while it runs
    once the containers before it started)."""

    def __init__(self, target: EventSink) -> None:
        self._target = target
        self._held: list[tuple[ObjMap, str, str, str, str | None]] | None = []

    def event(self, obj: ObjMap, type: str, reason: str, message: str,
              field_path: str | None = None) -> None:
        if self._held is None:
            self._target.event(obj, type, reason, message, field_path=field_path)
        else:
            self._held.append((obj, type, reason, message, field_path))

    def release(self) -> None:
        """Record the held events into the target, in the order they came, then pass the
        next ones through; idempotent."""
        held, self._held = self._held or [], None
        for obj, type_, reason, message, field_path in held:
            self._target.event(obj, type_, reason, message, field_path=field_path)
