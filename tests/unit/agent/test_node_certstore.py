"""The node API's serving certificate is kept on disk and reused while it still fits."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys

from cryptography import x509

from podling.agent.node import certstore
from podling.agent.node.certstore import ensure_serving_cert

_ROOT = os.path.abspath(os.path.join(os.path.dirname(certstore.__file__), "..", "..", ".."))
HOSTS = ["10.0.0.5", "127.0.0.1", "localhost"]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _sans(cert_path: str) -> set[str]:
    cert = x509.load_pem_x509_certificate(_read(cert_path))
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in alt}


def test_first_start_issues_a_loadable_certificate_for_the_hosts(tmp_path):
    cert, key = ensure_serving_cert(str(tmp_path / "c"), "podling-node", HOSTS)
    assert _sans(cert) == set(HOSTS)
    assert os.stat(key).st_mode & 0o777 == 0o600
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)


def test_a_valid_certificate_is_reused(tmp_path):
    cert, key = ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    before = _read(cert), _read(key)
    ensure_serving_cert(str(tmp_path), "podling-node", list(reversed(HOSTS)))
    assert (_read(cert), _read(key)) == before


def test_reuse_does_not_import_cryptography(tmp_path):
    ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    code = ("import sys; from podling.agent.node.certstore import ensure_serving_cert as e; "
            f"e({str(tmp_path)!r}, 'podling-node', {HOSTS!r}); "
            "print('cryptography' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": _ROOT})
    assert out.stdout.strip() == "False"


def test_changed_hosts_issue_a_new_certificate(tmp_path):
    cert, _ = ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    before = _read(cert)
    ensure_serving_cert(str(tmp_path), "podling-node", ["10.0.0.6", "127.0.0.1", "localhost"])
    assert _read(cert) != before
    assert _sans(cert) == {"10.0.0.6", "127.0.0.1", "localhost"}


def test_an_expiring_certificate_is_replaced(tmp_path):
    cert, _ = ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    before = _read(cert)
    record_path = tmp_path / "serving.hosts"
    record = json.loads(record_path.read_text())
    record["not_after"] = record["not_after"] - certstore.VALID_DAYS * 86400 + 86400
    record_path.write_text(json.dumps(record))
    ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    assert _read(cert) != before
    cert_obj = x509.load_pem_x509_certificate(_read(cert))
    assert json.loads(record_path.read_text())["not_after"] <= \
        cert_obj.not_valid_after_utc.timestamp()


def test_corrupt_or_missing_files_are_replaced(tmp_path):
    cert, key = ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    with open(key, "wb") as f:
        f.write(b"garbage")
    ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    (tmp_path / "serving.hosts").write_text("{not json")
    before = _read(cert)
    ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    assert _read(cert) != before
    os.unlink(cert)
    ensure_serving_cert(str(tmp_path), "podling-node", HOSTS)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
