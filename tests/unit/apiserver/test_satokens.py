"""Service-account JWTs: signing, verification, the key file, and tampering."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from podling.apiserver import satokens
from podling.apiserver.satokens import ISSUER, Ref, TokenError, TokenSigner, claims

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> TokenSigner:
    return TokenSigner.load_or_create(str(tmp_path_factory.mktemp("server")))


def _parts(token: str) -> list[dict]:
    return [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
            for p in token.split(".")[:2]]


def _token(signer: TokenSigner, **kwargs) -> str:
    options = dict(audiences=[ISSUER], expiration_seconds=3600, now=NOW)
    options.update(kwargs)
    return signer.sign(claims("ns1", Ref("sa", "sa-uid"), **options))


def test_claims_are_kubernetes_bound_token_claims(signer: TokenSigner) -> None:
    token = _token(signer, pod=Ref("web", "pod-uid"), node=Ref("n1", "node-uid"),
                   warn_after_seconds=3607)
    header, payload = _parts(token)
    assert header == {"alg": "RS256", "kid": signer.key_id}
    assert payload["sub"] == "system:serviceaccount:ns1:sa"
    assert (payload["iss"], payload["aud"]) == (ISSUER, [ISSUER])
    assert (payload["iat"], payload["nbf"], payload["exp"]) == (NOW, NOW, NOW + 3600)
    assert payload["jti"]
    assert payload["kubernetes.io"] == {
        "namespace": "ns1", "serviceaccount": {"name": "sa", "uid": "sa-uid"},
        "pod": {"name": "web", "uid": "pod-uid"}, "node": {"name": "n1", "uid": "node-uid"},
        "warnafter": NOW + 3607}
    assert signer.verify(token, now=NOW + 10) == payload


@pytest.mark.parametrize("offset, valid", [
    (-61, False), (-59, True), (3600 + 59, True), (3600 + 61, False)])
def test_lifetime_with_kubernetes_leeway(signer: TokenSigner, offset: int, valid: bool) -> None:
    token = _token(signer)
    if valid:
        signer.verify(token, now=NOW + offset)
    else:
        with pytest.raises(TokenError):
            signer.verify(token, now=NOW + offset)


def test_audience_must_match(signer: TokenSigner) -> None:
    token = _token(signer, audiences=["vault"])
    with pytest.raises(TokenError):
        signer.verify(token, now=NOW)
    assert signer.verify(token, audiences=("vault",), now=NOW)["aud"] == ["vault"]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),   # signature
    lambda t: ".".join([t.split(".")[0], base64.urlsafe_b64encode(json.dumps(
        {**_parts(t)[1], "sub": "system:serviceaccount:ns1:admin"}).encode()).decode()
        .rstrip("="), t.split(".")[2]]),                                  # payload
    lambda t: "garbage",
    lambda t: "a.b.c",
    lambda t: "e30.e30.",                                                 # {}.{}
])
def test_tampered_tokens_are_refused(signer: TokenSigner, mangle) -> None:
    with pytest.raises(TokenError):
        signer.verify(mangle(_token(signer)), now=NOW)


def test_another_key_is_refused(signer: TokenSigner, tmp_path) -> None:
    other = TokenSigner.load_or_create(str(tmp_path))
    with pytest.raises(TokenError):
        signer.verify(_token(other), now=NOW)


def test_none_algorithm_is_refused(signer: TokenSigner) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    body = _token(signer).split(".")[1]
    with pytest.raises(TokenError):
        signer.verify(f"{header}.{body}.", now=NOW)


def test_key_is_created_once_private(tmp_path) -> None:
    first = TokenSigner.load_or_create(str(tmp_path))
    path = os.path.join(tmp_path, satokens.KEY_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = TokenSigner.load_or_create(str(tmp_path))
    assert again.key_id == first.key_id
    assert again.verify(_token(first), now=NOW)["sub"].endswith(":sa")
