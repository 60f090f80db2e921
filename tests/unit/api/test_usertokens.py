"""User tokens kept as Secrets (podling.api.usertokens)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

from podling.api import usertokens


def test_a_token_authenticates_as_its_user_until_it_expires() -> None:
    token = usertokens.new_token()
    assert usertokens.TOKEN_PATTERN.fullmatch(token)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    secret = usertokens.token_secret(token, "alice", ["dev", "ops"], ttl_seconds=60, now=now)
    assert secret["metadata"]["name"] == "podling-token-" + token[:6]
    assert token[7:] not in str(secret) and \
        token[7:].encode() not in [base64.b64decode(v) for v in secret["data"].values()]
    owner = usertokens.owner(secret, token, now)
    assert owner == usertokens.TokenOwner("alice", ("dev", "ops", "system:authenticated"),
                                          token[:6])
    assert usertokens.owner(secret, token, now + timedelta(seconds=60)) is None


def test_wrong_tokens_and_secrets_authenticate_nobody() -> None:
    token = usertokens.new_token()
    secret = usertokens.token_secret(token, "alice", [])
    other = usertokens.new_token()
    assert usertokens.owner(secret, token[:7] + other[7:]) is None
    assert usertokens.owner(secret, "not a token") is None
    assert usertokens.owner({**secret, "type": "Opaque"}, token) is None
    garbled = {**secret, "data": {**secret["data"], "expiration": "!!"}}
    assert usertokens.owner(garbled, token) is None
    bad_time = {**secret, "data": {**secret["data"],
                                   "expiration": base64.b64encode(b"soon").decode()}}
    assert usertokens.owner(bad_time, token) is None
    assert usertokens.owner(usertokens.token_secret(token, "a:b", ["g"]), token).user == "a:b"
