"""The REST verbs on resources: get, list, create, update, patch, delete, deletecollection.

:class:`ResourceHandlers` resolves a request (:mod:`.requestinfo`), runs it through the
resource's registry store and answers JSON or a Table. Watches are in :mod:`.watch`.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from aiohttp import web

from ..api import decode, errors, patch, protobuf, selectors, unimplemented
from ..api.resources import BINDINGS, METRICS_GROUP, NAMESPACES, RBAC_GROUP, Resource
from ..api.types import Obj
from ..storage.interface import Preconditions
from . import audit, authz, bodies, encoding, requestinfo, watch
from .auth import USER_KEY, TokenAuthenticator
from .listoptions import check_list_options
from .metrics import MetricsApi
from .podlogs import serve_pod_log
from .registry.binding import bind
from .registry.eviction import EVICTIONS, evict
from .registry.store import RegistryStore
from .rbac import RbacAuthorizer
from .reviews import (answer_access_review, answer_rules_review, answer_self_review,
                      answer_subject_access_review, answer_token_review)
from .streaming.node import NodeDialer
from .streaming.portforward import serve_port_forward
from .streaming.remotecommand import serve_remote_command
from .tokenrequest import TOKEN_REQUESTS, TokenRequests

DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


class ResourceHandlers:
    """Serves every resource in ``stores`` (keyed by resource name); ``authenticator`` answers
    TokenReviews (none: it authenticates no token)."""

    def __init__(self, stores: dict[str, RegistryStore], watch_options: watch.WatchOptions,
                 node_token: str | Callable[[str], str] = "",
                 tokens: TokenRequests | None = None,
                 authenticator: TokenAuthenticator | None = None,
                 rbac: RbacAuthorizer | None = None) -> None:
        self.stores = stores
        self.rbac = rbac
        self.authenticator = authenticator or TokenAuthenticator({})
        self.watch_options = watch_options
        self.tokens = tokens
        self.dialer = NodeDialer(stores["pods"], stores["nodes"], node_token)
        self.metrics = MetricsApi(stores["pods"], stores["nodes"], self.dialer)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info = requestinfo.parse(request.method, request.path, dict(request.query))
        bodies.check_acceptable(request)
        if info.resource.name == "selfsubjectaccessreviews":
            return await answer_access_review(request, self._authz_object, self.rbac)
        if info.resource.name == "selfsubjectrulesreviews":
            return await answer_rules_review(request, self.rbac)
        if info.resource.name == "selfsubjectreviews":
            return await answer_self_review(request)
        await self._authorize(request, info)
        if info.resource.name == "tokenreviews":
            return await answer_token_review(request, self.authenticator)
        if info.resource.name in ("subjectaccessreviews", "localsubjectaccessreviews"):
            return await answer_subject_access_review(request, info.namespace,
                                                      self._authz_object, self.rbac)
        if info.resource.group == METRICS_GROUP:
            return await self.metrics.serve(request, info)
        if info.resource.name == "bindings" or info.subresource == "binding":
            return await self._bind(request, info)
        if info.subresource == "eviction":
            return await self._evict(request, info)
        if info.subresource == "token":
            return await self._token(request, info)
        if info.subresource == "log":
            return await serve_pod_log(request, self.dialer, info.namespace or "",
                                       info.name or "")
        if info.subresource in ("exec", "attach"):
            return await serve_remote_command(request, self.dialer, info.namespace or "",
                                              info.name or "", info.subresource)
        if info.subresource == "portforward":
            return await serve_port_forward(request, self.dialer, info.namespace or "",
                                            info.name or "")
        store = self.stores[info.resource.name]
        handler: Callable[..., Any] = getattr(self, "_" + info.verb)
        response = await handler(request, info, store)
        if info.resource.group == RBAC_GROUP and self.rbac is not None and \
                info.verb not in ("get", "list", "watch") and not dry_run(request):
            await self.rbac.caught_up(store.storage.revision)
        return response

    # -- reads ---------------------------------------------------------------------------

    async def _get(self, request: web.Request, info: requestinfo.RequestInfo,
                   store: RegistryStore) -> web.Response:
        obj = await store.get(info.namespace, info.name)
        if bodies.wants_table(request, info.resource):
            return bodies.respond(bodies.as_table(request, info.resource, [obj],
                                                  obj["metadata"].get("resourceVersion", "")),
                                  content_type=bodies.TABLE_CONTENT_TYPE)
        return bodies.respond(obj, encoded=encoding.encode_stored(obj))

    async def _list(self, request: web.Request, info: requestinfo.RequestInfo,
                    store: RegistryStore) -> web.Response:
        check_list_options(request)
        matches = object_filter(request, info.resource)
        table = bodies.wants_table(request, info.resource)
        if matches is match_all and not table:  # the stored bytes as they are, nothing decoded
            encoded, rev = await store.list_encoded(info.namespace)
            return bodies.respond(None, encoded=encoding.encode_list(
                info.resource.list_kind, info.resource.api_version, str(rev), encoded))
        items, rev = await store.list(info.namespace)
        items = [obj for obj in items if matches(obj)]
        if table:
            return bodies.respond(bodies.as_table(request, info.resource, items, str(rev)),
                                  content_type=bodies.TABLE_CONTENT_TYPE)
        return bodies.respond(None, encoded=encoding.encode_list(
            info.resource.list_kind, info.resource.api_version, str(rev), items))

    async def _watch(self, request: web.Request, info: requestinfo.RequestInfo,
                     store: RegistryStore) -> web.StreamResponse:
        check_list_options(request)
        return await watch.serve(request, info, store, object_filter(request, info.resource),
                                 self.watch_options)

    # -- writes --------------------------------------------------------------------------

    async def _create(self, request: web.Request, info: requestinfo.RequestInfo,
                      store: RegistryStore) -> web.Response:
        if info.name:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource")
        obj, warnings = await self._decode(request, info.resource)
        authz.check_create(request[USER_KEY], attributes(request, info), obj)
        namespace = self._body_namespace(obj, info)
        if info.resource.namespaced:
            await self._require_active_namespace(namespace)
        warnings += [unimplemented.warning_text(p)
                     for p in unimplemented.unimplemented_fields(info.resource.kind, obj)]
        created = await store.create(namespace, obj, dry_run=dry_run(request),
                                     warnings=warnings)
        return bodies.respond(created, 201, warnings + store.strategy.warnings(created))

    async def _update(self, request: web.Request, info: requestinfo.RequestInfo,
                      store: RegistryStore) -> web.Response:
        obj, warnings = await self._decode(request, info.resource)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != info.name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match "
                                     f"the name on the URL ({info.name})")
        meta["name"] = info.name
        self._body_namespace(obj, info)
        strategy = store.strategy_for(info.subresource)
        updated = await store.update(info.namespace, info.name, lambda current: obj,
                                     strategy=strategy, dry_run=dry_run(request),
                                     warnings=warnings)
        return bodies.respond(updated, 200, warnings + strategy.warnings(updated))

    async def _patch(self, request: web.Request, info: requestinfo.RequestInfo,
                     store: RegistryStore) -> web.Response:
        kind = bodies.media_type(request)
        if kind == "application/apply-patch+yaml":
            raise errors.unsupported_media_type(
                "server-side apply (application/apply-patch+yaml) is not supported by podling "
                "yet; use client-side `kubectl apply` (without --server-side)")
        if kind not in PATCH_TYPES:
            raise errors.unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCH_TYPES)}")
        body = await bodies.read_body(request)
        document, _ = bodies.parse_document(body, bodies.JSON)
        mode = bodies.validation_mode(request)
        warnings: list[str] = []

        def apply(current: Obj) -> Obj:
            patched = apply_patch(PATCH_TYPES[kind], current, document, info.resource)
            patched, warnings[:] = bodies.check_object(
                patched, info.resource, info.resource.type_name, info.resource.kind, [], mode)
            return patched

        strategy = store.strategy_for(info.subresource)
        updated = await store.update(info.namespace, info.name, apply, strategy=strategy,
                                     dry_run=dry_run(request), warnings=warnings)
        return bodies.respond(updated, 200, warnings + strategy.warnings(updated))

    async def _delete(self, request: web.Request, info: requestinfo.RequestInfo,
                      store: RegistryStore) -> web.Response:
        if info.subresource:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource")
        grace, preconditions = await delete_options(request)
        obj, _ = await store.delete(info.namespace, info.name, grace=grace,
                                    preconditions=preconditions, dry_run=dry_run(request))
        return bodies.respond(obj)

    async def _deletecollection(self, request: web.Request, info: requestinfo.RequestInfo,
                                store: RegistryStore) -> web.Response:
        grace, _ = await delete_options(request)
        matches = object_filter(request, info.resource)
        encoded, revision = await store.list_encoded(info.namespace)
        deleted: list[bytes] = []  # kept encoded: one object decoded at a time, not all
        for data in encoded:
            obj = json.loads(data)
            if not matches(obj):
                continue
            meta = obj["metadata"]
            try:
                result, _ = await store.delete(meta.get("namespace"), meta["name"], grace=grace,
                                               preconditions=Preconditions(uid=meta.get("uid")),
                                               dry_run=dry_run(request))
            except errors.ApiError as exc:
                if exc.code in (404, 409):
                    continue  # gone or replaced meanwhile
                raise
            deleted.append(encoding.encode_stored(result))
        return bodies.respond(None, encoded=encoding.encode_list(
            info.resource.list_kind, info.resource.api_version, str(revision), deleted))

    async def _bind(self, request: web.Request, info: requestinfo.RequestInfo) -> web.Response:
        """POST pods/{name}/binding, or POST bindings naming the pod in metadata.name."""
        binding, warnings = await self._decode(request, BINDINGS)
        name = info.name if info.subresource == "binding" else \
            (binding.get("metadata") or {}).get("name", "")
        await bind(self.stores["pods"], info.namespace, name, binding, dry_run=dry_run(request))
        return bodies.respond({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "code": 201}, 201, warnings)

    async def _evict(self, request: web.Request, info: requestinfo.RequestInfo) -> web.Response:
        """POST pods/{name}/eviction (policy/v1 Eviction): a graceful delete; 201 Status."""
        eviction, warnings = await self._decode(request, EVICTIONS)
        status = await evict(self.stores["pods"], info.namespace, info.name or "", eviction,
                             dry_run=dry_run(request))
        return bodies.respond(status, 201, warnings)

    async def _token(self, request: web.Request, info: requestinfo.RequestInfo) -> web.Response:
        """POST serviceaccounts/{name}/token (authentication.k8s.io/v1 TokenRequest): 201."""
        if self.tokens is None:
            raise errors.ApiError(404, "NotFound",
                                  "the server could not find the requested resource")
        token_request, warnings = await self._decode(request, TOKEN_REQUESTS)
        answer = await self.tokens.create(request[USER_KEY], info.namespace or "",
                                          info.name or "", token_request)
        return bodies.respond(answer, 201, warnings)

    # -- helpers -------------------------------------------------------------------------

    async def _authorize(self, request: web.Request, info: requestinfo.RequestInfo) -> None:
        """403 (Kubernetes' message) unless the user may make this request (:mod:`.authz`)."""
        user = request[USER_KEY]
        attrs = attributes(request, info)
        allowed, reason = authz.decide(user, attrs, await self._authz_object(user, attrs),
                                       self.rbac)
        audit.annotate_decision(allowed, reason)
        if not allowed:
            raise authz.forbidden(user, attrs, reason)

    async def _authz_object(self, user: Any, attrs: authz.Attributes) -> Obj | None:
        """The pod a node's request names, when the decision depends on it (404 if gone);
        for a node reading a secret or configmap, the pods of that namespace bound to it."""
        if not authz.needs_object(user, attrs):
            return None
        if attrs.resource in authz.POD_REFERENCED:
            node = authz.node_name_of(user)
            items, _ = await self.stores["pods"].list(attrs.namespace)
            return {"items": [p for p in items
                              if (p.get("spec") or {}).get("nodeName") == node]}
        return await self.stores["pods"].get(attrs.namespace, attrs.name or "")

    async def _decode(self, request: web.Request, resource: Resource) -> tuple[Obj, list[str]]:
        body = await bodies.read_body(request)
        if bodies.media_type(request) == protobuf.MEDIA_TYPE:
            obj, duplicates = bodies.parse_protobuf(body, resource.kind)
        else:
            obj, duplicates = bodies.parse_document(body, bodies.media_type(request))
        return bodies.check_object(obj, resource, resource.type_name, resource.kind,
                                   duplicates, bodies.validation_mode(request))

    def _body_namespace(self, obj: Obj, info: requestinfo.RequestInfo) -> str | None:
        meta = obj.setdefault("metadata", {})
        if not info.resource.namespaced:
            meta.pop("namespace", None)
            return None
        given = meta.get("namespace")
        if given and given != info.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        return info.namespace

    async def _require_active_namespace(self, namespace: str | None) -> None:
        ns = await self.stores["namespaces"].lookup(None, namespace or "")
        if (ns.get("status") or {}).get("phase") == "Terminating":
            raise errors.ApiError(
                403, "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                f"terminated",
                {"name": namespace, "kind": "namespaces", "causes": [
                    {"reason": "NamespaceTerminating", "message": f"namespace {namespace} is "
                     "being terminated", "field": "metadata.namespace"}]})


def attributes(request: web.Request, info: requestinfo.RequestInfo) -> authz.Attributes:
    """The authorization attributes of a resource request. As Kubernetes' RequestInfo has
    it, a namespace is its own namespace (``/api/v1/namespaces/x`` is namespace x)."""
    namespace = info.namespace
    if info.resource is NAMESPACES and info.name:
        namespace = info.name
    return authz.Attributes(verb=info.verb, resource=info.resource.name,
                            group=info.resource.group, namespace=namespace,
                            name=info.name, subresource=info.subresource,
                            field_selector=request.query.get("fieldSelector", ""))


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: '
                                     f'"All"')
    return bool(values)


