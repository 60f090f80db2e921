"""Reference parsing and normalisation (table-driven)."""

from __future__ import annotations

import pytest

from podling.images.errors import InvalidImageName
from podling.images.refs import Reference, parse_reference, validate_digest

D = "sha256:" + "a" * 64

VALID = [
    ("nginx", "docker.io", "library/nginx", "latest", "", "docker.io/library/nginx:latest"),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", "", "docker.io/library/nginx:1.25"),
    ("library/nginx", "docker.io", "library/nginx", "latest", "", None),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", "", None),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", "", None),
    ("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", "", None),
    ("foo/bar", "docker.io", "foo/bar", "latest", "", "docker.io/foo/bar:latest"),
    ("foo/bar/baz", "docker.io", "foo/bar/baz", "latest", "", None),
    ("localhost/foo", "localhost", "foo", "latest", "", "localhost/foo:latest"),
    ("localhost:5000/foo", "localhost:5000", "foo", "latest", "", None),
    (f"localhost:5000/x@{D}", "localhost:5000", "x", "", D, f"localhost:5000/x@{D}"),
    ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", "", None),
    ("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", "", None),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", "", None),
    (f"nginx:1.25@{D}", "docker.io", "library/nginx", "1.25", D,
     f"docker.io/library/nginx:1.25@{D}"),
    (f"nginx@{D}", "docker.io", "library/nginx", "", D, f"docker.io/library/nginx@{D}"),
    ("a.b-c_d__e---f:TAG_x.y-z", "docker.io", "library/a.b-c_d__e---f", "TAG_x.y-z", "", None),
    ("Foo/bar", "Foo", "bar", "latest", "", None),  # upper case first component = domain
    ("my-registry.example.com:443/team/app:v1", "my-registry.example.com:443",
     "team/app", "v1", "", None),
    ("[::1]:5000/foo", "[::1]:5000", "foo", "latest", "", None),
    ("x:" + "t" * 128, "docker.io", "library/x", "t" * 128, "", None),
    ("sha256:" + "b" * 64 + "x", "docker.io", "library/sha256", "b" * 64 + "x", "", None),
]


@pytest.mark.parametrize("text,registry,repo,tag,digest,string", VALID)
def test_valid(text: str, registry: str, repo: str, tag: str, digest: str,
               string: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)
    assert ref.name == f"{registry}/{repo}"
    if string is not None:
        assert str(ref) == string
    assert parse_reference(str(ref)) == ref  # normalised form is a fixed point


INVALID = [
    ("", "empty"),
    ("NGINX", "lowercase"),
    ("docker.io/Library/nginx", "lowercase"),
    ("nginx:", "invalid tag"),
    ("nginx:-bad", "invalid tag"),
    ("nginx:" + "t" * 129, "invalid tag"),
    ("nginx@sha256:abc", "64 lower-case hex"),
    ("nginx@sha256:" + "A" * 64, "lower-case hex"),
    ("nginx@md5:" + "a" * 32, "unsupported algorithm"),
    ("nginx@" + "a" * 64, "algorithm:hex"),
    ("@" + D, "missing name"),
    ("a" * 64, "64-byte hexadecimal"),
    (" nginx", "whitespace"),
    ("ngi nx", "whitespace"),
    ("foo//bar", "path component"),
    ("foo/bar/", "path component"),
    ("-foo", "path component"),
    ("foo_", "path component"),
    ("foo.-bar", "path component"),
    ("localhost:5000/", "missing repository"),
    ("bad_host.com/foo", "registry host"),
    ("-bad.com/foo", "registry host"),
    ("example.com:port/foo", "registry host"),
    ("docker.io/" + "a/" * 130 + "b", "255"),
    ("foo/bar:tag:tag", "path component"),
    ("nginx:t@sha256:" + "a" * 63, "hex"),
]


@pytest.mark.parametrize("text,message", INVALID)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidImageName) as info:
        parse_reference(text)
    assert message in str(info.value)


def test_reference_helpers() -> None:
    ref = parse_reference("nginx:1.25")
    pinned = ref.with_digest(D)
    assert str(pinned) == f"docker.io/library/nginx@{D}"
    assert pinned.object == D and ref.object == "1.25"
    assert str(pinned.with_tag("x")) == "docker.io/library/nginx:x"
    with pytest.raises(InvalidImageName):
        ref.with_tag("!")
    with pytest.raises(InvalidImageName):
        ref.with_digest("sha256:zz")
    assert isinstance(ref, Reference)
    with pytest.raises(AttributeError):
        ref.tag = "y"  # type: ignore[misc]


@pytest.mark.parametrize("digest", ["sha256:" + "0" * 64, "sha512:" + "f" * 128,
                                    "sha384:" + "1" * 96])
def test_valid_digests(digest: str) -> None:
    validate_digest(digest)


def test_non_string() -> None:
    with pytest.raises(InvalidImageName):
        parse_reference(None)  # type: ignore[arg-type]
