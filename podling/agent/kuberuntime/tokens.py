"""Service account tokens of projected volumes (kubelet ``token.Manager``).

For a ``serviceAccountToken`` source the agent POSTs an ``authentication.k8s.io/v1``
TokenRequest to ``/api/v1/namespaces/NS/serviceaccounts/SA/token``: ``spec.audiences``
(the source's audience; left out when it has none, so the server's own audiences apply),
``expirationSeconds`` and ``boundObjectRef`` (the Pod, by name and uid). The answer's
``status.token`` is cached per (namespace, service account, audience, expiration, pod)
and requested again when the token is older than 80 % of its lifetime or 24 h, whichever
comes first::

    issued = status.expirationTimestamp - spec.expirationSeconds
    now < issued + min(0.8 × expirationSeconds, 24 h) ───▶ the cached token
    otherwise ───▶ a new TokenRequest; if that fails, the cached token while it is valid,
                   else TokenError("failed to fetch token: <reason>")

:meth:`TokenManager.forget_pod` drops a pod's tokens (its teardown); expired tokens of
other pods are dropped on each request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from podling.api.types import Obj
from podling.client import ApiClient
from podling.api.views import PodView
from podling.api.views.volume import ServiceAccountTokenView
from podling.util.timefmt import parse_rfc3339

MAX_TTL_SECONDS = 24 * 3600.0
REFRESH_FRACTION = 0.8

#: (namespace, service account name, TokenRequest body) → the TokenRequest with its status
TokenFetcher = Callable[[str, str, Obj], Awaitable[Obj]]


def api_fetcher(client: ApiClient) -> TokenFetcher:
    """The real fetcher: POST the TokenRequest to the service account's ``token``
    subresource."""
    async def fetch(namespace: str, account: str, body: Obj) -> Obj:
        answer: Obj = await client.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            body=body)
        return answer
    return fetch


class TokenError(Exception):
    """A token could not be had; ``message`` is the kubelet's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Token:
    token: str
    issued: float
    expires: float
    pod_uid: str

    def fresh(self, now: float) -> bool:
        lifetime = self.expires - self.issued
        return now < self.issued + min(REFRESH_FRACTION * lifetime, MAX_TTL_SECONDS)


def token_request(pod: PodView, source: ServiceAccountTokenView) -> Obj:
    """The TokenRequest body for ``source`` of ``pod``'s projected volume."""
    spec: Obj = {"expirationSeconds": source.expiration_seconds,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                    "name": pod.metadata.name, "uid": pod.metadata.uid}}
    if source.audience:
        spec["audiences"] = [source.audience]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def service_account_of(pod: PodView) -> str:
    return pod.spec.service_account_name or "default"


class TokenManager:
    """Caches and refreshes tokens (see the module docstring). One per agent; calls for
    different pods may interleave (each awaits its own request)."""

    def __init__(self, fetch: TokenFetcher, *, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._tokens: dict[tuple[str, ...], _Token] = {}

    async def get(self, pod: PodView, source: ServiceAccountTokenView) -> str:
        """The token for ``source``; raises TokenError."""
        meta = pod.metadata
        namespace, account = meta.namespace or "default", service_account_of(pod)
        key = (namespace, account, source.audience, str(source.expiration_seconds),
               meta.name, meta.uid)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and cached.fresh(now):
            return cached.token
        self._drop_expired(now)
        try:
            answer = await self._fetch(namespace, account, token_request(pod, source))
            token = _parse(answer, requested=source.expiration_seconds, now=now,
                           pod_uid=meta.uid)
        except Exception as exc:  # the API's error text, as the kubelet reports it
            if cached is not None and now < cached.expires:
                return cached.token
            raise TokenError(f"failed to fetch token: {getattr(exc, 'message', exc)}") from exc
        self._tokens[key] = token
        return token.token

    def forget_pod(self, uid: str) -> None:
        """Drop every token bound to the pod ``uid``."""
        self._tokens = {k: t for k, t in self._tokens.items() if t.pod_uid != uid}

    def _drop_expired(self, now: float) -> None:
        self._tokens = {k: t for k, t in self._tokens.items() if now < t.expires}


def _parse(answer: Obj, *, requested: int, now: float, pod_uid: str) -> _Token:
    status = answer.get("status") or {}
    token = status.get("token")
    if not isinstance(token, str) or not token:
        raise ValueError("the TokenRequest answer has no status.token")
    seconds = (answer.get("spec") or {}).get("expirationSeconds") or requested
    stamp = status.get("expirationTimestamp")
    expires = parse_rfc3339(stamp).timestamp() if isinstance(stamp, str) and stamp \
        else now + float(seconds)
    return _Token(token=token, issued=expires - float(seconds), expires=expires,
                  pod_uid=pod_uid)
