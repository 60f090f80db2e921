"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and the Bearer token flow.

State machine per endpoint (keyed by the endpoint URL)::

    unknown ──401 Basic──▶ basic   (send user:password when we have one)
       │
       └────401 Bearer──▶ bearer  (GET realm?service=…&scope=… with Basic credentials,
                                   or POST realm with an identity token (OAuth2
                                   refresh_token grant); tokens cached per
                                   (realm, service, scopes, identity) until expiry)

A request first sends what the known state allows; on 401 the transport calls
:meth:`Authorizer.on_unauthorized` once, which learns the challenge and fetches a fresh token;
a second 401 is final (RegistryUnauthorized). A ``registry_token`` is sent as a Bearer token
as is. Credentials are never sent over plain http except to a loopback host.

Not thread-safe; one Authorizer belongs to one RegistryClient on one event loop.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from podling.images.config import Endpoint, is_loopback
from podling.images.errors import RegistryError, RegistryUnauthorized
from podling.images.interface import RegistryAuth

_PARAM_RE = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)")
MIN_TOKEN_LIFETIME = 60.0
TOKEN_EXPIRY_MARGIN = 10.0
CLIENT_ID = "podling"


@dataclass(frozen=True)
class Challenge:
    """One parsed challenge: ``scheme`` lower-cased, ``params`` unquoted."""

    scheme: str
    params: dict[str, str]


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into challenges (several may share one header)."""
    challenges: list[Challenge] = []
    pos, text = 0, header or ""
    while pos < len(text):
        m = _SCHEME_RE.match(text, pos)
        if not m:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while True:
            pm = _PARAM_RE.match(text, pos)
            if not pm:
                break
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[pm.group(1).lower()] = value
            pos = pm.end()
            sep = re.match(r"\s*,\s*", text[pos:])
            if not sep:
                break
            pos += sep.end()
        challenges.append(Challenge(scheme, params))
    return challenges


def scope_for(repository: str, actions: tuple[str, ...]) -> str:
    """``repository:<repo>:<actions>``, the token scope for one repository."""
    return f"repository:{repository}:{','.join(actions)}"


def basic_header(auth: RegistryAuth) -> str:
    raw = f"{auth.username}:{auth.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _has_basic(auth: RegistryAuth | None) -> bool:
    return bool(auth and (auth.username or auth.password))


def _may_send_secret(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or is_loopback(parts.netloc)


class Authorizer:
    """Authorization headers for registry requests; caches challenges and tokens."""

    def __init__(self, session: aiohttp.ClientSession,
                 ssl_for_url: Callable[[str], Any], *, timeout: float = 30.0) -> None:
        self._session = session
        self._ssl_for_url = ssl_for_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    async def headers(self, ep: Endpoint, auth: RegistryAuth | None,
                      scope: str) -> dict[str, str]:
        """Headers for a request to ``ep`` given what we know so far (may be empty)."""
        if auth and auth.registry_token:
            return {"Authorization": f"Bearer {auth.registry_token}"}
        challenge = self._challenges.get(ep.url)
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            if _has_basic(auth) and _may_send_secret(ep.url):
                return {"Authorization": basic_header(auth)}  # type: ignore[arg-type]
            return {}
        token = await self._token(challenge, auth, scope, refresh=False)
        return {"Authorization": f"Bearer {token}"}

    async def on_unauthorized(self, ep: Endpoint, auth: RegistryAuth | None, scope: str,
                              www_authenticate: list[str]) -> bool:
        """Learn the challenge of a 401 and prepare credentials; True when a retry with new
        credentials makes sense, False when we have nothing better to send."""
        challenges = [c for h in www_authenticate for c in parse_www_authenticate(h)]
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and not (auth and auth.registry_token):
            if "realm" not in bearer.params:
                raise RegistryUnauthorized(f"{ep}: Bearer challenge without a realm")
            self._challenges[ep.url] = bearer
            await self._token(bearer, auth, scope, refresh=True)
            return True
        if basic is not None and _has_basic(auth):
            if not _may_send_secret(ep.url):
                raise RegistryUnauthorized(
                    f"{ep}: refusing to send a password over plain http to a non-loopback host")
            known = self._challenges.get(ep.url)
            self._challenges[ep.url] = basic
            return known is None or known.scheme != "basic"
        return False

    async def _token(self, challenge: Challenge, auth: RegistryAuth | None, scope: str,
                     refresh: bool) -> str:
        params = challenge.params
        scopes = tuple(sorted({s for s in (scope, params.get("scope", "")) if s}))
        who = (auth.username + "\0" + auth.identity_token) if auth else ""
        key = (params["realm"], params.get("service", ""), *scopes, who)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached and not refresh and cached[1] > time.monotonic():
                return cached[0]
            token, lifetime = await self._fetch_token(params, scopes, auth)
            self._tokens[key] = (token, time.monotonic() + lifetime - TOKEN_EXPIRY_MARGIN)
            return token

    async def _fetch_token(self, params: dict[str, str], scopes: tuple[str, ...],
                           auth: RegistryAuth | None) -> tuple[str, float]:
        realm = params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryUnauthorized(f"token realm {realm!r} is not an http(s) URL")
        secret = auth is not None and (_has_basic(auth) or bool(auth.identity_token))
        if secret and not _may_send_secret(realm):
            raise RegistryUnauthorized(
                f"refusing to send credentials over plain http to token realm {realm}")
        try:
            if auth is not None and auth.identity_token:
                body = await self._post_refresh_token(realm, params, scopes, auth)
            else:
                body = await self._get_token(realm, params, scopes, auth)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise RegistryError(f"token server {realm}: {e or type(e).__name__}") from e
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryUnauthorized(f"token server {realm} returned no token")
        try:
            lifetime = float(body.get("expires_in") or MIN_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = MIN_TOKEN_LIFETIME
        return token, max(lifetime, MIN_TOKEN_LIFETIME)

    async def _get_token(self, realm: str, params: dict[str, str], scopes: tuple[str, ...],
                         auth: RegistryAuth | None) -> dict[str, Any]:
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query += [("scope", s) for s in scopes]
        headers = {}
        if _has_basic(auth):
            query.append(("account", auth.username))  # type: ignore[union-attr]
            headers["Authorization"] = basic_header(auth)  # type: ignore[arg-type]
        async with self._session.get(realm, params=query, headers=headers,
                                     ssl=self._ssl_for_url(realm),
                                     timeout=self._timeout) as resp:
            return await self._token_body(realm, resp)

    async def _post_refresh_token(self, realm: str, params: dict[str, str],
                                  scopes: tuple[str, ...],
                                  auth: RegistryAuth) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": auth.identity_token,
                "service": params.get("service", ""), "client_id": CLIENT_ID,
                "scope": " ".join(scopes)}
        async with self._session.post(realm, data=form, ssl=self._ssl_for_url(realm),
                                      timeout=self._timeout) as resp:
            return await self._token_body(realm, resp)

    @staticmethod
    async def _token_body(realm: str, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        if resp.status in (401, 403):
            raise RegistryUnauthorized(
                f"token server {realm} refused the credentials (HTTP {resp.status})")
        if resp.status != 200:
            raise RegistryError(f"token server {realm} answered HTTP {resp.status}")
        try:
            body = await resp.json(content_type=None)
        except ValueError as e:
            raise RegistryError(f"token server {realm} returned invalid JSON") from e
        if not isinstance(body, dict):
            raise RegistryError(f"token server {realm} returned invalid JSON")
        return body
