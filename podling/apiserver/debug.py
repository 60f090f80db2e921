"""``GET /debug/pods/timeline``: the per-pod stage timeline (:mod:`podling.util.timeline`).

Admins only (a node, service-account or bootstrap token gets Kubernetes' 403 for a
non-resource path, ``forbidden: User "…" cannot get path "…"``). Optional query parameters
``namespace``, ``name`` and ``uid`` filter the pods. The answer is
``{"kind": "PodTimelineList", "items": [...]}``, oldest pod first, each item as
:meth:`~podling.util.timeline.Timeline.pods` describes it (stages in milliseconds since the
API server committed the create, in time order).

The marks are this process's: the API server's, the scheduler's and the local agent's
(``podling server`` runs them in one process). A remote agent's marks stay in its own
process and are not shown.
"""

from __future__ import annotations

from aiohttp import web

from ..util import timeline
from . import authz, bodies
from .auth import RBAC_KEY, USER_KEY

TIMELINE_PATH = "/debug/pods/timeline"


async def pod_timeline(request: web.Request) -> web.Response:
    user = request[USER_KEY]
    attrs = authz.Attributes(verb="get", resource="", path=request.path)
    allowed, reason = authz.decide(user, attrs, rbac=request.app.get(RBAC_KEY))
    if not allowed:
        raise authz.forbidden(user, attrs, reason)
    query = request.query
    items = timeline.pods(namespace=query.get("namespace"), name=query.get("name"),
                          uid=query.get("uid"))
    return bodies.respond({"kind": "PodTimelineList", "apiVersion": "v1", "items": items})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(TIMELINE_PATH, pod_timeline)
