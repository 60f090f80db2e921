"""Registry configuration in the k3s ``registries.yaml`` format.

::

    disableDefaultEndpoint: false        # podling: no registry with a mirror entry falls back
    mirrors:
      docker.io:                         # the registry as written in image references
        endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com"]
        rewrite: {"^library/(.*)": "mirrored/$1"}   # applied to mirror endpoints only
        disable_default_endpoint: true   # podling: no fallback for this registry
      "*":                               # the default mirror, for registries not listed
        endpoint: ["https://catch-all.example.com"]
    configs:
      mirror.example.com:                # an endpoint host[:port] (or a registry), or "*"
        auth: {username: u, password: p} # or auth: base64(u:p), identity_token, token
        tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem,
              insecure_skip_verify: false}

Endpoint order for a reference (:meth:`RegistriesConfig.endpoints`): the mirror endpoints of
its registry (or of ``"*"`` when the registry has no entry), in the order written, each with
the repository rewritten by the first matching ``rewrite`` rule; then the registry's own
**default endpoint** with the repository unchanged: ``https://registry-1.docker.io`` for
docker.io, ``http://<host>`` for a loopback registry (127.0.0.0/8, ::1, localhost), else
``https://<host>``.

**The no-fallback switch.** k3s's ``--disable-default-registry-endpoint`` is a command-line
flag; podling puts it in the file. The default endpoint is left out — so a pull uses the
configured mirrors only and fails when none of them can serve — for a registry that

- has a ``mirrors`` entry (its own or ``"*"``) with ``disable_default_endpoint: true``, or
- has a ``mirrors`` entry (its own or ``"*"``) while top-level ``disableDefaultEndpoint: true``.

A registry with no mirrors entry at all always uses its default endpoint (it has no other).
For a fully air-gapped node, combine ``"*"`` with ``disableDefaultEndpoint: true``.

**The cluster's nodes** (``@nodes``, :data:`NODES_KEYWORD`): an endpoint list may hold the
keyword ``"@nodes"``, which stands for every node of the cluster that serves its image store
over the OCI distribution API (:mod:`podling.agent.node.registry`) — this node first, then the
other Ready nodes. The running agent fills them in (:meth:`RegistriesConfig.with_nodes`);
where no agent runs (``podling image pull``) the keyword stands for no endpoint. Node
endpoints are asked for the full normalised name (``docker.io/library/busybox``), without
rewrites, with the cluster's image-pull token, over TLS without verification (the node API's
certificates are self-signed; the content is checked against its digests as always).

**No file, no mirrors?** When ``registries.yaml`` does not exist, the configuration is
:data:`DEFAULT_REGISTRIES`: ``docker.io`` mirrored by ``@nodes``, then docker.io itself. A file
that exists is taken as written: without ``@nodes`` in it, the nodes are not asked.

Endpoint URLs: ``scheme://host[:port][/path]``; no scheme means https. An ``http://`` URL is
used over plain http — meant for a loopback registry; any other host gets a warning in the
log. The API root is the URL's path with ``/v2`` appended unless it already ends with ``/v2``.

Parsing is pure (:meth:`RegistriesConfig.from_dict`); :func:`load_registries` reads a file.
Invalid configuration raises :class:`InvalidRegistryConfig`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from podling.images.credentials import DOCKER_HUB_ALIASES, decode_basic
from podling.images.errors import ImageError
from podling.images.interface import RegistryAuth
from podling.images.refs import Reference

log = logging.getLogger(__name__)

DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
WILDCARD = "*"
NODES_KEYWORD = "@nodes"
DEFAULT_REGISTRIES: Mapping[str, Any] = {"mirrors": {"docker.io": {"endpoint": [NODES_KEYWORD]}}}


class InvalidRegistryConfig(ImageError):
    """A registries.yaml that cannot be used; the message names the offending field."""


@dataclass(frozen=True)
class TLSConfig:
    """TLS settings for one endpoint host (paths are files on this node)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class HostConfig:
    """``configs.<host>``: credentials and TLS for an endpoint host."""

    auth: RegistryAuth | None = None
    tls: TLSConfig = field(default_factory=TLSConfig)


