"""The node API's serving certificate, kept on disk and reused across agent restarts.

``<dir>/serving.crt`` and ``serving.key`` (0600) hold a self-signed certificate;
``serving.hosts`` records the SHA-256 of those two files, the hosts the certificate was issued
for and its expiry. A start whose hosts are all recorded, whose files match the record and
whose certificate is valid for at least another :data:`MIN_LEFT_SECONDS` reuses the files
without importing ``cryptography`` (several MiB of resident memory); otherwise — files missing
or corrupt, hosts changed, expiring — a new certificate is issued and recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from podling.util.files import atomic_write

MIN_LEFT_SECONDS = 30 * 86400
VALID_DAYS = 365


def _paths(directory: str) -> tuple[str, str, str]:
    return (os.path.join(directory, "serving.crt"), os.path.join(directory, "serving.key"),
            os.path.join(directory, "serving.hosts"))


def _digest(cert_path: str, key_path: str) -> str:
    digest = hashlib.sha256()
    for path in (cert_path, key_path):
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def _reusable(directory: str, hosts: list[str]) -> bool:
    cert_path, key_path, record_path = _paths(directory)
    try:
        with open(record_path) as f:
            record = json.load(f)
        return (record["sha256"] == _digest(cert_path, key_path)
                and sorted(set(hosts)) == record["hosts"]
                and float(record["not_after"]) > time.time() + MIN_LEFT_SECONDS)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_serving_cert(directory: str, common_name: str, hosts: list[str]) -> tuple[str, str]:
    """(certificate path, key path) of a self-signed certificate for exactly ``hosts``,
    reused from ``directory`` when the record vouches for it, else issued anew."""
    cert_path, key_path, record_path = _paths(directory)
    if not _reusable(directory, hosts):
        from podling.util.certs import self_signed  # imports cryptography
        os.makedirs(directory, mode=0o700, exist_ok=True)
        issued = time.time()
        cert, key = self_signed(common_name, hosts, days=VALID_DAYS)
        atomic_write(key_path, key, 0o600)
        atomic_write(cert_path, cert, 0o644)
        record = {"sha256": _digest(cert_path, key_path), "hosts": sorted(set(hosts)),
                  "not_after": issued + VALID_DAYS * 86400 - 60}
        atomic_write(record_path, json.dumps(record).encode(), 0o644)
    return cert_path, key_path
