"""Moved to :mod:`podling.client.events` (one recorder for every component); this re-export
keeps the agent's imports working until they are switched over."""

from ..client.events import EventRecorder, container_field_path, object_reference

__all__ = ["EventRecorder", "container_field_path", "object_reference"]
