"""Credentials from docker config.json and Kubernetes pull secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from podling.images.credentials import (InvalidCredentials, credentials_for,
                                        docker_config_from_secret, load_docker_config,
                                        parse_docker_config)
from podling.images.interface import RegistryAuth


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIG = {
    "auths": {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
        "registry.example.com": {"username": "u1", "password": "p1"},
        "https://registry.example.com:5000/v2/": {"auth": b64("u2:p:with:colons")},
        "registry.example.com/team": {"username": "team", "password": "tp"},
        "*.corp.example": {"username": "glob", "password": "gp"},
        "tokens.example.com": {"identitytoken": "refresh-me"},
        "bearer.example.com": {"registrytoken": "raw-token"},
        "empty.example.com": {},
    },
    "credsStore": "desktop",
}


@pytest.mark.parametrize("host,repo,want", [
    ("docker.io", "", RegistryAuth("hubuser", "hubpass")),
    ("index.docker.io", "", RegistryAuth("hubuser", "hubpass")),
    ("registry-1.docker.io", "library/nginx", RegistryAuth("hubuser", "hubpass")),
    ("registry.example.com", "", RegistryAuth("u1", "p1")),
    ("https://registry.example.com/v2/", "", RegistryAuth("u1", "p1")),
    ("REGISTRY.example.com", "other/app", RegistryAuth("u1", "p1")),
    ("registry.example.com", "team/app", RegistryAuth("team", "tp")),
    ("registry.example.com", "teamwork/app", RegistryAuth("u1", "p1")),
    ("registry.example.com:5000", "x", RegistryAuth("u2", "p:with:colons")),
    ("a.corp.example", "", RegistryAuth("glob", "gp")),
    ("a.b.corp.example", "", None),
    ("a.corp.example:5000", "", None),
    ("tokens.example.com", "", RegistryAuth(identity_token="refresh-me")),
    ("bearer.example.com", "", RegistryAuth(registry_token="raw-token")),
    ("empty.example.com", "", None),
    ("unknown.example.com", "", None),
])
def test_matching(host: str, repo: str, want: RegistryAuth | None) -> None:
    cfg = parse_docker_config(json.dumps(CONFIG))
    assert credentials_for(host, [cfg], repo) == want


def test_first_source_wins_among_equals_and_exact_beats_glob() -> None:
    a = parse_docker_config({"auths": {"r.example": {"username": "a", "password": "1"}}})
    b = parse_docker_config({"auths": {"r.example": {"username": "b", "password": "2"},
                                       "*.example": {"username": "g", "password": "3"}}})
    assert credentials_for("r.example", [a, b]) == RegistryAuth("a", "1")
    assert credentials_for("r.example", [b, a]) == RegistryAuth("b", "2")
    assert credentials_for("q.example", [a, b]) == RegistryAuth("g", "3")


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    assert credentials_for("docker.io", [load_docker_config(path)]) == RegistryAuth(
        "hubuser", "hubpass")


def test_dockerconfigjson_secret() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": b64(json.dumps(CONFIG))}}
    cfg = docker_config_from_secret(secret)
    assert credentials_for("registry.example.com", [cfg]) == RegistryAuth("u1", "p1")
    string_secret = {"type": "kubernetes.io/dockerconfigjson",
                     "stringData": {".dockerconfigjson": json.dumps(CONFIG)}}
    assert docker_config_from_secret(string_secret) == cfg


def test_legacy_dockercfg_secret() -> None:
    legacy = {"r.example:5000": {"auth": b64("old:style")}}
    secret = {"type": "kubernetes.io/dockercfg", "data": {".dockercfg": b64(json.dumps(legacy))}}
    cfg = docker_config_from_secret(secret)
    assert credentials_for("r.example:5000", [cfg]) == RegistryAuth("old", "style")
    assert credentials_for("r.example:5000", [parse_docker_config(legacy)]) == RegistryAuth(
        "old", "style")


@pytest.mark.parametrize("secret,message", [
    ({"type": "Opaque", "data": {}}, "not a docker pull secret"),
    ({"type": "kubernetes.io/dockerconfigjson", "data": {}}, "no '.dockerconfigjson'"),
    ({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "!!"}},
     "not base64"),
    ({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64("{")}},
     "not valid JSON"),
])
def test_bad_secrets(secret: dict, message: str) -> None:
    with pytest.raises(InvalidCredentials, match=message):
        docker_config_from_secret(secret)


@pytest.mark.parametrize("doc,message", [
    ("[]", "JSON object"),
    ('{"auths": []}', "must be an object"),
    ('{"auths": {"r": "x"}}', "must be an object"),
    ('{"auths": {"r": {"auth": "not base64!"}}}', "not base64"),
    ('{"auths": {"r": {"auth": "%s"}}}' % b64("nocolon"), "user:password"),
])
def test_bad_configs(doc: str, message: str) -> None:
    with pytest.raises(InvalidCredentials, match=message):
        parse_docker_config(doc)
