"""authorization.k8s.io SelfSubjectAccessReview: "may I do X?" (``kubectl auth can-i``),
SubjectAccessReview and LocalSubjectAccessReview: "may this user do X?" (webhooks, tools),
SelfSubjectRulesReview: "what may I do here?" (``kubectl auth can-i --list``),
authentication.k8s.io SelfSubjectReview: "who am I?" (``kubectl auth whoami``), and
TokenReview: "whom does this token authenticate as?" (kr8s' ``whoami()``, webhooks)."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api import errors, protobuf
from . import bodies
from .auth import USER_KEY, TokenAuthenticator, User
from .authz import Attributes, RuleEvaluator, decide, node_name_of
from .rbac import RbacAuthorizer
from .satokens import AUDIENCES

ObjectLookup = Callable[[Any, Attributes], Awaitable["dict[str, Any] | None"]]


async def answer_access_review(request: web.Request, lookup: ObjectLookup | None = None,
                               rbac: RuleEvaluator | None = None) -> web.Response:
    """Answer a SelfSubjectAccessReview for the requesting user with the same rules as
    real requests (:mod:`.authz`); ``lookup`` fetches the object a decision depends on."""
    body = await bodies.read_body(request)
    if bodies.media_type(request) == protobuf.MEDIA_TYPE:
        review, _ = bodies.parse_protobuf(body, "SelfSubjectAccessReview")
    else:
        review, _ = bodies.parse_document(body, bodies.media_type(request))
    if not isinstance(review, dict) or not isinstance(review.get("spec"), dict):
        raise errors.invalid_object("SelfSubjectAccessReview", "", [
            errors.required("spec", "resourceAttributes or nonResourceAttributes")],
            "authorization.k8s.io")
    user = request[USER_KEY]
    attributes = Attributes.from_review(review["spec"])
    allowed, reason = decide(user, attributes, await _object(lookup, user, attributes), rbac)
    review["status"] = {"allowed": allowed}
    if reason:
        review["status"]["reason"] = reason
    review.setdefault("metadata", {})["creationTimestamp"] = None
    review["apiVersion"], review["kind"] = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
    return bodies.respond(review, 201)


async def answer_subject_access_review(request: web.Request, namespace: str | None,
                                       lookup: ObjectLookup | None = None,
                                       rbac: RuleEvaluator | None = None) -> web.Response:
    """Answer a SubjectAccessReview (``namespace`` None) or a LocalSubjectAccessReview posted
    in ``namespace`` (the caller was authorized to create it): may the user, groups, uid
    and extra of ``spec`` do what its attributes say, by the rules of real requests?
    Kubernetes' validation; the groups are taken as given (nothing is added)."""
    kind = "LocalSubjectAccessReview" if namespace else "SubjectAccessReview"
    review, _ = bodies.parse_document(await bodies.read_body(request), bodies.media_type(request))
    if not isinstance(review, dict):
        review = {}
    meta = review.get("metadata") if isinstance(review.get("metadata"), dict) else {}
    if namespace:
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match "
                                     "the namespace sent on the request")
        meta["namespace"] = namespace
    spec = review.get("spec") if isinstance(review.get("spec"), dict) else {}
    causes = _subject_review_problems(spec, meta, namespace)
    if causes:
        raise errors.invalid_object(kind, "", causes, "authorization.k8s.io")
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    subject = User(str(spec.get("user") or ""), tuple(str(g) for g in spec.get("groups") or ()),
                   extra=tuple((str(k), tuple(str(v) for v in values or ()))
                               for k, values in extra.items()),
                   uid=str(spec.get("uid") or ""))
    attributes = Attributes.from_review(spec)
    allowed, reason = decide(subject, attributes, await _object(lookup, subject, attributes),
                             rbac)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return bodies.respond({"kind": kind, "apiVersion": "authorization.k8s.io/v1",
                           "metadata": {**meta, "creationTimestamp": None}, "spec": spec,
                           "status": status}, 201)


def _subject_review_problems(spec: dict[str, Any], meta: dict[str, Any],
                             namespace: str | None) -> list[errors.Cause]:
    """Kubernetes' ValidateSubjectAccessReview / ValidateLocalSubjectAccessReview."""
    causes = []
    resource, other = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and other is not None:
        causes.append(errors.invalid("spec.nonResourceAttributes", _json(other),
                                     "cannot be specified in combination with "
                                     "resourceAttributes"))
    if resource is None and other is None:
        causes.append(errors.invalid("spec.resourceAttributes", None, "exactly one of "
                                     "nonResourceAttributes or resourceAttributes must be "
                                     "specified"))
    if not spec.get("user") and not spec.get("groups"):
        causes.append(errors.invalid("spec.user", str(spec.get("user") or ""),
                                     "at least one of user or group must be specified"))
    rest = {k: v for k, v in meta.items() if v not in (None, "", {}, [])
            and k not in ("managedFields", "creationTimestamp") and
            not (namespace and k == "namespace")}
    if rest:
        causes.append(errors.invalid("metadata", _json(meta), "must be empty except for "
                                     "namespace" if namespace else "must be empty"))
    if namespace and isinstance(resource, dict) and \
            (resource.get("namespace") or "") != namespace:
        causes.append(errors.invalid("spec.resourceAttributes.namespace",
                                     str(resource.get("namespace") or ""),
                                     "must match metadata.namespace"))
    if namespace and other is not None:
        causes.append(errors.invalid("spec.nonResourceAttributes", _json(other),
                                     "disallowed on this kind of request"))
    return causes


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


