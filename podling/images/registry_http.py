"""HTTP transport for the registry client: TLS per endpoint, auth, bounded retries.

Retry policy (:class:`ClientOptions`): connection errors, timeouts, HTTP 5xx and 429 are
retried up to ``retries`` times with exponential back-off (``backoff`` doubling up to
``backoff_max``) — except connection errors to a cluster node (``@nodes``), which are final; other 4xx are final, except one retry after a 401 when the Authorizer has new
credentials. Status mapping after that: 404 → ManifestNotFound, 401/403 → RegistryUnauthorized,
anything else unexpected → RegistryError; every message names the method and URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp

from podling.images.config import Endpoint, RegistriesConfig, TLSConfig
from podling.images.errors import ManifestNotFound, RegistryError, RegistryUnauthorized
from podling.images.interface import RegistryAuth
from podling.images.registry_auth import Authorizer

log = logging.getLogger("podling.images.registry")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DataFactory = Callable[[], Any]


@dataclass(frozen=True)
class ClientOptions:
    """Tunables of the registry client (defaults suit a node pulling over a LAN/WAN)."""

    retries: int = 3
    backoff: float = 0.25
    backoff_max: float = 4.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0  # between two reads of a body, not the whole download
    user_agent: str = "podling/0.1"
    chunk_size: int = 256 * 1024


class Transport:
    """Sends requests to registry endpoints; owns the aiohttp session (``close()`` it)."""

    def __init__(self, config: RegistriesConfig, options: ClientOptions) -> None:
        self.options = options
        self._config = config
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": options.user_agent},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=options.connect_timeout,
                                          sock_read=options.read_timeout),
            auto_decompress=False)
        self._ssl_cache: dict[TLSConfig, ssl.SSLContext | bool] = {}
        self.auth = Authorizer(self._session, self.ssl_for_url)

    async def close(self) -> None:
        await self._session.close()

    def set_config(self, config: RegistriesConfig) -> None:
        self._config = config

    def ssl_for_url(self, url: str) -> ssl.SSLContext | bool:
        """The TLS setting for ``url``'s host from ``configs`` (True = system defaults)."""
        parts = urlsplit(url)
        if parts.scheme != "https":
            return True
        return self.ssl_for(self._config.host_config(parts.netloc).tls)

    def ssl_for(self, tls: TLSConfig) -> ssl.SSLContext | bool:
        if tls == TLSConfig():
            return True
        if tls not in self._ssl_cache:
            self._ssl_cache[tls] = _make_ssl_context(tls)
        return self._ssl_cache[tls]

    async def backoff(self, attempt: int) -> None:
        delay = min(self.options.backoff * (2 ** attempt), self.options.backoff_max)
        await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def open(self, ep: Endpoint, method: str, url: str, *, scope: str,
                   auth: RegistryAuth | None, headers: dict[str, str] | None = None,
                   data: DataFactory | None = None, expect: tuple[int, ...] = (200,),
                   ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send with retries and auth; yield the response (status in ``expect``) and release
        it afterwards. ``data`` is a factory so that a retry can re-send the body."""
        resp = await self._send(ep, method, url, scope=scope, auth=auth,
                                headers=headers or {}, data=data, expect=expect)
        try:
            yield resp
        finally:
            resp.release()

    async def _send(self, ep: Endpoint, method: str, url: str, *, scope: str,
                    auth: RegistryAuth | None, headers: dict[str, str],
                    data: DataFactory | None, expect: tuple[int, ...]) -> aiohttp.ClientResponse:
        attempt, reauthed = 0, False
        same_origin = url.startswith(ep.url + "/")
        while True:
            hdrs = dict(headers)
            if same_origin:
                hdrs.update(await self.auth.headers(ep, auth, scope))
            try:
                resp = await self._session.request(
                    method, url, headers=hdrs, data=data() if data else None,
                    ssl=self.ssl_for(ep.tls) if ep.url.startswith("https") else True)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                # a cluster node that cannot be reached is skipped at once: the next node
                # or the upstream registry serves instead
                if attempt < self.options.retries and not ep.node:
                    log.debug("%s %s: %s; retrying", method, url, e)
                    await self.backoff(attempt)
                    attempt += 1
                    continue
                raise RegistryError(f"{method} {url}: cannot reach the registry: "
                                    f"{_describe(e)}") from e
            if resp.status == 401 and not reauthed and same_origin:
                challenge = resp.headers.getall("WWW-Authenticate", [])
                resp.release()
                if await self.auth.on_unauthorized(ep, auth, scope, challenge):
                    reauthed = True
                    continue
                raise RegistryUnauthorized(f"{method} {url}: authentication required"
                                           + ("" if auth else " (no credentials configured)"))
            if resp.status in expect:
                return resp
            if resp.status in RETRYABLE_STATUS and attempt < self.options.retries:
                resp.release()
                log.debug("%s %s: HTTP %d; retrying", method, url, resp.status)
                await self.backoff(attempt)
                attempt += 1
                continue
            await _raise_for(method, url, resp)

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session


async def _raise_for(method: str, url: str, resp: aiohttp.ClientResponse) -> None:
    detail = await _error_detail(resp)
    resp.release()
    message = f"{method} {url}: HTTP {resp.status}{detail}"
    if resp.status == 404:
        raise ManifestNotFound(message)
    if resp.status in (401, 403):
        raise RegistryUnauthorized(message)
    raise RegistryError(message)


async def _error_detail(resp: aiohttp.ClientResponse) -> str:
    """The registry's ``errors[].code: message`` list, if the body has one."""
    try:
        body = json.loads(await resp.content.read(64 * 1024))
        errors = body.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                 for e in errors if isinstance(e, dict)]
        return f" ({'; '.join(parts)})" if parts else ""
    except (ValueError, AttributeError, aiohttp.ClientError, asyncio.TimeoutError):
        return ""


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _make_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as e:
        raise RegistryError(f"TLS configuration: {e}") from e
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
