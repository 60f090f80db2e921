"""authentication.k8s.io/v1 TokenReview (kr8s' ``whoami()``), against the real app in-process:
Kubernetes' tokenreview REST answers whom ``spec.token`` authenticates as, for the API
server's audiences, to callers allowed to create tokenreviews."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from podling.apiserver.app import build_app, registry_stores
from podling.apiserver.auth import ADMIN, TokenAuthenticator, User
from podling.apiserver.namespaces import ensure_built_in
from podling.apiserver.satokens import AUDIENCES
from podling.storage.memory import MemoryStore

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
ADMIN_TOKEN = "admin-token"
ACCOUNT = User("system:serviceaccount:default:builder",
               ("system:serviceaccounts", "system:serviceaccounts:default",
                "system:authenticated"),
               extra=(("authentication.kubernetes.io/pod-name", ("web",)),), uid="u-1")
ACCOUNT_TOKEN = "account-token"


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    stores = registry_stores(MemoryStore())
    await ensure_built_in(stores["namespaces"])
    app = build_app(stores, TokenAuthenticator({ADMIN_TOKEN: ADMIN, ACCOUNT_TOKEN: ACCOUNT}))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def review(client: TestClient, spec: dict, *, caller: str = ADMIN_TOKEN,
                 status: int = 201) -> dict:
    response = await client.post(PATH, headers={"Authorization": f"Bearer {caller}"},
                                 json={"apiVersion": "authentication.k8s.io/v1",
                                       "kind": "TokenReview", "spec": spec})
    assert response.status == status, await response.text()
    return await response.json()


async def test_a_known_token_names_its_user(client: TestClient) -> None:
    body = await review(client, {"token": ACCOUNT_TOKEN})
    assert (body["kind"], body["apiVersion"]) == ("TokenReview", "authentication.k8s.io/v1")
    assert body["spec"] == {"token": ACCOUNT_TOKEN}
    assert body["status"] == {
        "authenticated": True,
        "user": {"username": "system:serviceaccount:default:builder", "uid": "u-1",
                 "groups": ["system:serviceaccounts", "system:serviceaccounts:default",
                            "system:authenticated"],
                 "extra": {"authentication.kubernetes.io/pod-name": ["web"]}},
        "audiences": list(AUDIENCES)}


async def test_the_admin_token(client: TestClient) -> None:
    """kr8s' whoami(): the caller reviews its own token."""
    body = await review(client, {"token": ADMIN_TOKEN})
    assert body["status"]["user"]["username"] == ADMIN.name
    assert body["status"]["authenticated"] is True


@pytest.mark.parametrize("spec", [{"token": "nobody-has-this"},
                                  {"token": ADMIN_TOKEN, "audiences": ["vault"]}],
                         ids=["unknown-token", "other-audience"])
async def test_an_unknown_token_is_not_authenticated(client: TestClient, spec: dict) -> None:
    """Kubernetes: `authenticated` omitted (false) and an empty `user`; no error."""
    assert (await review(client, spec))["status"] == {"user": {}}


async def test_a_shared_audience_is_kept(client: TestClient) -> None:
    body = await review(client, {"token": ADMIN_TOKEN, "audiences": ["vault", *AUDIENCES]})
    assert body["status"]["audiences"] == list(AUDIENCES)


async def test_no_token_is_a_bad_request(client: TestClient) -> None:
    body = await review(client, {}, status=400)
    assert (body["reason"], body["message"]) == (
        "BadRequest", "token is required for TokenReview in authentication")


async def test_reviewing_needs_the_right_to_create_tokenreviews(client: TestClient) -> None:
    body = await review(client, {"token": ADMIN_TOKEN}, caller=ACCOUNT_TOKEN, status=403)
    assert body["message"] == (
        'tokenreviews.authentication.k8s.io is forbidden: User '
        '"system:serviceaccount:default:builder" cannot create resource "tokenreviews" in '
        'API group "authentication.k8s.io" at the cluster scope')
