"""pods/{name}/log: streamed from the pod's node (``kubectl logs``).

The API server resolves the container (Kubernetes' messages when it is ambiguous or
unknown), finds the node's API address (the ``podling.io/node-api`` annotation, else
InternalIP and the kubelet port) and streams the node's answer back as text/plain.
"""

from __future__ import annotations

from typing import Any, Callable

import aiohttp
from aiohttp import web

from ..api import errors
from ..api.resources import NODE_API_ANNOTATION
from .registry.store import RegistryStore

LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "limitBytes")


def choose_container(pod: dict[str, Any], wanted: str) -> str:
    """The container to read; 400 with Kubernetes' text when none or an unknown one is named."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    names = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    if not wanted:
        if len(names) == 1:
            return names[0]
        raise errors.bad_request(f"a container name must be specified for pod {name}, choose "
                                 f"one of: [{' '.join(names)}]" +
                                 (f" or one of the init containers: [{' '.join(init)}]"
                                  if init else ""))
    if wanted not in names + init:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def node_api_url(node: dict[str, Any]) -> str:
    annotated = ((node.get("metadata") or {}).get("annotations") or {}).get(NODE_API_ANNOTATION)
    if annotated:
        return annotated
    status = node.get("status") or {}
    ip = next((a["address"] for a in status.get("addresses") or []
               if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not ip or not port:
        raise errors.bad_request(f'node "{node["metadata"]["name"]}" has no reachable node API')
    return f"https://{ip}:{port}"


async def serve_pod_log(request: web.Request, pods: RegistryStore, nodes: RegistryStore,
                        namespace: str, name: str,
                        token: str | Callable[[str], str]) -> web.StreamResponse:
    """Stream the log from the pod's node, presenting ``token`` (or ``token(node name)``:
    the node's kubelet-client token) to the node API."""
    pod = await pods.get(namespace, name)
    container = choose_container(pod, request.query.get("container", ""))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    node = await nodes.get(None, node_name)
    credential = token(node_name) if callable(token) else token
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    url = f"{node_api_url(node)}/containerLogs/{namespace}/{name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, params=params, ssl=False,
                                   headers={"Authorization": f"Bearer {credential}"}) as upstream:
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
                              f"the node {node_name} cannot be reached: {exc}") from None
