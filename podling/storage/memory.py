"""The in-memory backend, for unit tests and throwaway servers: nothing survives a restart."""

from __future__ import annotations

from .cache import CachedStore


class MemoryStore(CachedStore):
    """Storage held only in this process's memory."""
