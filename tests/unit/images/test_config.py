"""registries.yaml parsing and endpoint selection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from podling.images.config import (Endpoint, InvalidRegistryConfig, RegistriesConfig, TLSConfig,
                                   default_endpoint_url, go_replacement, is_loopback,
                                   load_registries, split_endpoint_url, DEFAULT_REGISTRIES)
from podling.images.interface import RegistryAuth
from podling.images.refs import parse_reference

DOC = """
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com/prefix"]
    rewrite:
      "^library/(.*)": "mirrored/$1"
  quay.io:
    endpoint: ["mirror.example.com:8443"]
    disable_default_endpoint: true
  "*":
    endpoint: ["https://catchall.example.com/v2"]
configs:
  mirror.example.com:
    auth: {username: mu, password: mp}
    tls: {ca_file: /ca.pem, insecure_skip_verify: true}
  "https://catchall.example.com":
    auth: {auth: dXNlcjpwYXNz}
  registry.example.com:
    auth: {token: tok, identity_token: idt}
    tls: {cert_file: /c.pem, key_file: /k.pem}
"""


def endpoints(cfg: RegistriesConfig, image: str) -> list[tuple[str, str, str, bool]]:
    return [(e.url, e.api_root, e.repository, e.mirror)
            for e in cfg.endpoints(parse_reference(image))]


def test_mirrors_rewrite_and_fallback() -> None:
    cfg = RegistriesConfig.from_dict(yaml.safe_load(DOC))
    assert endpoints(cfg, "nginx") == [
        ("http://127.0.0.1:5000", "/v2", "mirrored/nginx", True),
        ("https://mirror.example.com", "/prefix/v2", "mirrored/nginx", True),
        ("https://registry-1.docker.io", "/v2", "library/nginx", False),  # no rewrite upstream
    ]
    assert endpoints(cfg, "someone/app") == [
        ("http://127.0.0.1:5000", "/v2", "someone/app", True),
        ("https://mirror.example.com", "/prefix/v2", "someone/app", True),
        ("https://registry-1.docker.io", "/v2", "someone/app", False),
    ]


def test_per_mirror_disable_default_endpoint() -> None:
    cfg = RegistriesConfig.from_dict(yaml.safe_load(DOC))
    assert endpoints(cfg, "quay.io/a/b") == [
        ("https://mirror.example.com:8443", "/v2", "a/b", True)]


def test_wildcard_mirror_and_top_level_switch() -> None:
    doc = yaml.safe_load(DOC)
    cfg = RegistriesConfig.from_dict(doc)
    assert endpoints(cfg, "ghcr.io/x/y") == [
        ("https://catchall.example.com", "/v2", "x/y", True),
        ("https://ghcr.io", "/v2", "x/y", False)]
    doc["disableDefaultEndpoint"] = True
    cfg = RegistriesConfig.from_dict(doc)
    assert endpoints(cfg, "ghcr.io/x/y") == [("https://catchall.example.com", "/v2", "x/y", True)]
    assert [e[0] for e in endpoints(cfg, "nginx")] == [
        "http://127.0.0.1:5000", "https://mirror.example.com"]


def test_no_mirror_entry_uses_upstream_even_when_disabled() -> None:
    cfg = RegistriesConfig.from_dict({"disableDefaultEndpoint": True})
    assert endpoints(cfg, "registry.example.com/a") == [
        ("https://registry.example.com", "/v2", "a", False)]
    assert endpoints(cfg, "localhost:5000/a") == [("http://localhost:5000", "/v2", "a", False)]
    assert endpoints(cfg, "127.0.0.1:5000/a") == [("http://127.0.0.1:5000", "/v2", "a", False)]


def test_upstream_listed_as_mirror_is_not_repeated() -> None:
    cfg = RegistriesConfig.from_dict(
        {"mirrors": {"127.0.0.1:5000": {"endpoint": ["http://127.0.0.1:6000",
                                                     "http://127.0.0.1:5000"]}}})
    assert [e[0] for e in endpoints(cfg, "127.0.0.1:5000/a")] == [
        "http://127.0.0.1:6000", "http://127.0.0.1:5000"]


def test_host_configs() -> None:
    cfg = RegistriesConfig.from_dict(yaml.safe_load(DOC))
    eps = cfg.endpoints(parse_reference("nginx"))
    assert eps[1].auth == RegistryAuth("mu", "mp")
    assert eps[1].tls == TLSConfig(ca_file="/ca.pem", insecure_skip_verify=True)
    assert eps[0].auth is None and eps[0].tls == TLSConfig()
    wild = cfg.endpoints(parse_reference("ghcr.io/x/y"))[0]
    assert wild.auth == RegistryAuth("user", "pass")
    own = cfg.default_endpoint(parse_reference("registry.example.com/a"))
    assert own.auth == RegistryAuth(identity_token="idt", registry_token="tok")
    assert own.tls.cert_file == "/c.pem"
    assert own.api_url("a/manifests/x") == "https://registry.example.com/v2/a/manifests/x"
    assert str(own) == "https://registry.example.com"
    assert own.plain_http is False and eps[0].plain_http is True


def test_configs_wildcard_and_hub_alias() -> None:
    cfg = RegistriesConfig.from_dict({"configs": {
        "*": {"auth": {"username": "any", "password": "x"}},
        "index.docker.io": {"auth": {"username": "hub", "password": "y"}}}})
    assert cfg.default_endpoint(parse_reference("nginx")).auth == RegistryAuth("hub", "y")
    assert cfg.host_config("other.example").auth == RegistryAuth("any", "x")


@pytest.mark.parametrize("doc,message", [
    ([], "top level"),
    ({"mirrors": []}, "'mirrors' must be a mapping"),
    ({"mirrors": {"docker.io": []}}, "mirrors.docker.io must be a mapping"),
    ({"mirrors": {"docker.io": {"endpoint": "http://x"}}}, "must be a list"),
    ({"mirrors": {"docker.io": {"endpoint": ["ftp://x"]}}}, "invalid registry endpoint"),
    ({"mirrors": {"docker.io": {"endpoint": [3]}}}, "endpoint"),
    ({"mirrors": {"docker.io": {"rewrite": {"(": "x"}}}}, "bad regex"),
    ({"mirrors": {"docker.io": {"rewrite": {"a": 1}}}}, "must be a string"),
    ({"mirrors": {"docker.io": {"disable_default_endpoint": "yes"}}}, "true or false"),
    ({"disableDefaultEndpoint": 1}, "true or false"),
    ({"configs": {"r": {"tls": {"cert_file": "/c"}}}}, "go together"),
    ({"configs": {"r": {"auth": {"auth": "???"}}}}, "base64"),
    ({"configs": {"r": "x"}}, "configs.r must be a mapping"),
])
def test_invalid(doc: object, message: str) -> None:
    with pytest.raises(InvalidRegistryConfig, match=message):
        RegistriesConfig.from_dict(doc)  # type: ignore[arg-type]


def test_bad_rewrite_result() -> None:
    cfg = RegistriesConfig.from_dict(
        {"mirrors": {"docker.io": {"endpoint": ["https://m"], "rewrite": {".*": "../x"}}}})
    with pytest.raises(InvalidRegistryConfig, match="invalid"):
        cfg.endpoints(parse_reference("nginx"))


def test_load_registries(tmp_path: Path) -> None:
    path = tmp_path / "registries.yaml"
    assert load_registries(path) == RegistriesConfig.from_dict(DEFAULT_REGISTRIES)
    with pytest.raises(InvalidRegistryConfig, match="does not exist"):
        load_registries(path, missing_ok=False)
    path.write_text(DOC)
    assert "docker.io" in load_registries(path).mirrors
    path.write_text("mirrors: [unclosed")
    with pytest.raises(InvalidRegistryConfig, match="not valid YAML"):
        load_registries(path)
    path.write_text("")
    assert load_registries(path) == RegistriesConfig()


@pytest.mark.parametrize("go,text,want", [
    ("mirrored/$1", "library/nginx", "mirrored/nginx"),
    ("${1}-x", "library/nginx", "nginx-x"),
    ("${name}", "library/nginx", "nginx"),
    ("a$$b", "library/nginx", "a$b"),
    (r"a\1", "library/nginx", r"a\1"),
])
def test_go_replacement(go: str, text: str, want: str) -> None:
    import re
    assert re.sub(r"^library/(?P<name>.*)", go_replacement(go), text) == want


@pytest.mark.parametrize("host,want", [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:80", True), ("[::1]:5000", True),
    ("::1", True), ("10.0.0.1:5000", False), ("example.com", False), ("localhost.evil", False),
])
def test_is_loopback(host: str, want: bool) -> None:
    assert is_loopback(host) is want


def test_endpoint_urls() -> None:
    assert split_endpoint_url("mirror:5000") == ("https://mirror:5000", "/v2", "mirror:5000")
    assert split_endpoint_url("http://m/v2/") == ("http://m", "/v2", "m")
    assert default_endpoint_url("index.docker.io") == "https://registry-1.docker.io"
    assert default_endpoint_url("[::1]:5000") == "http://[::1]:5000"
    assert isinstance(RegistriesConfig().endpoints(parse_reference("nginx"))[0], Endpoint)
