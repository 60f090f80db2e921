"""authorization.k8s.io SelfSubjectAccessReview: "may I do X?" (``kubectl auth can-i``)."""

from __future__ import annotations

from aiohttp import web

from ..api import errors, protobuf
from . import bodies
from .auth import USER_KEY


async def answer_access_review(request: web.Request) -> web.Response:
    """Answer a SelfSubjectAccessReview for the requesting user.

    The admin user may do everything; other users get what their authorizer allows."""
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
    attributes = review["spec"].get("resourceAttributes") or \
        review["spec"].get("nonResourceAttributes") or {}
    allowed = user.allows(attributes)
    review["status"] = {"allowed": allowed}
    if allowed:
        review["status"]["reason"] = f"podling: {user.name} is allowed"
    review.setdefault("metadata", {})["creationTimestamp"] = None
    review["apiVersion"], review["kind"] = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
    return bodies.respond(review, 201)
