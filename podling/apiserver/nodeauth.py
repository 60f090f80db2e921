"""Node credentials: the join token, per-node tokens, and the server's kubelet-client tokens.

Files (all under ``<data-dir>/server``, created on first start, mode 0600)::

    node-token             the join token  K10<sha256 of ca.crt>::node:<join secret>
    node-tokens/<node>     sha256 (hex) of the token issued to <node> — never the token itself
                           (in the datastore instead when several servers share it:
                           :mod:`.nodetokens`)
    kubelet-client.key     the key kubelet-client tokens are derived from

Joining (an agent that has only the join token)::

    agent                                               server
      │ GET /cacerts  (no TLS verification) ─────────────▶│  the CA PEM; the agent checks its
      │◀──────────────────────────────────────── ca.crt ──│  sha256 against the token's hash
      │ POST /podling/v1/nodetokens {"nodeName": "n1"}    │
      │      Authorization: Bearer <join secret> ────────▶│  201 {"nodeName", "token"}; only the
      │◀──────────────────────────── per-node token ──────│  hash is kept (node-tokens/n1)
      │ GET /podling/v1/nodeconfig/n1  Bearer <token> ───▶│
      │◀──────── {"kubeletClientToken", "imagePullToken"} ─│

The join secret authenticates as ``system:bootstrap:node-join`` (group
``system:bootstrappers``), which may do nothing but the exchange. A node token authenticates
as ``system:node:<node>`` (group ``system:nodes``); :mod:`.authz` says what that may do.
A name that already has a token is not issued another one to a join-secret holder (409, like
k3s's node password check): otherwise anyone with the join secret could take over a node.
The admin may (re-)issue a token for any node. To re-join a node that lost its token, delete
its record (``node-tokens/<node>`` on the server, or its key in the shared datastore).

The server calls a node's API (logs) with the kubelet-client token of that node:
``kc1.`` + HMAC-SHA256(kubelet-client.key, node name). Each node learns only its own (from
``nodeconfig``), so a node cannot call another node's API with it.

The **image-pull token** ``ip1.`` + HMAC-SHA256(kubelet-client.key, "image pull") (a
message no node name can be, so it is no node's kubelet-client token), one per
cluster, is handed to every node in ``nodeconfig``: every node API accepts it for reading its
image store over the OCI distribution API (GET/HEAD under ``/v2/``) and for nothing else, so
nodes pull images from each other (the ``@nodes`` mirror) without being able to read each
other's logs or exec into each other's pods.

Several servers on one etcd share the join secret and the kubelet-client key through the
cluster's bootstrap data (:mod:`.clustersecrets`) and the node token records through the
datastore. There is no token expiry (revoke by deleting the record).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from aiohttp import web

from ..api import errors
from ..util import jointoken
from ..util.files import atomic_write
from . import bodies
from .auth import USER_KEY, User
from .authz import BOOTSTRAP_GROUP, NODE_USER_PREFIX, NODES_GROUP, node_name_of
from .nodetokens import NODE_NAME, FileRecords, TokenRecords

NODE_TOKENS_PATH = "/podling/v1/nodetokens"
NODE_CONFIG_PATH = "/podling/v1/nodeconfig/{node}"
CA_PATH = "/cacerts"
BOOTSTRAP_USER = User("system:bootstrap:node-join", (BOOTSTRAP_GROUP, "system:authenticated"))


def ensure_files(server_dir: str, ca_file: str) -> tuple[jointoken.JoinToken, str]:
    """The join token (``node-token``, made again for a changed CA with the same secret) and
    the kubelet-client key, each created when absent."""
    with open(ca_file, "rb") as f:
        ca_hash = jointoken.ca_hash(f.read())
    path = os.path.join(server_dir, "node-token")
    existing = jointoken.parse(_read(path)) if os.path.exists(path) else None
    if existing is not None and existing.ca_hash == ca_hash:
        join = existing
    else:
        join = jointoken.JoinToken(ca_hash, existing.secret if existing else
                                   secrets.token_hex(24))
        atomic_write(path, (str(join) + "\n").encode(), 0o600)
    key_path = os.path.join(server_dir, "kubelet-client.key")
    if not os.path.exists(key_path):
        atomic_write(key_path, secrets.token_hex(32).encode(), 0o600)
    return join, _read(key_path)


def node_user(name: str) -> User:
    return User(NODE_USER_PREFIX + name, (NODES_GROUP, "system:authenticated"))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


class NodeAuth:
    """The join secret, the issued node tokens and the kubelet-client key of one server.

    Not thread-safe; used from the server's event loop. ``records`` default to the files
    under ``server_dir/node-tokens``."""

    def __init__(self, server_dir: str, ca_file: str,
                 records: TokenRecords | None = None) -> None:
        self.server_dir = server_dir
        self.ca_file = ca_file
        self.join_token_file = os.path.join(server_dir, "node-token")
        self._join, self._kubelet_key = ensure_files(server_dir, ca_file)
        self.records = records or FileRecords(os.path.join(server_dir, "node-tokens"))

    # -- authentication ------------------------------------------------------------------

    async def authenticate(self, offered: str) -> User | None:
        """The user a bearer token stands for: a node, the bootstrap user, or None."""
        if hmac.compare_digest(offered.encode(), self._join.secret.encode()):
            return BOOTSTRAP_USER
        name = await self.records.node_of(_digest(offered))
        return node_user(name) if name else None

    def kubelet_client_token(self, node: str) -> str:
        """The credential the server presents to ``node``'s API."""
        return "kc1." + hmac.new(self._kubelet_key.encode(), node.encode(),
                                 hashlib.sha256).hexdigest()

    def image_pull_token(self) -> str:
        """The cluster's read-only image-pull credential (see the module docstring)."""
        # the message is no node name (none has a space), so it is no kubelet-client token
        return "ip1." + hmac.new(self._kubelet_key.encode(), b"image pull",
                                 hashlib.sha256).hexdigest()

    # -- issuing -------------------------------------------------------------------------

    async def issue(self, node: str, *, replace: bool = False) -> str:
        """A new token for ``node``; 409 when it has one and ``replace`` is false."""
        if not NODE_NAME.match(node) or len(node) > 253:
            raise errors.invalid_object("NodeToken", node, [errors.invalid(
                "nodeName", node, "a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.'")])
        token = secrets.token_hex(24)
        if not await self.records.add(node, _digest(token), replace=replace):
            raise errors.ApiError(409, "AlreadyExists", f'node "{node}" already has a token; '
                                  f"reuse the agent's saved token or "
                                  f"{self.records.describe(node)} to issue a new one",
                                  {"name": node, "kind": "nodes"})
        return token

    # -- HTTP ----------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(CA_PATH, self._serve_ca)
        router.add_post(NODE_TOKENS_PATH, self._serve_issue)
        router.add_get(NODE_CONFIG_PATH, self._serve_config)

    async def _serve_ca(self, request: web.Request) -> web.Response:
        with open(self.ca_file, "rb") as f:
            return web.Response(body=f.read(), content_type="application/x-pem-file")

    async def _serve_issue(self, request: web.Request) -> web.Response:
        user: User = request[USER_KEY]
        if BOOTSTRAP_GROUP not in user.groups and not user.admin:
            raise _forbidden(user, "create", "nodetokens")
        body, _ = bodies.parse_document(await bodies.read_body(request), bodies.JSON)
        node = body.get("nodeName") if isinstance(body, dict) else None
        if not isinstance(node, str) or not node:
            raise errors.invalid_object("NodeToken", "", [errors.required("nodeName")])
        token = await self.issue(node, replace=user.admin)
        return bodies.respond({"nodeName": node, "token": token}, 201)

    async def _serve_config(self, request: web.Request) -> web.Response:
        user: User = request[USER_KEY]
        node = request.match_info["node"]
        if not user.admin and node_name_of(user) != node:
            raise _forbidden(user, "get", "nodeconfig", node)
        return bodies.respond({"nodeName": node,
                               "kubeletClientToken": self.kubelet_client_token(node),
                               "imagePullToken": self.image_pull_token()})


def _forbidden(user: User, verb: str, what: str, name: str = "") -> errors.ApiError:
    subject = f'{what} "{name}"' if name else what
    return errors.forbidden_request(f'{subject} is forbidden: User "{user.name}" cannot {verb} '
                                    f'path "/podling/v1/{what}"')

