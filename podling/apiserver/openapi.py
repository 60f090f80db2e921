"""The OpenAPI v3 documents kubectl reads: ``/openapi/v3`` and one document per group version.

kubectl uses them for three things (docs/kubectl-compatibility.md §5 and §8.2):

* apply/create pick *server-side* field validation when a GV document has a PATCH operation
  tagged with the kind's ``x-kubernetes-group-version-kind`` and a ``fieldValidation``
  parameter;
* client-side apply computes strategic merge patches from the ``x-kubernetes-patch-*``
  extensions of ``components.schemas``;
* ``kubectl explain`` renders ``components.schemas``, starting at the schema that carries the
  kind's GVK and following ``allOf``/``$ref``.

``/openapi/v2`` is an empty Swagger 2.0 document (:func:`openapi_v2`). kubectl falls back to
it for kinds that have no PATCH path (the reviews, which are only created), and
with no definition for the kind it leaves the validation to the server, as it does for
any kind its v2 document lacks; without it, ``kubectl create -f`` of a review failed.

Everything is generated from ``podling.api.resources`` (paths) and ``podling.api.schema``
(schemas), with descriptions written for podling. Documents are built once per process;
the hash in ``serverRelativeURL`` doubles as the ETag.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from podling.api import patchmeta, resources, schema
from podling.api.decode import FIELDS_V1, INT_OR_STRING, QUANTITY, effective_schema
from podling.apiserver.openapi_text import PARAMETERS, describe

KUBERNETES_VERSION = "v1.32.0"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
RESPONSE_TYPES = ("application/json", "application/yaml")

_OPAQUE_SCHEMAS: dict[str, dict[str, Any]] = {
    QUANTITY: {"type": "string"},
    INT_OR_STRING: {"type": "string", "format": "int-or-string"},
    FIELDS_V1: {"type": "object"},
    PATCH: {"type": "object"},
}
# Conservative ``required`` lists: fields Kubernetes itself marks required.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "PodSpec": ("containers",), "Container": ("name",), "EphemeralContainer": ("name",),
    "HostAlias": ("ip",), "ContainerPort": ("containerPort",), "EnvVar": ("name",),
    "VolumeMount": ("name", "mountPath"), "Volume": ("name",), "HostPathVolumeSource": ("path",),
    "HTTPGetAction": ("port",), "TCPSocketAction": ("port",), "GRPCAction": ("port",),
    "HTTPHeader": ("name", "value"), "SleepAction": ("seconds",),
    "NodeSelector": ("nodeSelectorTerms",), "NodeSelectorRequirement": ("key", "operator"),
    "PreferredSchedulingTerm": ("weight", "preference"), "ObjectFieldSelector": ("fieldPath",),
    "ResourceFieldSelector": ("resource",), "ConfigMapKeySelector": ("key",),
    "SecretKeySelector": ("key",), "KeyToPath": ("key", "path"), "Taint": ("key", "effect"),
    "Binding": ("target",), "Event": ("metadata", "involvedObject"),
    "PodCondition": ("type", "status"), "NodeCondition": ("type", "status"),
    "NodeAddress": ("type", "address"), "LabelSelectorRequirement": ("key", "operator"),
    "OwnerReference": ("apiVersion", "kind", "name", "uid"),
    "SelfSubjectAccessReview": ("spec",),
}
# Extra list-map keys beyond the patch merge key (Kubernetes' +listMapKey tags).
_LIST_MAP_KEYS = {"ports": ["containerPort", "protocol"]}
_VERB_ACTIONS = {"get": ("get", "read"), "list": ("get", "list"), "create": ("post", "create"),
                 "update": ("put", "replace"), "patch": ("patch", "patch"),
                 "delete": ("delete", "delete"), "deletecollection": ("delete", "delete")}
_X_ACTION = {"get": "get", "list": "list", "create": "post", "update": "put", "patch": "patch",
             "delete": "delete", "deletecollection": "deletecollection"}
_QUERY_PARAMS = {
    "list": ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
             "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
             "watch"),
    "create": ("dryRun", "fieldManager", "fieldValidation"),
    "update": ("dryRun", "fieldManager", "fieldValidation"),
    "patch": ("dryRun", "fieldManager", "fieldValidation", "force"),
    "delete": ("dryRun", "gracePeriodSeconds", "propagationPolicy"),
    "deletecollection": ("dryRun", "gracePeriodSeconds", "propagationPolicy", "continue",
                         "fieldSelector", "labelSelector", "limit", "resourceVersion",
                         "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds"),
    "get": (),
    "log": ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous",
            "sinceSeconds", "sinceTime", "tailLines", "timestamps"),
    "exec": ("command", "container", "stderr", "stdin", "stdout", "tty"),
    "attach": ("container", "stderr", "stdin", "stdout", "tty"),
    "portforward": ("ports",),
}


# --------------------------------------------------------------------------- public API


def openapi_v2(protobuf: bool) -> bytes:
    """The Swagger 2.0 document with no paths and no definitions: as protobuf (gnostic's
    ``openapi_v2.Document``: swagger = 1, info = 2 with title = 1 and version = 2), which
    kubectl asks for, or as JSON."""
    if not protobuf:
        return json.dumps({"swagger": "2.0", "info": {"title": "podling", "version": "v2"},
                           "paths": {}, "definitions": {}}).encode()

    def field(number: int, value: bytes) -> bytes:  # a length-delimited field (< 128 bytes)
        return bytes((number << 3 | 2, len(value))) + value

    return field(1, b"2.0") + field(2, field(1, b"podling") + field(2, b"v2"))


def openapi_root() -> dict[str, Any]:
    """The ``/openapi/v3`` discovery document: one ``serverRelativeURL`` per group version."""
    paths = {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
             for key, (_, digest) in _documents().items()}
    return {"paths": paths}


def openapi_group_version(path: str) -> tuple[bytes, str] | None:
    """The serialized document for ``api/v1`` / ``apis/<group>/<version>`` and its hash.

    The hash (uppercase hex SHA-256 of the bytes) is also the ETag. None for an unknown path.
    Leading slashes and an ``openapi/v3/`` prefix are tolerated.
    """
    key = path.strip("/")
    key = key.removeprefix("openapi/v3/")
    return _documents().get(key)


@functools.cache
def _documents() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    for group_version in resources.GROUP_VERSIONS:
        key = "api/v1" if group_version == "v1" else f"apis/{group_version}"
        body = json.dumps(group_version_document(group_version), sort_keys=True,
                          separators=(",", ":")).encode()
        out[key] = (body, hashlib.sha256(body).hexdigest().upper())
    return out


def group_version_document(group_version: str) -> dict[str, Any]:
    """The OpenAPI v3 document (as a dict) for every resource served in ``group_version``."""
    served = resources.in_group_version(group_version)
    paths: dict[str, Any] = {}
    roots: list[str] = []
    for resource in served:
        for path, item in _resource_paths(resource).items():
            paths.setdefault(path, {}).update(item)
        roots.extend(_root_types(resource))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas_for(roots),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "in": "header",
                                                "name": "authorization",
                                                "description": "Bearer token authentication"}},
        },
        "security": [{"BearerToken": []}],
    }


# --------------------------------------------------------------------------- schemas


def schemas_for(roots: list[str]) -> dict[str, Any]:
    """``components.schemas``: ``roots`` and every definition reachable from them."""
    out: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in out:
            continue
        out[name] = _definition(name)
        pending.extend(_refs_of(name))
    return out


def _refs_of(name: str) -> list[str]:
    refs: list[str] = []
    for field in schema.properties(name):
        fs = effective_schema(name, field) or {}
        element = schema.element_type(fs)
        if element is not None:
            refs.append(element)
    return refs


def _definition(name: str) -> dict[str, Any]:
    short = name.rsplit(".", 1)[-1]
    if name in _OPAQUE_SCHEMAS:
        out = dict(_OPAQUE_SCHEMAS[name])
    else:
        out = {"type": "object",
               "properties": {f: _field(name, f) for f in schema.properties(name)}}
        if short in _REQUIRED:
            out["required"] = list(_REQUIRED[short])
    gvk = schema.types().get(name, {}).get("gvk")
    if gvk is not None:
        out["x-kubernetes-group-version-kind"] = [
            {"group": gvk["group"], "kind": gvk["kind"], "version": gvk["version"]}]
    text = describe(short)
    if text:
        out["description"] = text
    return out


def _field(owner: str, field: str) -> dict[str, Any]:
    fs = effective_schema(owner, field) or {}
    if "ref" in fs:
        out: dict[str, Any] = {"allOf": [{"$ref": _ref(fs["ref"])}]}
        if fs["ref"] == INT_OR_STRING:
            out["x-kubernetes-int-or-string"] = True
    else:
        out = _inner(fs)
        out.update(_list_extensions(owner, field))
    text = describe(f"{owner.rsplit('.', 1)[-1]}.{field}")
    if text:
        out["description"] = text
    return out


def _inner(fs: dict[str, Any]) -> dict[str, Any]:
    if "ref" in fs:
        return {"$ref": _ref(fs["ref"])}
    out = {k: fs[k] for k in ("type", "format") if k in fs}
    if "items" in fs:
        out["items"] = _inner(fs["items"])
    if "additionalProperties" in fs:
        out["additionalProperties"] = _inner(fs["additionalProperties"])
    return out


def _list_extensions(owner: str, field: str) -> dict[str, Any]:
    meta = patchmeta.list_meta(owner, field)
    if meta is None:
        return {}
    out: dict[str, Any] = {"x-kubernetes-patch-strategy": meta.strategy}
    if meta.merge_key is None:
        out["x-kubernetes-list-type"] = "set"
        return out
    out["x-kubernetes-patch-merge-key"] = meta.merge_key
    out["x-kubernetes-list-type"] = "map"
    out["x-kubernetes-list-map-keys"] = _LIST_MAP_KEYS.get(field, [meta.merge_key])
    return out


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


# --------------------------------------------------------------------------- paths


def _type_of_kind(group: str, version: str, kind: str) -> str | None:
    for name, entry in schema.types().items():
        if entry.get("gvk") == {"group": group, "version": version, "kind": kind}:
            return name
    return None


def _root_types(resource: resources.Resource) -> list[str]:
    names = [resource.type_name, STATUS, schema.DELETE_OPTIONS, PATCH]
    list_type = _type_of_kind(resource.group, resource.version, resource.list_kind)
    names += [list_type] if list_type else []
    for sub in resource.subresources:
        names += [t for t in [_type_of_kind(sub.group, sub.version, sub.kind)] if t]
    return names


def _resource_paths(r: resources.Resource) -> dict[str, dict[str, Any]]:
    prefix = "/api/v1" if not r.group else f"/apis/{r.group}/{r.version}"
    collection = prefix + ("/namespaces/{namespace}" if r.namespaced else "") + "/" + r.name
    item = collection + "/{name}"
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    ops = _Ops(r, gvk)
    paths: dict[str, dict[str, Any]] = {}
    for verb in ("list", "create", "deletecollection"):
        if verb in r.verbs:
            ops.add(paths, collection, verb, r.type_name)
    if r.namespaced and "list" in r.verbs:
        ops.add(paths, f"{prefix}/{r.name}", "list", r.type_name, all_namespaces=True)
    for verb in ("get", "update", "patch", "delete"):
        if verb in r.verbs:
            ops.add(paths, item, verb, r.type_name)
    for sub in r.subresources:
        body = _type_of_kind(sub.group, sub.version, sub.kind) or r.type_name
        sub_ops = _Ops(r, {"group": sub.group, "kind": sub.kind, "version": sub.version},
                       sub.name)
        for verb in sub.verbs:
            sub_ops.add(paths, f"{item}/{sub.name}", verb, body)
    return paths


class _Ops:
    """Builds the operations of one resource (or one of its subresources)."""

    def __init__(self, resource: resources.Resource, gvk: dict[str, str],
                 subresource: str = "") -> None:
        self.r = resource
        self.gvk = gvk
        self.sub = subresource

    def add(self, paths: dict[str, dict[str, Any]], path: str, verb: str, body: str, *,
            all_namespaces: bool = False) -> None:
        entry = paths.setdefault(path, {"parameters": self._path_params(path)})
        method, _ = _VERB_ACTIONS[verb]
        entry[method] = self._operation(verb, body, all_namespaces)

    def _path_params(self, path: str) -> list[dict[str, Any]]:
        params = [_param(n, "path") for n in ("name", "namespace") if "{" + n + "}" in path]
        return params + [_param("pretty")]

    def _operation(self, verb: str, body: str, all_namespaces: bool) -> dict[str, Any]:
        if self.sub in resources.STREAMING_SUBRESOURCES:
            return self._connect_operation(verb)
        is_log = self.sub == "log"
        list_type = _type_of_kind(self.r.group, self.r.version, self.r.list_kind)
        response = list_type if verb == "list" and list_type else body
        if verb == "deletecollection":
            response = STATUS
        op: dict[str, Any] = {
            "tags": [_tag(self.r.group, self.r.version)],
            "description": _op_description(verb, self.r, self.sub, all_namespaces),
            "operationId": self._operation_id(verb, all_namespaces),
            "parameters": [_param(n) for n in _QUERY_PARAMS["log" if is_log else verb]],
            "responses": _responses(verb, response, is_log),
            "x-kubernetes-action": _X_ACTION[verb],
            "x-kubernetes-group-version-kind": dict(self.gvk),
        }
        request = _request_body(verb, body)
        if request:
            op["requestBody"] = request
        return op

    def _connect_operation(self, verb: str) -> dict[str, Any]:
        """A streaming subresource: Kubernetes' ``connect`` action, answered by an upgrade."""
        method = "Get" if verb == "get" else "Post"
        return {
            "tags": [_tag(self.r.group, self.r.version)],
            "description": f"connect {method.upper()} requests to {self.sub} of {self.r.kind}",
            "operationId": f"connect{self._group_version()}{method}Namespaced{self.r.kind}"
                           f"{self.sub.capitalize()}",
            "parameters": [_param(n) for n in _QUERY_PARAMS[self.sub]],
            "responses": {"200": {"description": "OK", "content": {
                "*/*": {"schema": {"type": "string"}}}}, "401": {"description": "Unauthorized"}},
            "x-kubernetes-action": "connect",
            "x-kubernetes-group-version-kind": dict(self.gvk),
        }

    def _group_version(self) -> str:
        group = self.r.group.split(".", 1)[0].capitalize() or "Core"
        return group + self.r.version.capitalize()

    def _operation_id(self, verb: str, all_namespaces: bool) -> str:
        group = self.r.group.split(".", 1)[0].capitalize() or "Core"
        scope = "Namespaced" if self.r.namespaced and not all_namespaces else ""
        collection = "Collection" if verb == "deletecollection" else ""
        tail = "ForAllNamespaces" if all_namespaces else ""
        action = _VERB_ACTIONS[verb][1]
        return (f"{action}{group}{self.r.version.capitalize()}{collection}{scope}"
                f"{self.r.kind}{self.sub.capitalize()}{tail}")


