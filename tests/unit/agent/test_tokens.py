"""The service account token manager: the TokenRequest it sends, caching, refresh at 80 %
of the lifetime (at most 24 h), the old token while a refresh fails, and forgetting."""

from __future__ import annotations

import asyncio

import pytest

from podling.agent.kuberuntime.tokens import TokenError, TokenManager
from podling.api.errors import ApiError
from podling.api.views import PodView
from podling.api.views.volume import ServiceAccountTokenView
from podling.util.clock import FakeClock
from podling.util.timefmt import epoch_rfc3339

POD = PodView.from_obj({"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1"},
                        "spec": {"serviceAccountName": "robot"}})


class FakeTokenApi:
    """Answers TokenRequests like the API server, with a call log and error injection."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str, dict]] = []
        self.fail: Exception | None = None

    async def __call__(self, namespace: str, account: str, body: dict) -> dict:
        self.calls.append((namespace, account, body))
        if self.fail is not None:
            raise self.fail
        seconds = body["spec"]["expirationSeconds"]
        return {**body, "status": {"token": f"token-{len(self.calls)}",
                                   "expirationTimestamp": epoch_rfc3339(self.clock() + seconds)}}


def manager() -> tuple[TokenManager, FakeTokenApi, FakeClock]:
    clock = FakeClock(1_700_000_000.0)
    api = FakeTokenApi(clock)
    return TokenManager(api, clock=clock), api, clock


def get(tokens: TokenManager, seconds: int = 3600, audience: str = "") -> str:
    source = ServiceAccountTokenView(path="token", audience=audience, expiration_seconds=seconds)
    return asyncio.run(tokens.get(POD, source))


def test_the_token_request() -> None:
    tokens, api, _ = manager()
    assert get(tokens, 3607) == "token-1"
    namespace, account, body = api.calls[0]
    assert (namespace, account) == ("ns1", "robot")
    assert body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3607,
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                                "name": "web", "uid": "u-1"}}}
    get(tokens, 3607, audience="vault")
    assert api.calls[1][2]["spec"]["audiences"] == ["vault"]


@pytest.mark.parametrize("seconds,fresh_for", [
    (3600, 2880),           # 80 % of an hour
    (7 * 24 * 3600, 24 * 3600),  # a week-long token: refreshed after 24 h
])
def test_refresh_at_80_percent_or_a_day(seconds, fresh_for) -> None:
    tokens, api, clock = manager()
    assert get(tokens, seconds) == "token-1"
    clock.advance(fresh_for - 1)
    assert get(tokens, seconds) == "token-1" and len(api.calls) == 1
    clock.advance(1)
    assert get(tokens, seconds) == "token-2" and len(api.calls) == 2
    assert get(tokens, seconds) == "token-2"


def test_a_failed_refresh_keeps_the_valid_token_then_fails() -> None:
    tokens, api, clock = manager()
    get(tokens)
    clock.advance(3000)
    api.fail = ApiError(404, "NotFound", 'serviceaccounts "robot" not found')
    assert get(tokens) == "token-1"  # still valid for 600 s
    clock.advance(600)
    with pytest.raises(TokenError) as err:
        get(tokens)
    assert err.value.message == 'failed to fetch token: serviceaccounts "robot" not found'


def test_tokens_are_per_audience_and_forgotten_with_the_pod() -> None:
    tokens, api, _ = manager()
    assert get(tokens) == "token-1"
    assert get(tokens, audience="other") == "token-2"
    assert get(tokens) == "token-1"
    tokens.forget_pod("u-1")
    assert get(tokens) == "token-3"