async def _object(lookup: ObjectLookup | None, user: Any,
                  attributes: Attributes) -> dict[str, Any] | None:
    """The object the decision depends on, or None (also when it does not exist)."""
    if lookup is None:
        return None
    try:
        return await lookup(user, attributes)
    except errors.ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def answer_self_review(request: web.Request) -> web.Response:
    """Answer a SelfSubjectReview with the requesting user's name, groups and extra."""
    body = await bodies.read_body(request)
    if body.strip():
        if bodies.media_type(request) == protobuf.MEDIA_TYPE:
            bodies.parse_protobuf(body, "SelfSubjectReview")
        else:
            bodies.parse_document(body, bodies.media_type(request))
    return bodies.respond({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                           "metadata": {"creationTimestamp": None},
                           "status": {"userInfo": _user_info(request[USER_KEY])}}, 201)


async def answer_token_review(request: web.Request,
                              authenticator: TokenAuthenticator) -> web.Response:
    """Answer a TokenReview (the caller was authorized to create one) as Kubernetes' tokenreview
    REST does: ``spec.token`` is authenticated like a request's bearer token for the API
    server's audiences (or those of ``spec.audiences`` they share); ``status.authenticated``,
    ``user`` and ``audiences`` say the result, ``user: {}`` for a token nobody knows."""
    review, _ = bodies.parse_document(await bodies.read_body(request), bodies.media_type(request))
    if not isinstance(review, dict) or not isinstance(review.get("spec"), dict):
        review = {"spec": {}}
    token = review["spec"].get("token")
    if not token or not isinstance(token, str):
        raise errors.bad_request("token is required for TokenReview in authentication")
    wanted = review["spec"].get("audiences") or list(AUDIENCES)
    audiences = [a for a in wanted if a in AUDIENCES]
    user = await authenticator.authenticate("Bearer " + token) if audiences else None
    status: dict[str, Any] = {"user": {}}
    if user is not None:
        status = {"authenticated": True, "user": _user_info(user), "audiences": audiences}
    review.update(kind="TokenReview", apiVersion="authentication.k8s.io/v1", status=status)
    review.setdefault("metadata", {})["creationTimestamp"] = None
    return bodies.respond(review, 201)


def _user_info(user: Any) -> dict[str, Any]:
    """A UserInfo: username, uid (service accounts), groups, extra."""
    info: dict[str, Any] = {"username": user.name}
    if getattr(user, "uid", ""):
        info["uid"] = user.uid
    info["groups"] = list(user.groups)
    extra = getattr(user, "extra", ())
    if extra:
        info["extra"] = {key: list(values) for key, values in extra}
    return info


async def answer_rules_review(request: web.Request, rbac: RbacAuthorizer | None) -> web.Response:
    """Answer a SelfSubjectRulesReview (``kubectl auth can-i --list``): the RBAC rules the
    requesting user holds in ``spec.namespace``, as Kubernetes' rule resolvers list them
    (system:masters adds nothing of its own; a node's are ``incomplete``)."""
    body = await bodies.read_body(request)
    if bodies.media_type(request) == protobuf.MEDIA_TYPE:
        review, _ = bodies.parse_protobuf(body, "SelfSubjectRulesReview")
    else:
        review, _ = bodies.parse_document(body, bodies.media_type(request))
    spec = review.get("spec") if isinstance(review, dict) else None
    namespace = spec.get("namespace") if isinstance(spec, dict) else None
    if not namespace or not isinstance(namespace, str):
        raise errors.bad_request("no namespace on request")
    user = request[USER_KEY]
    problems: list[str] = []
    node = node_name_of(user)
    if node is not None:
        problems.append("node authorizer does not support user rule resolution")
    rules: list[Any] = []
    if rbac is not None:
        rules, missing = rbac.rules_for(user, namespace)
        problems += [str(problem) for problem in missing]
    status: dict[str, Any] = {
        "resourceRules": [{k: rule[k] for k in ("verbs", "apiGroups", "resources",
                                                "resourceNames") if rule.get(k)}
                          for rule in rules if rule.get("resources")],
        "nonResourceRules": [{k: rule[k] for k in ("verbs", "nonResourceURLs")}
                             for rule in rules if rule.get("nonResourceURLs")],
        "incomplete": node is not None}
    if problems:
        status["evaluationError"] = errors.aggregate(problems)
    return bodies.respond({"kind": "SelfSubjectRulesReview",
                           "apiVersion": "authorization.k8s.io/v1",
                           "metadata": {"creationTimestamp": None}, "spec": {},
                           "status": status}, 201)
