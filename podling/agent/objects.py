"""The ConfigMaps and Secrets the node's pods refer to, read through a short-lived cache.

Like the kubelet's TTL cache manager: ``get`` answers from the cache while the entry is
younger than ``ttl`` seconds, else it GETs the object (the node is authorized to read what
its pods refer to). Concurrent gets of one object share one request. ``invalidate_pod``
forgets everything a pod refers to, so a pod that was just added or changed reads fresh
objects (as the kubelet does when it registers a pod).

A missing object is ``None`` (cached like a found one, so that a pod waiting for it does not
hammer the server); any other API error propagates.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Protocol

from podling.api import references
from podling.api.resources import CONFIG_MAPS, SECRETS, Resource
from podling.api.types import Obj
from podling.client import ApiClient
from podling.client.errors import ApiError

DEFAULT_TTL_SECONDS = 10.0

Key = tuple[str, str, str]  # (resource, namespace, name)


class ObjectSource(Protocol):
    """What the agent reads ConfigMaps and Secrets through (fakes implement this too)."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        """The object, or None if it does not exist."""


class ObjectCache:
    """:class:`ObjectSource` over an :class:`ApiClient` with a TTL cache (see module doc)."""

    def __init__(self, client: ApiClient, *, ttl: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[Key, tuple[float, Obj | None]] = {}
        self._inflight: dict[Key, asyncio.Future[Obj | None]] = {}

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        key = (resource.name, namespace, name)
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] < self._ttl:
            return entry[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Obj | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            obj = await self._fetch(resource, namespace, name)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        else:
            self._entries[key] = (self._clock(), obj)
            future.set_result(obj)
            return obj
        finally:
            del self._inflight[key]

    async def _fetch(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        try:
            return await self._client.get(resource, name, namespace)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def invalidate_pod(self, pod: Obj) -> None:
        """Forget the cached ConfigMaps and Secrets ``pod`` refers to."""
        namespace = pod.get("metadata", {}).get("namespace", "default")
        for resource, names in ((CONFIG_MAPS, references.config_map_names(pod)),
                                (SECRETS, references.secret_names(pod))):
            for name in names:
                self._entries.pop((resource.name, namespace, name), None)