def _tag(group: str, version: str) -> str:
    return f"{group.split('.', 1)[0] or 'core'}_{version}"


def _param(name: str, where: str = "query") -> dict[str, Any]:
    kind, text = PARAMETERS[name]
    out: dict[str, Any] = {"name": name, "in": where, "description": text,
                           "schema": {"type": kind}, "uniqueItems": True}
    if where == "path":
        out["required"] = True
    return out


def _content(type_name: str, media_types: tuple[str, ...] = RESPONSE_TYPES) -> dict[str, Any]:
    return {m: {"schema": {"$ref": _ref(type_name)}} for m in media_types}


def _responses(verb: str, type_name: str, is_log: bool) -> dict[str, Any]:
    if is_log:
        ok = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
        return {"200": ok, "401": {"description": "Unauthorized"}}
    out: dict[str, Any] = {"200": {"description": "OK", "content": _content(type_name)}}
    if verb in ("create", "update", "patch"):
        out["201"] = {"description": "Created", "content": _content(type_name)}
    if verb in ("create", "delete"):
        out["202"] = {"description": "Accepted", "content": _content(type_name)}
    out["401"] = {"description": "Unauthorized"}
    return out


def _request_body(verb: str, type_name: str) -> dict[str, Any] | None:
    if verb in ("create", "update"):
        return {"content": _content(type_name, ("*/*",)), "required": True}
    if verb == "patch":
        return {"content": _content(PATCH, PATCH_TYPES), "required": True}
    if verb in ("delete", "deletecollection"):
        return {"content": _content(schema.DELETE_OPTIONS, ("*/*",))}
    return None


def _op_description(verb: str, r: resources.Resource, sub: str, all_namespaces: bool) -> str:
    target = f"{sub} of the specified {r.kind}" if sub else {
        "list": f"objects of kind {r.kind}", "create": f"a {r.kind}",
        "deletecollection": f"a collection of {r.kind}"}.get(verb, f"the specified {r.kind}")
    where = " in all namespaces" if all_namespaces else ""
    action = {"get": "read", "list": "list or watch", "update": "replace",
              "deletecollection": "delete"}.get(verb, verb)
    return f"{action} {target}{where}"
