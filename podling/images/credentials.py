"""Registry credentials from docker ``config.json`` files and Kubernetes pull secrets.

Sources (each parsed into a :class:`DockerConfig`):

- a docker ``config.json``: ``{"auths": {"<key>": {"auth": base64("user:pass")}}}``, or
  ``username`` / ``password``, or ``identitytoken`` (an OAuth2 refresh token), or
  ``registrytoken`` (a bearer token used as is);
- a Kubernetes Secret of type ``kubernetes.io/dockerconfigjson`` (``data[".dockerconfigjson"]``,
  base64, holding a config.json) or the legacy ``kubernetes.io/dockercfg`` (``.dockercfg``,
  the bare ``auths`` map); ``stringData`` is accepted too.

Matching (like the kubelet's keyring): a key may be ``host``, ``host:port``, a URL with scheme
and path (``https://index.docker.io/v1/``), and its host may use ``*`` globs per DNS label
(``*.example.com``). A key matches when the host (and port) match and the key's path, with
``/v1`` or ``/v2`` stripped, is a prefix of the repository. ``index.docker.io``,
``registry-1.docker.io``, ``registry.hub.docker.com`` and ``docker.io`` are one host. The most
specific key wins (exact host before globs, longer path before shorter); among equals, the
first source given wins.

Everything here is pure apart from :func:`load_docker_config`, which reads a file.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from podling.images.errors import ImageError
from podling.images.interface import RegistryAuth

DOCKER_HUB_ALIASES = frozenset({
    "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})

SECRET_TYPE_DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
SECRET_TYPE_DOCKERCFG = "kubernetes.io/dockercfg"


class InvalidCredentials(ImageError):
    """A config.json or pull secret that cannot be parsed."""


@dataclass(frozen=True)
class CredentialEntry:
    """One ``auths`` entry: the key split into ``host`` (normalised) and ``path``."""

    key: str
    host: str
    path: str
    auth: RegistryAuth


@dataclass(frozen=True)
class DockerConfig:
    """The parsed ``auths`` of one config.json or pull secret."""

    entries: tuple[CredentialEntry, ...] = ()


def normalize_host(host: str) -> str:
    """Lower-case ``host`` and fold the Docker Hub aliases into ``docker.io``."""
    host = host.lower()
    return "docker.io" if host in DOCKER_HUB_ALIASES else host


def parse_docker_config(data: bytes | str | Mapping[str, Any]) -> DockerConfig:
    """Parse a config.json document (bytes, text or an already decoded dict).

    A dict without ``auths`` is taken to be the legacy bare map (``.dockercfg``)."""
    doc = _decode_json(data) if not isinstance(data, Mapping) else data
    if not isinstance(doc, Mapping):
        raise InvalidCredentials("docker config: expected a JSON object")
    auths = doc.get("auths", doc if "auths" not in doc and _looks_legacy(doc) else {})
    if not isinstance(auths, Mapping):
        raise InvalidCredentials("docker config: 'auths' must be an object")
    entries = [_entry(key, value) for key, value in auths.items()]
    return DockerConfig(tuple(e for e in entries if e is not None))


def load_docker_config(path: str | os.PathLike[str]) -> DockerConfig:
    """Read and parse a docker ``config.json`` (raises InvalidCredentials, OSError)."""
    with open(path, "rb") as f:
        return parse_docker_config(f.read())


def docker_config_from_secret(secret: Mapping[str, Any]) -> DockerConfig:
    """Parse a Kubernetes pull Secret (a Secret object as a dict)."""
    stype = secret.get("type", "")
    if stype == SECRET_TYPE_DOCKERCONFIGJSON:
        key = ".dockerconfigjson"
    elif stype == SECRET_TYPE_DOCKERCFG:
        key = ".dockercfg"
    else:
        raise InvalidCredentials(f"secret type {stype!r} is not a docker pull secret")
    raw = _secret_value(secret, key)
    doc = _decode_json(raw)
    if stype == SECRET_TYPE_DOCKERCFG and isinstance(doc, Mapping):
        doc = {"auths": doc}
    return parse_docker_config(doc)


def credentials_for(host: str, sources: Iterable[DockerConfig],
                    repository: str = "") -> RegistryAuth | None:
    """The credentials for ``host`` (``host[:port]`` or a URL) and ``repository``, or None."""
    want_host, want_path = _split_key(host)
    want_path = "/".join(p for p in (want_path, repository.strip("/")) if p)
    best: tuple[tuple[int, int, int], RegistryAuth] | None = None
    order = 0
    for source in sources:
        for entry in source.entries:
            order -= 1
            rank = _match_rank(entry, want_host, want_path)
            if rank is None:
                continue
            key = (*rank, order)
            if best is None or key > best[0]:
                best = (key, entry.auth)
    return best[1] if best else None


def _match_rank(entry: CredentialEntry, host: str, path: str) -> tuple[int, int] | None:
    if entry.host == host:
        exact = 1
    elif "*" in entry.host and _glob_host_match(entry.host, host):
        exact = 0
    else:
        return None
    if entry.path and not (path == entry.path or path.startswith(entry.path + "/")):
        return None
    return exact, len(entry.path)


def _glob_host_match(pattern: str, host: str) -> bool:
    pat_host, _, pat_port = pattern.partition(":")
    name, _, port = host.partition(":")
    pat_labels, labels = pat_host.split("."), name.split(".")
    if pat_port != port or len(pat_labels) != len(labels):
        return False
    return all(fnmatch.fnmatchcase(l, p) for p, l in zip(pat_labels, labels))


def _split_key(key: str) -> tuple[str, str]:
    text = key.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    path = parts.path.strip("/")
    if path in ("v1", "v2"):
        path = ""
    elif path.startswith(("v1/", "v2/")):
        path = path[3:]
    return normalize_host(host), path


def _entry(key: str, value: Any) -> CredentialEntry | None:
    if not isinstance(value, Mapping):
        raise InvalidCredentials(f"docker config: entry {key!r} must be an object")
    auth = _auth_from_entry(key, value)
    if auth is None:
        return None
    host, path = _split_key(key)
    return CredentialEntry(key=key, host=host, path=path, auth=auth)


def _auth_from_entry(key: str, value: Mapping[str, Any]) -> RegistryAuth | None:
    username = str(value.get("username") or "")
    password = str(value.get("password") or "")
    encoded = value.get("auth") or ""
    if encoded:
        username, password = decode_basic(str(encoded), what=f"entry {key!r}")
    identity = str(value.get("identitytoken") or value.get("identity_token") or "")
    registry_token = str(value.get("registrytoken") or value.get("registry_token") or "")
    if not (username or password or identity or registry_token):
        return None
    return RegistryAuth(username=username, password=password, identity_token=identity,
                        registry_token=registry_token)


def decode_basic(encoded: str, *, what: str = "auth") -> tuple[str, str]:
    """Decode a base64 ``user:password`` string (raises InvalidCredentials)."""
    try:
        text = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise InvalidCredentials(f"docker config: {what}: 'auth' is not base64 text") from e
    user, sep, password = text.partition(":")
    if not sep:
        raise InvalidCredentials(f"docker config: {what}: 'auth' is not user:password")
    return user, password


def _decode_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidCredentials(f"docker config is not valid JSON: {e}") from e


def _looks_legacy(doc: Mapping[str, Any]) -> bool:
    known = {"credsStore", "credHelpers", "HttpHeaders", "psFormat", "experimental", "proxies"}
    return bool(doc) and not (set(doc) & known) and all(
        isinstance(v, Mapping) for v in doc.values())


def _secret_value(secret: Mapping[str, Any], key: str) -> str:
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return str(string_data[key])
    data = secret.get("data") or {}
    if key not in data:
        raise InvalidCredentials(f"pull secret has no {key!r} key")
    try:
        return base64.b64decode(str(data[key]), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise InvalidCredentials(f"pull secret {key!r} is not base64 text") from e
