"""Service-account tokens: RS256 JWTs signed with the server's service-account key.

The key is an RSA 2048 private key created once in ``<data-dir>/server/service-account.key``
(mode 0600) and reused afterwards, as kube-apiserver's ``--service-account-key-file``. A token
is a compact JWS (``header.claims.signature``, base64url without padding)::

    header  {"alg": "RS256", "kid": <base64url sha256 of the public key's DER>}
    claims  {"aud": [...], "exp", "iat", "nbf", "iss": ISSUER, "jti": <uuid>,
             "sub": "system:serviceaccount:<ns>:<name>",
             "kubernetes.io": {"namespace", "serviceaccount": {"name", "uid"},
                               "pod": {"name", "uid"}?, "node": {"name", "uid"}?,
                               "warnafter"?}}

exactly the claims of Kubernetes' bound tokens (pkg/serviceaccount/claims.go). :meth:`verify`
checks only what the token itself carries (signature, issuer, audience, time with Kubernetes'
60 s leeway); whether the ServiceAccount and the bound pod still exist is checked by the
authenticator (:mod:`.tokenrequest`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # cryptography is imported on first use: it weighs several MiB of memory
    from cryptography.hazmat.primitives.asymmetric import rsa

from ..api.serviceaccounts import user_name
from ..util.files import atomic_write

#: the issuer and the default audience of the tokens, as k3s and kubeadm clusters use
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = (ISSUER,)
KEY_FILE = "service-account.key"
LEEWAY_SECONDS = 60  # go-jose's jwt.DefaultLeeway, which Kubernetes' validator uses
#: a token whose requested lifetime is this is issued for a year, warning after the request
#: (Kubernetes' safe transition of projected tokens, --service-account-extend-token-expiration)
EXTENDED_SECONDS = 24 * 365 * 60 * 60
KUBERNETES_CLAIM = "kubernetes.io"


class TokenError(Exception):
    """The token is no valid service-account token of this server (the request gets 401)."""


@dataclass(frozen=True)
class Ref:
    name: str
    uid: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("malformed token") from exc


def claims(namespace: str, sa: Ref, *, audiences: list[str], expiration_seconds: int,
           pod: Ref | None = None, node: Ref | None = None, warn_after_seconds: int = 0,
           now: float | None = None) -> dict[str, Any]:
    """The claims of a token for ServiceAccount ``namespace/sa``, valid from ``now``."""
    issued = int(now if now is not None else time.time())
    private: dict[str, Any] = {"namespace": namespace,
                               "serviceaccount": {"name": sa.name, "uid": sa.uid}}
    if pod is not None:
        private["pod"] = {"name": pod.name, "uid": pod.uid}
    if node is not None:
        private["node"] = {"name": node.name, "uid": node.uid} if node.uid else \
            {"name": node.name}
    if warn_after_seconds:
        private["warnafter"] = issued + warn_after_seconds
    return {"aud": list(audiences), "exp": issued + expiration_seconds, "iat": issued,
            "iss": ISSUER, "jti": str(uuid.uuid4()), KUBERNETES_CLAIM: private,
            "nbf": issued, "sub": user_name(namespace, sa.name)}


class TokenSigner:
    """Signs and verifies tokens with one RSA key. Thread-safe (no mutable state once the key
    is loaded; loading it twice at once is harmless)."""

    def __init__(self, key: rsa.RSAPrivateKey | Callable[[], rsa.RSAPrivateKey]) -> None:
        """``key``, or a function reading it when it is first needed."""
        self._load = key if callable(key) else (lambda: key)

    @functools.cached_property
    def _key(self) -> rsa.RSAPrivateKey:
        return self._load()

    @functools.cached_property
    def _public(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    @functools.cached_property
    def key_id(self) -> str:
        from cryptography.hazmat.primitives import serialization
        der = self._public.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        return _b64(hashlib.sha256(der).digest())

    @classmethod
    def load_or_create(cls, server_dir: str) -> TokenSigner:
        """The key in ``server_dir/service-account.key``, created there (0600) when absent;
        an existing key is read when first used."""
        path = os.path.join(server_dir, KEY_FILE)
        if not os.path.exists(path):
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            atomic_write(path, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()), 0o600)
        return cls(functools.partial(_read_key, path))

    def sign(self, payload: dict[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.key_id}
        signing_input = ".".join(_b64(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, payload))
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)

    def verify(self, token: str, *, audiences: tuple[str, ...] = AUDIENCES,
               now: float | None = None) -> dict[str, Any]:
        """The claims of a token this key signed, for one of ``audiences``, valid at ``now``
        (± 60 s); raises :class:`TokenError` otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a JWT")
        header, payload = (_json(_unb64(p)) for p in parts[:2])
        if header.get("alg") != "RS256":
            raise TokenError("unexpected signing algorithm")
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        try:
            self._public.verify(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode(),
                                padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise TokenError("invalid signature") from exc
        _check_claims(payload, audiences, time.time() if now is None else now)
        return payload


def _read_key(path: str) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    with open(path, "rb") as f:
        loaded = serialization.load_pem_private_key(f.read(), None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} holds no RSA private key")
    return loaded


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(value, dict):
        raise TokenError("malformed token")
    return value


def _check_claims(payload: dict[str, Any], audiences: tuple[str, ...], now: float) -> None:
    if payload.get("iss") != ISSUER:
        raise TokenError("wrong issuer")
    aud = payload.get("aud")
    aud_list = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not set(aud_list) & set(audiences):
        raise TokenError("token audiences do not match the server's")
    exp, nbf = payload.get("exp"), payload.get("nbf", 0)
    if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
        raise TokenError("malformed time claims")
    if now > exp + LEEWAY_SECONDS:
        raise TokenError("service account token has expired")
    if now < nbf - LEEWAY_SECONDS:
        raise TokenError("service account token is not valid yet")
    private = payload.get(KUBERNETES_CLAIM)
    if not isinstance(private, dict) or not isinstance(private.get("serviceaccount"), dict):
        raise TokenError("not a service account token")