def object_filter(request: web.Request, resource: Resource) -> Callable[[Obj], bool]:
    """The request's label and field selectors as one predicate; 400 when malformed."""
    label_text = request.query.get("labelSelector", "")
    field_text = request.query.get("fieldSelector", "")
    try:
        labels = selectors.parse_label_selector(label_text)
        fields = selectors.parse_field_selector(field_text)
    except selectors.SelectorError as exc:
        group_version = f"{resource.group}/{resource.version}" if resource.group \
            else f"/{resource.version}"
        raise errors.bad_request(
            f'Unable to find "{group_version}, Resource={resource.name}" that match label '
            f'selector "{label_text}", field selector "{field_text}": {exc}') from None
    try:
        fields = selectors.check_field_selector(resource.name, fields)
    except selectors.SelectorError as exc:
        raise errors.bad_request(str(exc)) from None

    if labels.empty() and fields.empty():
        return match_all
    if fields.empty():
        return lambda obj: labels.matches((obj.get("metadata") or {}).get("labels"))

    def matches(obj: Obj) -> bool:
        return labels.matches((obj.get("metadata") or {}).get("labels")) and \
            fields.matches(selectors.field_set(resource.name, obj))
    return matches


def match_all(obj: Obj) -> bool:
    """The filter of a request without selectors (``is``-comparable: callers skip it)."""
    return True


