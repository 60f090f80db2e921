"""Pure parts of the registry client: platforms, media types, challenges, error combining."""

from __future__ import annotations

import pytest

from podling.images.errors import NoMatchingPlatform, RegistryError
from podling.images.platforms import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1,
                                      OCI_INDEX, OCI_MANIFEST, Platform, host_platform,
                                      media_type_of, select_manifest)
from podling.images.registry_auth import Challenge, parse_www_authenticate, scope_for


@pytest.mark.parametrize("machine,want", [
    ("x86_64", Platform("linux", "amd64")), ("aarch64", Platform("linux", "arm64", "v8")),
    ("armv7l", Platform("linux", "arm", "v7")), ("armv6l", Platform("linux", "arm", "v6")),
    ("i686", Platform("linux", "386")), ("riscv64", Platform("linux", "riscv64")),
    ("mips", Platform("linux", "mips")),
])
def test_host_platform(machine: str, want: Platform) -> None:
    assert host_platform(machine) == want
    assert host_platform().os == "linux"


def entry(digest: str, arch: str, variant: str = "", os: str = "linux",
          media_type: str = OCI_MANIFEST) -> dict:
    p = {"os": os, "architecture": arch}
    if variant:
        p["variant"] = variant
    return {"mediaType": media_type, "digest": digest, "platform": p}


INDEX = {"manifests": [
    entry("att", "unknown", os="unknown"), entry("win", "amd64", os="windows"),
    entry("amd", "amd64"), entry("arm5", "arm", "v5"), entry("arm7", "arm", "v7"),
    entry("arm64-plain", "arm64"), entry("arm64-v8", "arm64", "v8"),
    entry("amd-v3", "amd64", "v3"), {"digest": "no-platform"},
]}


@pytest.mark.parametrize("platform,want", [
    (Platform("linux", "amd64"), "amd"), (Platform("linux", "arm64", "v8"), "arm64-v8"),
    (Platform("linux", "arm", "v7"), "arm7"), (Platform("linux", "arm", "v6"), "arm5"),
    (Platform("linux", "amd64", "v3"), "amd-v3"),
])
def test_select_manifest(platform: Platform, want: str) -> None:
    assert select_manifest(INDEX, platform)["digest"] == want


def test_select_manifest_errors() -> None:
    with pytest.raises(NoMatchingPlatform, match="linux/s390x.*windows/amd64"):
        select_manifest(INDEX, Platform("linux", "s390x"))
    with pytest.raises(RegistryError, match="no 'manifests'"):
        select_manifest({}, Platform())
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"


@pytest.mark.parametrize("ctype,body,want", [
    ("", {"mediaType": DOCKER_MANIFEST}, DOCKER_MANIFEST),
    (DOCKER_MANIFEST_LIST + "; charset=utf-8", {}, DOCKER_MANIFEST_LIST),
    ("application/json", {"manifests": []}, OCI_INDEX),
    ("", {"layers": []}, OCI_MANIFEST),
    ("application/json", {"schemaVersion": 1}, DOCKER_SCHEMA1[0]),
    ("", {}, ""),
])
def test_media_type_of(ctype: str, body: dict, want: str) -> None:
    assert media_type_of(ctype, body) == want


@pytest.mark.parametrize("header,want", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:library/nginx:pull"',
     [Challenge("bearer", {"realm": "https://auth.docker.io/token",
                           "service": "registry.docker.io",
                           "scope": "repository:library/nginx:pull"})]),
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ('Bearer realm="r", Basic realm="b"',
     [Challenge("bearer", {"realm": "r"}), Challenge("basic", {"realm": "b"})]),
    ('Bearer realm=unquoted,error="insufficient_scope",x="a\\"b"',
     [Challenge("bearer", {"realm": "unquoted", "error": "insufficient_scope", "x": 'a"b'})]),
    ("", []),
])
def test_parse_www_authenticate(header: str, want: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == want


def test_scope() -> None:
    assert scope_for("library/nginx", ("pull", "push")) == "repository:library/nginx:pull,push"
