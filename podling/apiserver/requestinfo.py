"""Parse a resource URL into what is asked for (like apiserver's RequestInfoFactory).

    /api/v1/namespaces/default/pods/web/status
    └─ group ""  version v1  namespace default  resource pods  name web  subresource status
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import errors
from ..api.resources import STREAMING_SUBRESOURCES, Resource, find

_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class RequestInfo:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    verb: str  # get list watch create update patch delete deletecollection


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    """Resolve ``path`` (with its /api or /apis prefix) or raise a 404/405 ApiError."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_found()
    watch_prefix = rest[:1] == ["watch"]
    if watch_prefix:
        rest = rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise _not_found()
    resource = find(group, version, rest[0])
    if resource is None:
        raise _not_found()
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if (namespace is not None and not resource.namespaced) or \
            (resource.namespaced and namespace is None and name is not None):
        raise _not_found()
    verb = _verb(method, name, watch_prefix or is_true(query.get("watch", "")))
    _check_verb(resource, namespace, subresource, verb)
    if subresource in STREAMING_SUBRESOURCES:
        verb = "create"  # Kubernetes authorizes a WebSocket GET like the POST it replaces
    return RequestInfo(resource, namespace, name, subresource, verb)


def _check_verb(resource: Resource, namespace: str | None, subresource: str | None,
                verb: str) -> None:
    """404 for unknown subresources; 405 for verbs the path does not serve."""
    if subresource:
        served = {s.name: s.verbs for s in resource.subresources}
        if subresource not in served:
            raise _not_found()
        allowed = served[subresource]
    elif resource.namespaced and namespace is None:
        allowed = tuple(v for v in resource.verbs if v in ("list", "watch"))  # all namespaces
    else:
        allowed = resource.verbs
    if verb not in allowed:
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")


def is_true(value: str) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it (the Python client
    sends ``watch=True``)."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _verb(method: str, name: str | None, watch: bool) -> str:
    if method == "GET":
        if watch:
            return "watch"
        return "get" if name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    raise errors.method_not_allowed(f"method {method} is not supported")


def _not_found() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
