"""The cluster's secrets, shared by every API server on one datastore (etcd).

Several servers must serve one certificate authority and accept every credential any of
them issued. The first server to start on an empty datastore makes the secrets as a single
server does (files in ``<data-dir>/server``), then stores them in the datastore encrypted
with a key derived from the **server token**, as k3s does with its bootstrap data. Every
later server started with that token reads them and writes the same files into its own
data dir before it uses them; its serving certificate stays its own, issued from the shared
CA for its own host names. Shared::

    ca.crt ca.key             the cluster's CA
    admin.token               the admin's bearer token (every server's kubeconfig)
    service-account.key       signs service-account tokens
    kubelet-client.key        derives the server-to-node and image-pull tokens
    node-token                the agents' join token (K10<ca hash>::node:<secret>)

The record, key ``/podling.io/bootstrap/cluster`` (not served by the API)::

    {"metadata": {...}, "kdf": "pbkdf2-sha256", "iterations": N, "salt", "nonce",
     "ciphertext"}        base64; AES-256-GCM of the JSON {file name: content}, with the key
                          PBKDF2-HMAC-SHA256(server secret, salt, N) and the record's key
                          as associated data

The server token ``K10<sha256 of ca.crt>::server:<secret>`` is written to
``<data-dir>/server/token`` (0600). ``--token`` may also be any string of the user's choice
on the first server (k3s's ``--token``); the servers then all start with the same flag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from typing import Callable

from ..storage.interface import KeyExists, KeyNotFound, Storage
from ..util import jointoken
from ..util.files import atomic_write

KEY = "/podling.io/bootstrap/cluster"
SHARED = {"ca.crt": 0o644, "ca.key": 0o600, "admin.token": 0o600,
          "service-account.key": 0o600, "kubelet-client.key": 0o600, "node-token": 0o600}
SERVING = ("serving.crt", "serving.key", "serving.hosts")  # issued again from a new CA
TOKEN_FILE = "token"
ITERATIONS = 200_000


class BootstrapError(Exception):
    """The server cannot take part in this datastore's cluster (the message says why)."""


async def share(storage: Storage, server_dir: str, given_token: str,
                create: Callable[[], None], *, joining: bool = False) -> str:
    """Make ``server_dir`` hold this datastore's shared secrets; returns the server token.

    With no record in the datastore, ``create()`` makes whatever secrets are missing in
    ``server_dir`` and they are stored, encrypted with ``given_token`` (or the one saved in
    ``server_dir``, or a new one). With a record, that token decrypts it and its files
    replace this server's (a replaced CA drops the serving certificate issued from the old
    one). Two first servers racing: the one whose record lands wins; the other takes its
    secrets. ``joining`` (``--server``): the record must be there already. Raises
    BootstrapError for a missing or wrong token, or a missing record when joining."""
    secret = _secret(given_token) or _saved_secret(server_dir)
    while True:
        try:
            record = await storage.get(KEY)
        except KeyNotFound:
            record = None
        if record is not None:
            if not secret:
                raise BootstrapError(
                    "this datastore already holds a cluster: start this server with "
                    "--token (the first server wrote it to <data-dir>/server/token)")
            _write_files(server_dir, decrypt(record, secret))
            break
        if joining:
            raise BootstrapError("this datastore holds no cluster to join (is --etcd-prefix "
                                 "the one the other servers use?)")
        create()
        secret = secret or secrets.token_hex(24)
        try:
            await storage.create(KEY, encrypt(_read_files(server_dir), secret))
            break
        except KeyExists:
            continue  # another first server stored its secrets first: take those
    token = jointoken.JoinToken(_ca_hash(server_dir), secret, jointoken.SERVER)
    _check_pinned(given_token, token)
    atomic_write(os.path.join(server_dir, TOKEN_FILE), (str(token) + "\n").encode(), 0o600)
    return str(token)


def _secret(text: str) -> str:
    """The secret of a server token (K10… or a plain string); "" for none."""
    text = text.strip()
    if not text:
        return ""
    if jointoken.parse(text) is not None:
        raise BootstrapError("that is the agents' join token (node-token); a server joins "
                             "with the server token (<data-dir>/server/token)")
    server = jointoken.parse(text, jointoken.SERVER)
    return server.secret if server else text


def _saved_secret(server_dir: str) -> str:
    try:
        with open(os.path.join(server_dir, TOKEN_FILE)) as f:
            return _secret(f.read())
    except OSError:
        return ""


def _check_pinned(given: str, token: jointoken.JoinToken) -> None:
    pinned = jointoken.parse(given, jointoken.SERVER)
    if pinned is not None and pinned.ca_hash != token.ca_hash:
        raise BootstrapError("the token's CA hash does not match the CA stored in this "
                             "datastore (a token of another cluster?)")


def _ca_hash(server_dir: str) -> str:
    with open(os.path.join(server_dir, "ca.crt"), "rb") as f:
        return jointoken.ca_hash(f.read())


def _read_files(server_dir: str) -> dict[str, str]:
    files = {}
    for name in SHARED:
        with open(os.path.join(server_dir, name)) as f:
            files[name] = f.read()
    return files


def _write_files(server_dir: str, files: dict[str, str]) -> None:
    if set(files) != set(SHARED):
        raise BootstrapError("the datastore's cluster record lists other files than this "
                             f"server shares: {sorted(files)}")
    os.makedirs(server_dir, mode=0o700, exist_ok=True)
    for name, mode in SHARED.items():
        path = os.path.join(server_dir, name)
        if _content(path) == files[name]:
            continue
        if name == "ca.crt":
            for stale in SERVING:
                if os.path.exists(old := os.path.join(server_dir, stale)):
                    os.unlink(old)
        atomic_write(path, files[name].encode(), mode)


def _content(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _key(secret: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations, 32)


def encrypt(files: dict[str, str], secret: str) -> dict:
    """The datastore record of ``files`` under ``secret`` (see the module docstring)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_key(secret, salt, ITERATIONS)).encrypt(
        nonce, json.dumps(files, sort_keys=True).encode(), KEY.encode())
    return {"metadata": {"name": "cluster"}, "kdf": "pbkdf2-sha256",
            "iterations": ITERATIONS, "salt": _b64(salt), "nonce": _b64(nonce),
            "ciphertext": _b64(sealed)}


def decrypt(record: dict, secret: str) -> dict[str, str]:
    """The files of a record; BootstrapError when ``secret`` is not the one it was sealed
    with or the record is damaged."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    try:
        key = _key(secret, _unb64(record["salt"]), int(record["iterations"]))
        plain = AESGCM(key).decrypt(_unb64(record["nonce"]), _unb64(record["ciphertext"]),
                                    KEY.encode())
        files = json.loads(plain)
    except InvalidTag:
        raise BootstrapError("the token does not decrypt this datastore's cluster secrets "
                             "(a wrong --token, or another cluster's --etcd-prefix)") from None
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BootstrapError(f"the datastore's cluster record is damaged: {exc}") from None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BootstrapError("the datastore's cluster record is damaged: not a file map")
    return files


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
