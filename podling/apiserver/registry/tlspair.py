"""The warning Kubernetes gives for a ``kubernetes.io/tls`` Secret whose certificate and key
do not form a pair: Go's ``tls.X509KeyPair`` error, word for word for the usual cases.

The Secret is stored anyway (a warning, not a validation error), as in Kubernetes' secret
strategy (``WarningsOnCreate`` / ``WarningsOnUpdate``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

# cryptography is imported where a key pair is checked: it weighs several MiB of the server's
# memory, and most servers never store a kubernetes.io/tls Secret.

_BLOCK = re.compile(rb"-----BEGIN ([^\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, DER) of each well-formed PEM block; headers and bad bodies are skipped."""
    blocks = []
    for match in _BLOCK.finditer(data):
        body = b"\n".join(line for line in match.group(2).splitlines() if b":" not in line)
        try:
            blocks.append((match.group(1).decode(errors="replace"),
                           base64.b64decode(b"".join(body.split()), validate=True)))
        except (binascii.Error, ValueError):
            continue
    return blocks


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _certificate_der(cert_pem: bytes) -> bytes | str:
    """The first certificate's DER, or Go's error text."""
    blocks = _pem_blocks(cert_pem)
    certs = [der for kind, der in blocks if kind == "CERTIFICATE"]
    if certs:
        return certs[0]
    skipped = [kind for kind, _ in blocks]
    if not skipped:
        return "tls: failed to find any PEM data in certificate input"
    if len(skipped) == 1 and skipped[0].endswith("PRIVATE KEY"):
        return ("tls: failed to find certificate PEM data in certificate input, but did find a "
                "private key; PEM inputs may have been switched")
    return ('tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping '
            f"PEM blocks of the following types: {_go_list(skipped)}")


def _key_der(key_pem: bytes) -> bytes | str:
    """The first private key block's DER, or Go's error text."""
    skipped = []
    for kind, der in _pem_blocks(key_pem):
        if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY"):
            return der
        skipped.append(kind)
    if not skipped:
        return "tls: failed to find any PEM data in key input"
    if skipped == ["CERTIFICATE"]:
        return "tls: found a certificate rather than a key in the PEM for the private key"
    return ('tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after '
            f"skipping PEM blocks of the following types: {_go_list(skipped)}")


def key_pair_problem(cert_pem: bytes, key_pem: bytes) -> str | None:
    """None when ``key_pem`` holds the private key of ``cert_pem``'s first certificate."""
    cert_der, key_der = _certificate_der(cert_pem), _key_der(key_pem)
    if isinstance(cert_der, str):
        return cert_der
    if isinstance(key_der, str):
        return key_der
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        public = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError:
        return "x509: malformed certificate"
    try:
        private = serialization.load_der_private_key(key_der, password=None)
    except (ValueError, TypeError):
        return "tls: failed to parse private key"
    return _match_problem(public, private)


def _match_problem(public: Any, private: Any) -> str | None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    pairs = ((rsa.RSAPublicKey, rsa.RSAPrivateKey), (ec.EllipticCurvePublicKey,
             ec.EllipticCurvePrivateKey), (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey))
    for public_type, private_type in pairs:
        if isinstance(public, public_type):
            if not isinstance(private, private_type):
                return "tls: private key type does not match public key type"
            mine = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            theirs = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return None if mine == theirs else "tls: private key does not match public key"
    return "tls: unknown public key algorithm"
