"""What an audit event says of its request: the verb and object as kube-apiserver's
RequestInfo sees them (:func:`describe`, for any path), the user (:func:`user_info`) and
the source addresses (:func:`source_ips`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}
#: the keys of an event's objectRef, in Kubernetes' order
REF_ORDER = ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion",
             "subresource")


@dataclass(frozen=True)
class Described:
    """A request as kube-apiserver's RequestInfo sees it (never an error: any path)."""

    verb: str
    resource: str = ""
    subresource: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    name: str = ""

    def object_ref(self) -> dict[str, str]:
        ref = {"resource": self.resource, "namespace": self.namespace, "name": self.name,
               "apiGroup": self.group, "apiVersion": self.version,
               "subresource": self.subresource}
        return {k: ref[k] for k in REF_ORDER if ref.get(k)}


def describe(request: web.Request) -> Described:
    """The audit verb and object of a request: ``/api/v1/…`` and ``/apis/g/v/…`` paths are
    resource requests (verb from the method; list, watch and deletecollection without a
    name), anything else is the lower-cased method."""
    parts = [p for p in request.path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Described(verb=request.method.lower())
    verb = _VERBS.get(request.method, "")
    if rest[0] in ("watch", "proxy") and len(rest) > 1:
        verb, rest = rest[0], rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 2:
        namespace = rest[1]
        if len(rest) > 2 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            rest = rest[2:]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""
    if verb == "get" and not name:
        watch = request.query.get("watch", "")
        verb = "watch" if watch and watch.lower() not in ("false", "0") else "list"
    if verb in ("list", "watch") and not name:
        selector = request.query.get("fieldSelector", "")
        if selector.startswith("metadata.name=") and "," not in selector:
            name = selector.split("=", 1)[1]
    if verb == "delete" and not name:
        verb = "deletecollection"
    return Described(verb, rest[0], subresource, group, version, namespace, name)


def user_info(user: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name}
    if getattr(user, "uid", ""):
        info["uid"] = user.uid
    if user.groups:
        info["groups"] = list(user.groups)
    extra = getattr(user, "extra", ())
    if extra:
        info["extra"] = {key: list(values) for key, values in sorted(extra)}
    return info


def source_ips(request: web.Request) -> list[str]:
    """X-Forwarded-For, then X-Real-Ip, then the peer (unless already last)."""
    ips = [ip.strip() for ip in request.headers.get("X-Forwarded-For", "").split(",")
           if _is_ip(ip.strip())]
    real = request.headers.get("X-Real-Ip", "").strip()
    if _is_ip(real) and real not in ips:
        ips.append(real)
    peer = request.remote or ""
    if _is_ip(peer) and (not ips or ips[-1] != peer):
        ips.append(peer)
    return ips


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
