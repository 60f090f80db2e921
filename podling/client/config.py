"""Client configuration: where the API server is and how to prove who we are.

:class:`ClientConfig` is a plain dataclass; :meth:`ClientConfig.from_kubeconfig` reads the
current (or a named) context of a kubeconfig file the way kubectl does: relative file paths
are relative to the kubeconfig's directory, ``*-data`` fields are base64.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import yaml

TOKEN_FILE_RELOAD = 60.0  # seconds; a rotated token file is picked up within this time


class ConfigError(ValueError):
    """The kubeconfig is missing, malformed, or asks for something the client cannot do."""


@dataclass(frozen=True)
class ClientConfig:
    """How to reach one API server.

    ``server`` is the base URL (``https://127.0.0.1:6443``). TLS trust comes from ``ca_file``
    or ``ca_data`` (PEM), else the system store; ``insecure_skip_tls_verify`` turns checking
    off. The bearer token is ``token``, or read from ``token_file`` (re-read every minute).
    Timeouts are in seconds; ``request_timeout`` bounds every non-watch request.
    """

    server: str
    # more URLs of the same cluster (servers sharing one datastore and CA): a request that
    # cannot reach the current server fails as before, and the next one goes to the next URL
    fallback_servers: tuple[str, ...] = ()
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure_skip_tls_verify: bool = False
    token: str | None = None
    token_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    namespace: str = "default"
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    max_connections: int = 100
    user_agent: str = "podling-client/0.1"

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None,
                        **overrides: Any) -> "ClientConfig":
        """Read ``context`` (default: ``current-context``) of the kubeconfig at ``path``.

        ``overrides`` replace fields afterwards (e.g. ``request_timeout=5``).
        Raises :class:`ConfigError` for a missing file, context, cluster or user.
        """
        try:
            with open(path) as f:
                doc = yaml.safe_load(f) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
        base = os.path.dirname(os.path.abspath(path))
        ctx = _context(doc, context)
        cluster = _named(doc, "clusters", "cluster", ctx.get("cluster"))
        user = _named(doc, "users", "user", ctx.get("user")) if ctx.get("user") else {}
        fields = _cluster_fields(cluster, base) | _user_fields(user, base)
        if ctx.get("namespace"):
            fields["namespace"] = ctx["namespace"]
        return dataclasses.replace(cls(**fields), **overrides)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https server (None for plain http). Reads files: call it
        once, when building a client."""
        if not self.server.startswith("https://"):
            return None
        ctx = ssl.create_default_context(
            cafile=self.ca_file,
            cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._load_client_cert(ctx)
        return ctx

    def _load_client_cert(self, ctx: ssl.SSLContext) -> None:
        if self.client_cert_file:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        elif self.client_cert_data:
            if not self.client_key_data:
                raise ConfigError("client-certificate-data needs client-key-data")
            # ssl can only load a chain from files: write both to a private directory briefly.
            with tempfile.TemporaryDirectory(prefix="podling-client-") as tmp:
                cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
                for name, data in ((cert, self.client_cert_data), (key, self.client_key_data)):
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                ctx.load_cert_chain(cert, key)


def _context(doc: dict[str, Any], name: str | None) -> dict[str, Any]:
    name = name or doc.get("current-context")
    if not name:
        raise ConfigError("kubeconfig has no current-context and no context was named")
    return _named(doc, "contexts", "context", name)


def _named(doc: dict[str, Any], section: str, key: str, name: str | None) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return entry.get(key) or {}
    raise ConfigError(f"kubeconfig has no {key} named {name!r}")


def _path(base: str, value: str | None) -> str | None:
    if not value:
        return None
    return value if os.path.isabs(value) else os.path.join(base, value)


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def _cluster_fields(cluster: dict[str, Any], base: str) -> dict[str, Any]:
    if not cluster.get("server"):
        raise ConfigError("the kubeconfig cluster has no server")
    return {
        "server": cluster["server"].rstrip("/"),
        "ca_file": _path(base, cluster.get("certificate-authority")),
        "ca_data": _b64(cluster.get("certificate-authority-data")),
        "insecure_skip_tls_verify": bool(cluster.get("insecure-skip-tls-verify", False)),
    }


def _user_fields(user: dict[str, Any], base: str) -> dict[str, Any]:
    unsupported = sorted(k for k in ("exec", "auth-provider", "username") if user.get(k))
    if unsupported:
        raise ConfigError(f"kubeconfig user uses {', '.join(unsupported)}, which podling's "
                          f"client does not support (use a token or a client certificate)")
    return {
        "token": user.get("token") or None,
        "token_file": _path(base, user.get("tokenFile")),
        "client_cert_file": _path(base, user.get("client-certificate")),
        "client_key_file": _path(base, user.get("client-key")),
        "client_cert_data": _b64(user.get("client-certificate-data")),
        "client_key_data": _b64(user.get("client-key-data")),
    }


class TokenSource:
    """The bearer token: a fixed one, or a file re-read at most every ``reload`` seconds.

    Not thread-safe; used from the client's event loop only. A token file that cannot be
    read keeps the last good token (raises :class:`ConfigError` only if there never was one).
    """

    def __init__(self, token: str | None, token_file: str | None,
                 reload: float = TOKEN_FILE_RELOAD) -> None:
        self._token = token
        self._file = None if token else token_file
        self._reload = reload
        self._read_at = float("-inf")

    def get(self) -> str | None:
        if self._file and time.monotonic() - self._read_at >= self._reload:
            self._read_file()
        return self._token

    def _read_file(self) -> None:
        assert self._file is not None
        try:
            with open(self._file) as f:
                self._token = f.read().strip() or self._token
            self._read_at = time.monotonic()
        except OSError as exc:
            if self._token is None:
                raise ConfigError(f"cannot read tokenFile {self._file}: {exc}") from exc
