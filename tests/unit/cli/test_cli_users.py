"""`podling token` and `podling kubeconfig` without a server: one line and exit status 1;
with a server's files, a kubeconfig whose certificate names the user and groups."""

from __future__ import annotations

import base64

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from podling.apiserver import pki
from podling.cli.main import main


def test_token_commands_without_a_server_say_so(tmp_path, capsys) -> None:
    for args in (["token", "create", "alice"], ["token", "list"], ["token", "delete", "abc"]):
        assert main([*args, "--data-dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("podling token: cannot read kubeconfig")


def test_a_token_kubeconfig_for_a_server_that_is_down(tmp_path, capsys) -> None:
    pki.ensure_credentials(str(tmp_path), ["127.0.0.1"])
    pki.write_kubeconfig(str(tmp_path / "kubeconfig"), "https://127.0.0.1:1",
                         str(tmp_path / "server" / "ca.crt"), "t")
    assert main(["token", "create", "alice", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and \
        err.startswith("podling token: cannot reach https://127.0.0.1:1")


def test_kubeconfig_needs_the_servers_files(tmp_path, capsys) -> None:
    assert main(["kubeconfig", "carol", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("podling kubeconfig: cannot read")


def test_kubeconfig_issues_a_client_certificate(tmp_path, capsys) -> None:
    pki.ensure_credentials(str(tmp_path), ["127.0.0.1"])
    pki.write_kubeconfig(str(tmp_path / "kubeconfig"), "https://127.0.0.1:6443",
                         str(tmp_path / "server" / "ca.crt"), "t")
    assert main(["kubeconfig", "carol", "--group", "ops,audit", "--data-dir",
                 str(tmp_path)]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    user = config["users"][0]
    assert user["name"] == "carol" and "token" not in user["user"]
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(user["user"]["client-certificate-data"]))
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == \
        ["carol"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] \
        == ["ops", "audit"]
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