async def delete_options(request: web.Request) -> tuple[int | None, Preconditions | None]:
    """gracePeriodSeconds and preconditions from the DeleteOptions body and the query."""
    body = await bodies.read_body(request)
    options: Obj = {}
    if body.strip():
        options, _ = bodies.parse_document(body, bodies.JSON)
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        if problems := decode.inspect(options, DELETE_OPTIONS).type_errors:
            raise errors.bad_request(decode.decode_error_message("DeleteOptions", problems[0]))
    grace = options.get("gracePeriodSeconds")
    if "gracePeriodSeconds" in request.query:
        try:
            grace = int(request.query["gracePeriodSeconds"])
        except ValueError:
            raise errors.bad_request("gracePeriodSeconds must be an integer") from None
    if grace is not None and not isinstance(grace, int):
        raise errors.bad_request("gracePeriodSeconds must be an integer")
    pre = options.get("preconditions") or {}
    preconditions = Preconditions(uid=pre.get("uid"), resource_version=pre.get("resourceVersion")) \
        if pre else None
    return grace, preconditions


def apply_patch(kind: str, current: Obj, document: Any, resource: Resource) -> Obj:
    """Apply a patch document of the given kind to a copy of ``current``; 400/422 on failure."""
    try:
        if kind == "json":
            result = patch.json_patch(current, document)
        elif kind == "merge":
            result = patch.json_merge_patch(current, document)
        else:
            if not isinstance(document, dict):
                raise patch.PatchError("a strategic merge patch must be a JSON object")
            result = patch.strategic_merge_patch(current, document, resource.type_name)
    except patch.PatchError as exc:
        code = getattr(exc, "code", 400)
        raise errors.ApiError(code, "Invalid" if code == 422 else "BadRequest", str(exc)) from None
    if not isinstance(result, dict):
        raise errors.bad_request("the patch did not produce an object")
    return result  # the patch functions never hand back (or share) their input
