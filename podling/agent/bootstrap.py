"""Joining a cluster: turn the token an agent was given into the credentials it runs with.

``podling agent --token-file F`` accepts two kinds of token:

* a **join token** ``K10<ca-sha256>::node:<secret>`` (``<server data-dir>/server/node-token``):
  the agent trusts the server's CA only if its sha256 matches the token (fetching it from
  ``/cacerts`` without verification when no ``--ca-file`` is given, then saving it), exchanges
  the secret for a per-node token (saved, mode 0600, as
  ``<data-dir>/agent/credentials/<node>.token`` and reused on restart while the server still
  accepts it) and so runs as ``system:node:<node>`` with a node's permissions;
* any other token (the admin token): used as is, with ``--ca-file`` (default
  ``<data-dir>/server/ca.crt``), as before.

Either way the agent then asks the server for the kubelet-client token of its node: the only
credential its node API accepts (the server presents it when it proxies ``kubectl logs``),
and for the cluster's image-pull token (what every node API accepts for reading its images;
an older server without one gives "").
The wire protocol is described in ``podling.apiserver.nodeauth``.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from podling.api import errors
from podling.client import ApiClient, ClientConfig
from podling.util import jointoken
from podling.util.files import atomic_write

NODE_TOKENS_PATH = "/podling/v1/nodetokens"
NODE_CONFIG_PATH = "/podling/v1/nodeconfig/"
CA_PATH = "/cacerts"


class JoinError(Exception):
    """The agent cannot obtain credentials (bad CA hash, refused exchange, …)."""


class Unreachable(JoinError):
    """The server could not be reached (connection or TLS failure): another may be."""


@dataclass(frozen=True)
class Credentials:
    token: str  # the bearer token for the API server
    ca_file: str  # the CA the API server's certificate must chain to
    kubelet_client_token: str  # what this node's API accepts (from the API server)
    image_pull_token: str = ""  # what every node API accepts under /v2/ (the node mirror)


async def resolve(server_url: str, token_text: str, *, node_name: str, data_dir: str,
                  ca_file: str = "") -> Credentials:
    """The credentials for ``node_name``; exchanges a join token when given one.

    Idempotent: a saved node token is reused while the server accepts it. Raises JoinError."""
    join = jointoken.parse(token_text)
    if join is None:
        ca = ca_file or os.path.join(data_dir, "server", "ca.crt")
        token = token_text.strip()
    else:
        ca = await trusted_ca(server_url, join, data_dir, ca_file=ca_file)
        token = await _node_token(server_url, join, ca=ca, node_name=node_name,
                                  data_dir=data_dir)
    config = await _node_config(server_url, token, ca=ca, node_name=node_name)
    if config is None:
        raise JoinError(f"the server at {server_url} does not accept the token")
    return Credentials(token, ca, str(config.get("kubeletClientToken") or token),
                       str(config.get("imagePullToken") or ""))


async def trusted_ca(server_url: str, join: jointoken.JoinToken, data_dir: str, *,
                     ca_file: str = "") -> str:
    """A CA file whose sha256 is the join token's: ``ca_file`` if given, else the server's
    ``/cacerts`` fetched without verification, checked, and saved in ``data_dir``."""
    if ca_file:
        with open(ca_file, "rb") as f:
            pem = f.read()
    else:
        pem = await fetch_ca(server_url)
    if jointoken.ca_hash(pem) != join.ca_hash:
        raise JoinError(f"the CA of {server_url} does not match the join token's hash "
                        "(wrong server, or the server's CA changed)")
    if ca_file:
        return ca_file
    path = os.path.join(data_dir, "agent", "credentials", "server-ca.crt")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomic_write(path, pem, 0o644)
    return path


async def fetch_ca(server_url: str) -> bytes:
    """The CA PEM ``server_url`` serves at /cacerts, fetched without verifying its TLS
    certificate: the caller must pin it by hash. Raises Unreachable or JoinError."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # trust comes from the hash check, not from TLS
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(server_url + CA_PATH, ssl=insecure) as response:
                if response.status != 200:
                    raise JoinError(f"GET {server_url}{CA_PATH}: HTTP {response.status}")
                return await response.read()
    except (aiohttp.ClientError, OSError) as exc:
        raise Unreachable(f"cannot fetch the CA from {server_url}: {exc}") from exc


def _token_path(data_dir: str, node_name: str) -> str:
    return os.path.join(data_dir, "agent", "credentials", f"{node_name}.token")


async def _node_token(server_url: str, join: jointoken.JoinToken, *, ca: str, node_name: str,
                      data_dir: str) -> str:
    path = _token_path(data_dir, node_name)
    if os.path.exists(path):
        with open(path) as f:
            saved = f.read().strip()
        if saved and await _node_config(server_url, saved, ca=ca,
                                        node_name=node_name) is not None:
            return saved
    answer = await _call(server_url, join.secret, ca=ca, method="POST", path=NODE_TOKENS_PATH,
                         body={"nodeName": node_name})
    token = str(answer["token"])
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomic_write(path, token.encode(), 0o600)
    return token


async def _node_config(server_url: str, token: str, *, ca: str,
                       node_name: str) -> dict[str, Any] | None:
    """``GET nodeconfig/<node>``; None when the token is not (or no longer) accepted."""
    try:
        return await _call(server_url, token, ca=ca, method="GET",
                           path=NODE_CONFIG_PATH + node_name)
    except JoinError as exc:
        if isinstance(exc.__cause__, errors.ApiError) and exc.__cause__.code in (401, 403):
            return None
        raise


async def _call(server_url: str, token: str, *, ca: str, method: str, path: str,
                body: Any = None) -> Any:
    try:
        async with ApiClient(ClientConfig(server=server_url, token=token,
                                          ca_file=ca)) as client:
            return await client.request(method, path, body=body)
    except errors.ApiError as exc:
        raise JoinError(f"{method} {path}: {exc.message}") from exc
    except Exception as exc:  # connection and TLS failures
        raise Unreachable(f"{method} {server_url}{path}: {exc}") from exc