@dataclass(frozen=True)
class Mirror:
    """``mirrors.<registry>``: endpoints, rewrite rules (compiled regex, Python replacement)."""

    endpoints: tuple[str, ...] = ()
    rewrites: tuple[tuple[re.Pattern[str], str], ...] = ()
    disable_default_endpoint: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One place to pull a reference from, with the repository to ask that place for."""

    url: str  # scheme://host[:port], no path
    api_root: str  # e.g. "/v2"
    host: str  # host[:port] as written in the URL
    repository: str  # after rewrites (mirror endpoints only)
    mirror: bool  # False for the registry's own default endpoint
    auth: RegistryAuth | None = None  # from configs.<host>.auth
    tls: TLSConfig = field(default_factory=TLSConfig)
    node: bool = False  # a cluster node's image store (``@nodes``)

    @property
    def plain_http(self) -> bool:
        return self.url.startswith("http://")

    def api_url(self, path: str) -> str:
        """``url + api_root + "/" + path`` (``path`` without a leading slash)."""
        return f"{self.url}{self.api_root}/{path.lstrip('/')}"

    def __str__(self) -> str:
        return self.url + (self.api_root if self.api_root != "/v2" else "")


@dataclass(frozen=True)
class RegistriesConfig:
    """The whole registries.yaml; an empty one means "every registry is its own endpoint"."""

    mirrors: Mapping[str, Mirror] = field(default_factory=dict)
    configs: Mapping[str, HostConfig] = field(default_factory=dict)
    disable_default_endpoint: bool = False
    node_urls: tuple[str, ...] = ()  # what ``@nodes`` stands for now (:meth:`with_nodes`)
    node_token: str = ""  # the bearer token node endpoints accept

    def with_nodes(self, urls: Sequence[str], token: str) -> "RegistriesConfig":
        """This configuration with ``@nodes`` standing for ``urls`` (node API base URLs,
        ``https://host:port``, this node first) and sending ``token`` to them."""
        return replace(self, node_urls=tuple(urls), node_token=token)

    def uses_nodes(self) -> bool:
        """True when some mirror lists ``@nodes``."""
        return any(NODES_KEYWORD in m.endpoints for m in self.mirrors.values())

    def describe(self) -> str:
        """One line naming the mirrors in force, for the log."""
        if not self.mirrors:
            return "no mirrors (every registry is pulled from directly)"
        parts = []
        for name, mirror in sorted(self.mirrors.items()):
            upstream = not (mirror.disable_default_endpoint or self.disable_default_endpoint)
            parts.append(f"{name} -> {', '.join(mirror.endpoints) or '(none)'}"
                         + (", then upstream" if upstream else " only"))
        return "; ".join(parts)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> "RegistriesConfig":
        """Build from a decoded registries.yaml (None or {} → empty configuration)."""
        doc = {} if doc is None else doc
        if not isinstance(doc, Mapping):
            raise InvalidRegistryConfig("registries.yaml: top level must be a mapping")
        mirrors = {_norm_registry(k): _parse_mirror(k, v)
                   for k, v in _mapping(doc, "mirrors").items()}
        configs = {_norm_config_key(k): _parse_host_config(k, v)
                   for k, v in _mapping(doc, "configs").items()}
        return cls(mirrors=mirrors, configs=configs,
                   disable_default_endpoint=_bool(doc, "disableDefaultEndpoint", "top level"))

    def host_config(self, host: str) -> HostConfig:
        """``configs`` for an endpoint host: exact, then the registry alias, then ``"*"``."""
        for key in (host.lower(), _norm_registry(host), WILDCARD):
            if key in self.configs:
                return self.configs[key]
        return HostConfig()

    def mirror_for(self, registry: str) -> Mirror | None:
        """The mirrors entry that applies to ``registry`` (its own, else ``"*"``), or None."""
        return self.mirrors.get(_norm_registry(registry), self.mirrors.get(WILDCARD))

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Endpoints to try for ``ref``, in order (see the module docstring)."""
        mirror = self.mirror_for(ref.registry)
        result: list[Endpoint] = []
        if mirror is not None:
            repository = _rewrite(mirror, ref.repository)
            for url in mirror.endpoints:
                if url == NODES_KEYWORD:
                    result += [self._node_endpoint(u, ref) for u in self.node_urls]
                else:
                    result.append(self._endpoint(url, repository, mirror=True))
        fallback = mirror is None or not (mirror.disable_default_endpoint
                                          or self.disable_default_endpoint)
        if fallback:
            default = self.default_endpoint(ref)
            if all((e.url, e.api_root, e.repository) !=
                   (default.url, default.api_root, default.repository) for e in result):
                result.append(default)
        return result

    def default_endpoint(self, ref: Reference) -> Endpoint:
        """The registry's own endpoint for ``ref`` (no rewrite), with its configs."""
        return self._endpoint(default_endpoint_url(ref.registry), ref.repository, mirror=False)

    def _node_endpoint(self, url: str, ref: Reference) -> Endpoint:
        base, api_root, host = split_endpoint_url(url)
        auth = RegistryAuth(registry_token=self.node_token) if self.node_token else None
        return Endpoint(url=base, api_root=api_root, host=host, mirror=True, node=True,
                        repository=f"{_norm_registry(ref.registry)}/{ref.repository}",
                        auth=auth, tls=TLSConfig(insecure_skip_verify=True))

    def _endpoint(self, url: str, repository: str, *, mirror: bool) -> Endpoint:
        base, api_root, host = split_endpoint_url(url)
        hc = self.host_config(host)
        if base.startswith("http://") and not is_loopback(host):
            log.warning("registry endpoint %s uses plain http on a non-loopback host", url)
        return Endpoint(url=base, api_root=api_root, host=host, repository=repository,
                        mirror=mirror, auth=hc.auth, tls=hc.tls)


def load_registries(path: str | os.PathLike[str], *, missing_ok: bool = True
                    ) -> RegistriesConfig:
    """Read a registries.yaml; a missing file is :data:`DEFAULT_REGISTRIES` when
    ``missing_ok``."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        if missing_ok:
            return RegistriesConfig.from_dict(DEFAULT_REGISTRIES)
        raise InvalidRegistryConfig(f"registries config {os.fspath(path)!r} does not exist")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidRegistryConfig(f"{os.fspath(path)}: not valid YAML: {e}") from e
    return RegistriesConfig.from_dict(doc)


def default_endpoint_url(registry: str) -> str:
    """The upstream endpoint of ``registry`` (docker.io → https://registry-1.docker.io)."""
    if _norm_registry(registry) == "docker.io":
        return DOCKER_HUB_ENDPOINT
    scheme = "http" if is_loopback(registry) else "https"
    return f"{scheme}://{registry}"


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_endpoint_url(url: str) -> tuple[str, str, str]:
    """``(scheme://host[:port], api_root, host[:port])`` for an endpoint URL."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InvalidRegistryConfig(f"invalid registry endpoint {url!r}")
    path = parts.path.rstrip("/")
    api_root = path if path.endswith("/v2") else path + "/v2"
    return f"{parts.scheme}://{parts.netloc}", api_root, parts.netloc


def _rewrite(mirror: Mirror, repository: str) -> str:
    for pattern, replacement in mirror.rewrites:
        if pattern.search(repository):
            new = pattern.sub(replacement, repository)
            if not new or new.startswith("/") or "//" in new or ".." in new.split("/"):
                raise InvalidRegistryConfig(
                    f"rewrite {pattern.pattern!r} turns {repository!r} into invalid {new!r}")
            return new
    return repository


def _norm_registry(name: str) -> str:
    name = name.strip().lower()
    return "docker.io" if name in DOCKER_HUB_ALIASES else name


def _norm_config_key(key: str) -> str:
    if key == WILDCARD:
        return key
    if "://" in key:
        return _norm_registry(urlsplit(key).netloc)
    return _norm_registry(key.strip().rstrip("/"))


def _mapping(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRegistryConfig(f"registries.yaml: {key!r} must be a mapping")
    return value


def _bool(doc: Mapping[str, Any], key: str, where: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRegistryConfig(f"registries.yaml: {where}: {key!r} must be true or false")
    return value


def _parse_mirror(name: str, doc: Any) -> Mirror:
    where = f"mirrors.{name}"
    if not isinstance(doc, Mapping):
        raise InvalidRegistryConfig(f"registries.yaml: {where} must be a mapping")
    endpoints = doc.get("endpoint") or []
    if isinstance(endpoints, str) or not isinstance(endpoints, list):
        raise InvalidRegistryConfig(f"registries.yaml: {where}.endpoint must be a list")
    for url in endpoints:
        if not isinstance(url, str):
            raise InvalidRegistryConfig(f"registries.yaml: {where}.endpoint: {url!r}")
        if url != NODES_KEYWORD:
            split_endpoint_url(url)
    rewrites = tuple(_compile_rewrite(where, k, v) for k, v in _mapping(doc, "rewrite").items())
    return Mirror(endpoints=tuple(endpoints), rewrites=rewrites,
                  disable_default_endpoint=_bool(doc, "disable_default_endpoint", where))


def _compile_rewrite(where: str, pattern: str, replacement: Any) -> tuple[re.Pattern[str], str]:
    if not isinstance(replacement, str):
        raise InvalidRegistryConfig(f"registries.yaml: {where}.rewrite: replacement of "
                                    f"{pattern!r} must be a string")
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise InvalidRegistryConfig(
            f"registries.yaml: {where}.rewrite: bad regex {pattern!r}: {e}") from e
    return compiled, go_replacement(replacement)


def go_replacement(text: str) -> str:
    """Translate a Go ``regexp`` replacement (``$1``, ``${1}``, ``${name}``, ``$$``) into
    Python ``re.sub`` syntax (backslashes are literal in Go, so they are escaped)."""
    out: list[str] = []
    pattern = re.compile(r"\$(\$|\{(\w+)\}|(\w+))")
    pos = 0
    for m in pattern.finditer(text):
        out.append(text[pos:m.start()].replace("\\", "\\\\"))
        group = m.group(2) or m.group(3)
        out.append("$" if m.group(1) == "$" else f"\\g<{group}>")
        pos = m.end()
    out.append(text[pos:].replace("\\", "\\\\"))
    return "".join(out)


def _parse_host_config(name: str, doc: Any) -> HostConfig:
    where = f"configs.{name}"
    if not isinstance(doc, Mapping):
        raise InvalidRegistryConfig(f"registries.yaml: {where} must be a mapping")
    auth_doc = _mapping(doc, "auth")
    tls_doc = _mapping(doc, "tls")
    tls = TLSConfig(ca_file=str(tls_doc.get("ca_file") or ""),
                    cert_file=str(tls_doc.get("cert_file") or ""),
                    key_file=str(tls_doc.get("key_file") or ""),
                    insecure_skip_verify=_bool(tls_doc, "insecure_skip_verify", where + ".tls"))
    if bool(tls.cert_file) != bool(tls.key_file):
        raise InvalidRegistryConfig(
            f"registries.yaml: {where}.tls: cert_file and key_file go together")
    return HostConfig(auth=_parse_auth(where, auth_doc), tls=tls)


def _parse_auth(where: str, doc: Mapping[str, Any]) -> RegistryAuth | None:
    username = str(doc.get("username") or "")
    password = str(doc.get("password") or "")
    if doc.get("auth"):
        try:
            username, password = decode_basic(str(doc["auth"]), what=where + ".auth")
        except ImageError as e:
            raise InvalidRegistryConfig(f"registries.yaml: {e}") from e
    auth = RegistryAuth(username=username, password=password,
                        identity_token=str(doc.get("identity_token") or ""),
                        registry_token=str(doc.get("token") or ""))
    return auth if auth != RegistryAuth() else None
