"""A TLS Secret's certificate and key: Go's tls.X509KeyPair errors, as warnings."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from podling.apiserver.registry.tlspair import key_pair_problem
from podling.util.certs import self_signed

CERT, KEY = self_signed("a.test", ["a.test"])
OTHER_CERT, OTHER_KEY = self_signed("b.test", ["b.test"])
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption())


def pem(kind: str, der: bytes = b"x") -> bytes:
    return (f"-----BEGIN {kind}-----\n".encode() + base64.b64encode(der) +
            f"\n-----END {kind}-----\n".encode())


@pytest.mark.parametrize("cert, key, problem", [
    (CERT, KEY, None),
    (CERT + OTHER_CERT, KEY, None),
    (CERT, OTHER_KEY, "tls: private key does not match public key"),
    (CERT, RSA_KEY, "tls: private key type does not match public key type"),
    (b"", KEY, "tls: failed to find any PEM data in certificate input"),
    (KEY, CERT, "tls: failed to find certificate PEM data in certificate input, but did find a "
                "private key; PEM inputs may have been switched"),
    (pem("FOO") + pem("BAR"), KEY, 'tls: failed to find "CERTIFICATE" PEM block in certificate '
                                   "input after skipping PEM blocks of the following types: "
                                   "[FOO BAR]"),
    (CERT, b"junk", "tls: failed to find any PEM data in key input"),
    (CERT, CERT, "tls: found a certificate rather than a key in the PEM for the private key"),
    (CERT, pem("FOO"), 'tls: failed to find PEM block with type ending in "PRIVATE KEY" in key '
                       "input after skipping PEM blocks of the following types: [FOO]"),
    (CERT, pem("PRIVATE KEY"), "tls: failed to parse private key"),
    (pem("CERTIFICATE"), KEY, "x509: malformed certificate"),
])
def test_key_pair_problem(cert: bytes, key: bytes, problem: str | None) -> None:
    assert key_pair_problem(cert, key) == problem
