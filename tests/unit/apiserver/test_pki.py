"""Server credentials (CA, serving certificate, admin token) and the admin kubeconfig."""

from __future__ import annotations

import base64
import ipaddress
import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from podling.apiserver import pki

HOSTS = ["127.0.0.1", "localhost"]


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def certificate(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(read(path))


def sans(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in names}


def test_creates_ca_serving_cert_key_and_token(tmp_path: Path) -> None:
    creds = pki.ensure_credentials(str(tmp_path), HOSTS)
    base = tmp_path / "server"
    assert mode(str(base)) == 0o700
    assert {creds.ca_cert, creds.cert, creds.key, creds.admin_token} == {
        str(base / n) for n in ("ca.crt", "serving.crt", "serving.key", "admin.token")}
    for secret in (creds.key, creds.admin_token, str(base / "ca.key")):
        assert mode(secret) == 0o600, secret
    for public in (creds.ca_cert, creds.cert):
        assert mode(public) == 0o644
    token = pki.read_token(creds.admin_token)
    assert len(token) >= 32 and token.isalnum()


def test_serving_cert_is_signed_by_the_ca_for_the_hosts(tmp_path: Path) -> None:
    creds = pki.ensure_credentials(str(tmp_path), HOSTS + ["::1", "node-a.example"])
    ca, cert = certificate(creds.ca_cert), certificate(creds.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert sans(cert) == {"127.0.0.1", "::1", "localhost", "node-a.example"}
    ip_names = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ip_names
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    key = serialization.load_pem_private_key(read(creds.key), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_second_call_reuses_everything(tmp_path: Path) -> None:
    first = pki.ensure_credentials(str(tmp_path), HOSTS)
    before = {p: read(p) for p in (first.ca_cert, first.cert, first.key, first.admin_token)}
    second = pki.ensure_credentials(str(tmp_path), list(reversed(HOSTS)))
    assert second == first
    assert {p: read(p) for p in before} == before


def test_a_subset_of_hosts_keeps_the_serving_cert(tmp_path: Path) -> None:
    first = pki.ensure_credentials(str(tmp_path), HOSTS + ["10.0.0.5"])
    serving = read(first.cert)
    pki.ensure_credentials(str(tmp_path), ["127.0.0.1"])
    assert read(first.cert) == serving


def test_a_new_host_reissues_the_serving_cert_from_the_same_ca(tmp_path: Path) -> None:
    first = pki.ensure_credentials(str(tmp_path), HOSTS)
    ca, token = read(first.ca_cert), pki.read_token(first.admin_token)
    old_cert, old_key = read(first.cert), read(first.key)
    second = pki.ensure_credentials(str(tmp_path), HOSTS + ["192.168.1.20"])
    assert read(second.ca_cert) == ca
    assert pki.read_token(second.admin_token) == token
    assert read(second.cert) != old_cert and read(second.key) != old_key
    cert = certificate(second.cert)
    assert "192.168.1.20" in sans(cert)
    cert.verify_directly_issued_by(certificate(second.ca_cert))
    assert mode(second.key) == 0o600


def test_a_missing_serving_key_is_reissued(tmp_path: Path) -> None:
    first = pki.ensure_credentials(str(tmp_path), HOSTS)
    os.unlink(first.key)
    second = pki.ensure_credentials(str(tmp_path), HOSTS)
    key = serialization.load_pem_private_key(read(second.key), None)
    assert key.public_key().public_numbers() == \
        certificate(second.cert).public_key().public_numbers()


def test_default_hosts() -> None:
    assert pki.default_hosts("0.0.0.0")[:3] == ["127.0.0.1", "::1", "localhost"]
    assert "10.1.2.3" in pki.default_hosts("10.1.2.3")
    assert "::" not in pki.default_hosts("::")


def test_write_kubeconfig(tmp_path: Path) -> None:
    creds = pki.ensure_credentials(str(tmp_path), HOSTS)
    path = str(tmp_path / "kubeconfig.yaml")
    pki.write_kubeconfig(path, "https://127.0.0.1:6443", creds.ca_cert, "s3cret")
    assert mode(path) == 0o600
    config = yaml.safe_load(read(path))
    assert (config["apiVersion"], config["kind"]) == ("v1", "Config")
    assert config["current-context"] == pki.CLUSTER
    [cluster] = config["clusters"]
    assert cluster["name"] == pki.CLUSTER
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == \
        read(creds.ca_cert)
    [user] = config["users"]
    assert user["user"] == {"token": "s3cret"}
    [context] = config["contexts"]
    assert context["context"] == {"cluster": pki.CLUSTER, "user": user["name"],
                                  "namespace": "default"}


def test_rewriting_a_kubeconfig_tightens_its_mode(tmp_path: Path) -> None:
    creds = pki.ensure_credentials(str(tmp_path), HOSTS)
    path = tmp_path / "kubeconfig"
    path.write_text("old")
    path.chmod(0o644)
    pki.write_kubeconfig(str(path), "https://h:1", creds.ca_cert, "t")
    assert mode(str(path)) == 0o600
    assert yaml.safe_load(path.read_text())["users"][0]["user"]["token"] == "t"


@pytest.mark.parametrize("hosts", [["127.0.0.1"], ["localhost"], ["::1", "localhost"]])
def test_any_host_list_gets_a_valid_certificate(tmp_path: Path, hosts: list[str]) -> None:
    creds = pki.ensure_credentials(str(tmp_path), hosts)
    assert sans(certificate(creds.cert)) == set(hosts)


def test_a_warm_start_checks_the_serving_cert_by_its_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = pki.ensure_credentials(str(tmp_path), HOSTS)
    before = read(creds.cert)
    parsed: list[str] = []
    real = pki._parsed_cert_covers
    monkeypatch.setattr(pki, "_parsed_cert_covers",
                        lambda path, hosts: parsed.append(path) or real(path, hosts))
    pki.ensure_credentials(str(tmp_path), HOSTS)
    assert parsed == [] and read(creds.cert) == before  # the record vouched for it


def test_a_certificate_the_record_does_not_describe_is_parsed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = pki.ensure_credentials(str(tmp_path), HOSTS)
    other = tmp_path / "other"
    replacement = pki.ensure_credentials(str(other), ["127.0.0.1", "example.test"])
    os.replace(replacement.cert, creds.cert)  # a different certificate under the same name
    os.replace(replacement.key, creds.key)
    parsed: list[str] = []
    real = pki._parsed_cert_covers
    monkeypatch.setattr(pki, "_parsed_cert_covers",
                        lambda path, hosts: parsed.append(path) or real(path, hosts))
    pki.ensure_credentials(str(tmp_path), HOSTS)
    assert parsed == [creds.cert]
    cert = x509.load_pem_x509_certificate(read(creds.cert))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)  # reissued for HOSTS
