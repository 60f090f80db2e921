"""The server's certificate authority, serving certificate, admin token and kubeconfig.

Created once in ``<data-dir>/server`` on first start and reused afterwards. Keys are ECDSA
P-256 (fast to generate, accepted by kubectl and the Python client).

``serving.hosts`` records, beside the serving certificate, the digest of that file, the hosts
it was issued for and its expiry, so that a warm start checks it without importing
``cryptography`` (several MiB of the server's memory); a certificate the record does not
vouch for is parsed as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from ..util.files import atomic_write

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CLUSTER = "podling"


@dataclass(frozen=True)
class ServerCredentials:
    ca_cert: str
    cert: str
    key: str
    admin_token: str


def ensure_credentials(data_dir: str, hosts: list[str]) -> ServerCredentials:
    """Load or create the CA, a serving certificate valid for ``hosts`` and the admin token.

    A serving certificate that lacks one of ``hosts`` is re-issued from the same CA."""
    base = os.path.join(data_dir, "server")
    os.makedirs(base, mode=0o700, exist_ok=True)
    paths = ServerCredentials(*(os.path.join(base, n) for n in
                                ("ca.crt", "serving.crt", "serving.key", "admin.token")))
    ca_key_path = os.path.join(base, "ca.key")
    if not (os.path.exists(paths.ca_cert) and os.path.exists(ca_key_path)):
        _write_ca(paths.ca_cert, ca_key_path)
    if not _cert_covers(paths.cert, hosts) or not os.path.exists(paths.key):
        _write_serving(paths.ca_cert, ca_key_path, paths.cert, paths.key, hosts)
    if not os.path.exists(paths.admin_token):
        atomic_write(paths.admin_token, secrets.token_hex(24).encode(), 0o600)
    return paths


def read_token(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)) \
        .not_valid_after(now + dt.timedelta(days=days))


def _write_ca(cert_path: str, key_path: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{CLUSTER}-ca")])
    builder = _validity(x509.CertificateBuilder(), 3650).subject_name(name).issuer_name(name) \
        .public_key(key.public_key()).serial_number(x509.random_serial_number()) \
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True) \
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    atomic_write(key_path, _pem_key(key), 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _record_path(cert_path: str) -> str:
    return os.path.join(os.path.dirname(cert_path), "serving.hosts")


def _digest(cert_path: str) -> str:
    with open(cert_path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _cert_covers(cert_path: str, hosts: list[str]) -> bool:
    if not os.path.exists(cert_path):
        return False
    try:
        with open(_record_path(cert_path)) as f:
            record = json.load(f)
        if (record["sha256"] == _digest(cert_path) and set(hosts) <= set(record["hosts"])
                and record["not_after"] > time.time() + 30 * 86400):
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no (usable) record: parse the certificate
    return _parsed_cert_covers(cert_path, hosts)


def _parsed_cert_covers(cert_path: str, hosts: list[str]) -> bool:
    from cryptography import x509

    from ..util.certs import subject_alt_names
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    present = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    expires = cert.not_valid_after_utc
    fresh = expires > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    covers = fresh and set(subject_alt_names(hosts)) <= present
    if covers:
        _write_record(cert_path, hosts, expires.timestamp())
    return covers


def _write_record(cert_path: str, hosts: list[str], not_after: float) -> None:
    record = {"sha256": _digest(cert_path), "hosts": sorted(set(hosts)), "not_after": not_after}
    atomic_write(_record_path(cert_path), json.dumps(record).encode(), 0o644)


def _write_serving(ca_cert_path: str, ca_key_path: str, cert_path: str, key_path: str,
                   hosts: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from ..util.certs import subject_alt_names
    with open(ca_cert_path, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(ca_key_path, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{CLUSTER}-apiserver")])
    builder = _validity(x509.CertificateBuilder(), 825).subject_name(subject) \
        .issuer_name(ca_cert.subject).public_key(key.public_key()) \
        .serial_number(x509.random_serial_number()) \
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False) \
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    atomic_write(key_path, _pem_key(key), 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_record(cert_path, hosts, cert.not_valid_after_utc.timestamp())


def issue_client_certificate(server_dir: str, user: str, groups: list[str],
                             days: int) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a client certificate from the cluster CA in
    ``server_dir``: common name ``user``, one organization per group, as the API server
    reads users from certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    with open(os.path.join(server_dir, "ca.crt"), "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(server_dir, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups] +
                        [x509.NameAttribute(NameOID.COMMON_NAME, user)])
    cert = _validity(x509.CertificateBuilder(), days).subject_name(subject) \
        .issuer_name(ca_cert.subject).public_key(key.public_key()) \
        .serial_number(x509.random_serial_number()) \
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False) \
        .sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def default_hosts(bind_address: str) -> list[str]:
    """Names the serving certificate covers: loopback, this host, and the bind address."""
    hosts = ["127.0.0.1", "::1", "localhost", socket.gethostname()]
    if bind_address not in ("0.0.0.0", "::", ""):
        hosts.append(bind_address)
    return hosts


def write_kubeconfig(path: str, server_url: str, ca_cert_path: str, token: str, *,
                     user: str = "admin") -> None:
    """A kubeconfig (mode 0600) with the CA inline and ``user``'s bearer token."""
    with open(ca_cert_path, "rb") as f:
        ca_pem = f.read()
    atomic_write(path, kubeconfig_text(server_url, ca_pem, token, user=user).encode(), 0o600)


def kubeconfig_text(server_url: str, ca_pem: bytes, token: str = "", *, user: str = "admin",
                    client_pem: tuple[bytes, bytes] | None = None) -> str:
    """A kubeconfig for ``user`` with a bearer token, or a client certificate and key
    (``client_pem``), trusting the CA ``ca_pem``."""
    import base64
    credentials = {"token": token} if client_pem is None else {
        "client-certificate-data": base64.b64encode(client_pem[0]).decode(),
        "client-key-data": base64.b64encode(client_pem[1]).decode()}
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": CLUSTER, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": CLUSTER, "context": {"cluster": CLUSTER, "user": user,
                                                  "namespace": "default"}}],
        "current-context": CLUSTER,
    }
    return yaml.safe_dump(config, sort_keys=False)
