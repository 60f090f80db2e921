"""The node mirror: this node's image store, read-only, over the OCI distribution API.

    GET|HEAD /v2/                                  → 200 {} (the API version check)
    GET|HEAD /v2/<name>/manifests/<tag|digest>     → the manifest, with its media type and
                                                     Docker-Content-Digest
    GET|HEAD /v2/<name>/blobs/<digest>             → the blob (config or compressed layer)

``<name>`` is a repository as an image reference names it, normalised: ``library/busybox``
and ``docker.io/library/busybox`` are the same (other nodes ask for the full name; see ``@nodes``
in :mod:`podling.images.config`). What is served is decided by
:class:`podling.images.interface.NodeImageStore` (images' own manifests, configs and layers,
nothing else). Errors are the distribution spec's JSON
(``{"errors": [{"code", "message", "detail"}]}``): 404 ``MANIFEST_UNKNOWN`` / ``BLOB_UNKNOWN``,
400 ``NAME_INVALID`` / ``MANIFEST_INVALID`` / ``DIGEST_INVALID``, and 401 ``UNAUTHORIZED``
(:func:`unauthorized`, sent by the node API's authentication). Nothing can be written.

The routes live on the node API (:class:`podling.agent.node.server.NodeServer`), which accepts
its kubelet-client token everywhere and the cluster's image-pull token here only.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from podling.images.interface import InvalidImageName, NodeImageStore

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
PREFIX = "/v2"


def is_registry_path(path: str) -> bool:
    """True for the paths this module serves (``/v2`` and below)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def error(status: int, code: str, message: str, detail: Any = None,
          headers: dict[str, str] | None = None) -> web.Response:
    """A distribution-spec error response."""
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]})
    return web.Response(status=status, text=body, content_type="application/json",
                        headers={**API_VERSION, **(headers or {})})


def unauthorized() -> web.Response:
    return error(401, "UNAUTHORIZED", "authentication required",
                 headers={"WWW-Authenticate": 'Bearer realm="podling-node",'
                                              'error="invalid_token"'})


class NodeRegistry:
    """The read-only distribution routes over one node's image store."""

    def __init__(self, store: NodeImageStore) -> None:
        self._store = store

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PREFIX, self._base)
        router.add_get(PREFIX + "/", self._base)
        router.add_get(PREFIX + "/{name:.+}/manifests/{reference}", self._manifest)
        router.add_get(PREFIX + "/{name:.+}/blobs/{digest}", self._blob)

    async def _base(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers=API_VERSION)

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        name, reference = request.match_info["name"], request.match_info["reference"]
        try:
            found = await self._store.stored_manifest(name, reference)
        except InvalidImageName as e:
            code = "DIGEST_INVALID" if ":" in reference else "NAME_INVALID"
            return error(400, code, str(e), {"name": name, "reference": reference})
        if found is None:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown",
                         {"name": name, "reference": reference})
        return web.Response(body=found.data, headers={
            **API_VERSION, "Content-Type": found.media_type,
            "Docker-Content-Digest": found.digest})

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        name, digest = request.match_info["name"], request.match_info["digest"]
        try:
            found = await self._store.stored_blob(name, digest)
        except InvalidImageName as e:
            code = "DIGEST_INVALID" if "digest" in str(e) else "NAME_INVALID"
            return error(400, code, str(e), {"name": name, "digest": digest})
        if found is None:
            return error(404, "BLOB_UNKNOWN", "blob unknown to registry",
                         {"name": name, "digest": digest})
        return web.FileResponse(found.path, headers={
            **API_VERSION, "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": found.digest})
