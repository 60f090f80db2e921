"""pods/{name}/log: streamed from the pod's node (``kubectl logs``).

The API server resolves the container (Kubernetes' messages when it is ambiguous or
unknown) and streams the node's answer back as text/plain; :class:`.streaming.node.NodeDialer`
finds the node's API.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ..api import errors
from .streaming.node import NodeDialer, choose_container

LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime",
              "limitBytes")


async def serve_pod_log(request: web.Request, dialer: NodeDialer, namespace: str,
                        name: str) -> web.StreamResponse:
    """Stream the log from the pod's node (through ``dialer``, with the node's credentials)."""
    pod = await dialer.pods.get(namespace, name)
    container = choose_container(pod, request.query.get("container", ""))
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    params = [(k, request.query[k]) for k in LOG_PARAMS if k in request.query]
    path = f"/containerLogs/{namespace}/{name}/{container}"
    try:
        async with dialer.get(await dialer.node_of(pod), path, params) as upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                raise errors.ApiError(upstream.status if upstream.status < 500 else 502,
                                      "BadRequest" if upstream.status == 400 else
                                      "NotFound" if upstream.status == 404 else
                                      "InternalError", text)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            return response
    except aiohttp.ClientError as exc:
        raise errors.ApiError(503, "ServiceUnavailable",
                              f"the node {pod['spec']['nodeName']} cannot be reached: "
                              f"{exc}") from None
