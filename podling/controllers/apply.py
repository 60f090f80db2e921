"""Read-modify-write of one object over the API, retried on 409 Conflict.

What the controllers use instead of writing to storage: the change goes through the API
server's whole pipeline (strategies, validation, optimistic concurrency), exactly as a
``kubectl edit`` would.
"""

from __future__ import annotations

import copy
from typing import Callable

from ..api.errors import ApiError
from ..api.resources import Resource
from ..api.types import Obj
from ..client import ApiClient, resource_path

ATTEMPTS = 5


async def update_object(client: ApiClient, resource: Resource, obj: Obj,
                        change: Callable[[Obj], Obj], *, subresource: str | None = None) -> Obj:
    """PUT ``change(copy of obj)`` (to ``subresource`` when given) with ``obj``'s
    resourceVersion; on 409 Conflict re-read the object and try again (at most
    :data:`ATTEMPTS` times). Writes nothing when the change changes nothing.

    Returns the stored object. Raises ApiError (404 when the object is gone, 409 after the
    last attempt, 422 when the server refuses the change) and ApiConnectionError."""
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace") or None
    path = resource_path(resource, namespace, name, subresource)
    for attempt in range(ATTEMPTS):
        wanted = change(copy.deepcopy(obj))
        if wanted == obj:
            return obj
        try:
            return await client.request("PUT", path, body=wanted)
        except ApiError as exc:
            if exc.code != 409 or attempt == ATTEMPTS - 1:
                raise
        obj = await client.get(resource, name, namespace)
    raise AssertionError("not reached")
