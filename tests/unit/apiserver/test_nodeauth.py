"""Node credentials: the join token file, the exchange, node tokens through the REST API,
and an agent's bootstrap against a real in-process server (HTTPS, memory storage)."""

from __future__ import annotations

import os
import stat

import pytest
from inprocess import server  # noqa: F401 - fixture

from podling.agent import bootstrap
from podling.api import errors
from podling.apiserver.nodeauth import NodeAuth
from podling.apiserver.server import RunningServer
from podling.client import ApiClient, ClientConfig
from podling.util import jointoken


def join_text(server: RunningServer) -> str:
    assert server.node_auth is not None
    with open(server.node_auth.join_token_file) as f:
        return f.read().strip()


async def call(server: RunningServer, token: str, method: str, path: str, body=None):
    async with ApiClient(ClientConfig(server=server.url, token=token,
                                      ca_file=server.ca_file)) as client:
        return await client.request(method, path, body=body)


# --- files and tokens ---------------------------------------------------------------------

def test_join_token_file_pins_the_ca(server: RunningServer) -> None:
    path = server.node_auth.join_token_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = jointoken.parse(join_text(server))
    assert token is not None
    with open(server.ca_file, "rb") as f:
        assert token.ca_hash == jointoken.ca_hash(f.read())
    assert str(token) == join_text(server)


def test_join_secret_survives_restart(server: RunningServer) -> None:
    again = NodeAuth(os.path.dirname(server.node_auth.join_token_file), server.ca_file)
    assert open(again.join_token_file).read().strip() == join_text(server)


def tokens_dir(server: RunningServer) -> str:
    return server.node_auth.records.directory


async def test_issue_stores_only_a_hash_and_reloads(server: RunningServer) -> None:
    auth = server.node_auth
    token = await auth.issue("n1")
    stored = open(os.path.join(tokens_dir(server), "n1")).read()
    assert token not in stored
    assert (await auth.authenticate(token)).name == "system:node:n1"
    reloaded = NodeAuth(os.path.dirname(auth.join_token_file), server.ca_file)
    assert (await reloaded.authenticate(token)).groups[0] == "system:nodes"
    assert await reloaded.authenticate("nope") is None


async def test_issue_refuses_a_taken_name_unless_replacing(server: RunningServer) -> None:
    auth = server.node_auth
    first = await auth.issue("n1")
    with pytest.raises(errors.ApiError) as taken:
        await auth.issue("n1")
    assert taken.value.code == 409
    assert f"delete {tokens_dir(server)}/n1 on the server" in taken.value.message
    second = await auth.issue("n1", replace=True)
    assert await auth.authenticate(first) is None
    assert await auth.authenticate(second) is not None
    with pytest.raises(errors.ApiError) as bad:
        await auth.issue("Bad_Name")
    assert bad.value.code == 422


def test_parse_rejects_other_tokens() -> None:
    assert jointoken.parse("0123abcd") is None
    assert jointoken.parse("K10" + "a" * 64 + "::server:x") is None
    assert jointoken.parse("K10" + "a" * 64 + "::node:s3cret").secret == "s3cret"


# --- the exchange over HTTP ---------------------------------------------------------------

async def test_exchange_over_https(server: RunningServer) -> None:
    secret = jointoken.parse(join_text(server)).secret
    issued = await call(server, secret, "POST", "/podling/v1/nodetokens", {"nodeName": "n1"})
    assert issued["nodeName"] == "n1"
    config = await call(server, issued["token"], "GET", "/podling/v1/nodeconfig/n1")
    assert config["kubeletClientToken"] == server.node_auth.kubelet_client_token("n1")
    assert config["kubeletClientToken"] != server.node_auth.kubelet_client_token("n2")
    with pytest.raises(errors.ApiError) as other:
        await call(server, issued["token"], "GET", "/podling/v1/nodeconfig/n2")
    assert other.value.code == 403
    with pytest.raises(errors.ApiError) as again:
        await call(server, secret, "POST", "/podling/v1/nodetokens", {"nodeName": "n1"})
    assert again.value.code == 409
    with pytest.raises(errors.ApiError) as node_issues:
        await call(server, issued["token"], "POST", "/podling/v1/nodetokens",
                   {"nodeName": "n3"})
    assert node_issues.value.code == 403


async def test_join_secret_is_not_an_api_credential(server: RunningServer) -> None:
    secret = jointoken.parse(join_text(server)).secret
    with pytest.raises(errors.ApiError) as denied:
        await call(server, secret, "GET", "/api/v1/nodes")
    assert denied.value.code == 403
    with pytest.raises(errors.ApiError) as unknown:
        await call(server, "wrong", "POST", "/podling/v1/nodetokens", {"nodeName": "n1"})
    assert unknown.value.code == 401


async def test_admin_may_reissue(server: RunningServer) -> None:
    await server.node_auth.issue("n1")
    issued = await call(server, server.admin_token, "POST", "/podling/v1/nodetokens",
                        {"nodeName": "n1"})
    assert (await server.node_auth.authenticate(issued["token"])).name == "system:node:n1"


# --- the agent's side ---------------------------------------------------------------------

async def test_bootstrap_with_join_token_and_no_ca(server: RunningServer, tmp_path) -> None:
    data = str(tmp_path / "agent")
    creds = await bootstrap.resolve(server.url, join_text(server), node_name="n1",
                                    data_dir=data)
    assert creds.ca_file.startswith(data)
    assert open(creds.ca_file, "rb").read() == open(server.ca_file, "rb").read()
    assert (await server.node_auth.authenticate(creds.token)).name == "system:node:n1"
    assert creds.kubelet_client_token == server.node_auth.kubelet_client_token("n1")
    # one image-pull token for the cluster, unlike any node's kubelet-client token
    pull = server.node_auth.image_pull_token()
    assert creds.image_pull_token == pull and pull.startswith("ip1.")
    for name in ("n1", "image-pull", "image.pull"):  # not any node's token, even its HMAC
        assert pull[4:] != server.node_auth.kubelet_client_token(name)[4:]
    other = await bootstrap.resolve(server.url, join_text(server), node_name="n2",
                                    data_dir=str(tmp_path / "agent2"))
    assert other.image_pull_token == pull
    assert (await server.node_auth.authenticate(pull)) is None  # no API access with it
    again = await bootstrap.resolve(server.url, join_text(server), node_name="n1",
                                    data_dir=data)
    assert again.token == creds.token  # the saved token is reused, no second exchange


async def test_bootstrap_rejects_a_ca_that_does_not_match(server: RunningServer,
                                                          tmp_path) -> None:
    forged = jointoken.JoinToken("0" * 64, jointoken.parse(join_text(server)).secret)
    with pytest.raises(bootstrap.JoinError, match="does not match"):
        await bootstrap.resolve(server.url, str(forged), node_name="n1",
                                data_dir=str(tmp_path / "agent"))


async def test_bootstrap_rejoins_when_the_saved_token_was_revoked(server: RunningServer,
                                                                  tmp_path) -> None:
    data = str(tmp_path / "agent")
    first = await bootstrap.resolve(server.url, join_text(server), node_name="n1",
                                    data_dir=data, ca_file=server.ca_file)
    os.unlink(os.path.join(tokens_dir(server), "n1"))
    await server.node_auth.issue("n1", replace=True)  # the old token no longer works
    os.unlink(os.path.join(tokens_dir(server), "n1"))
    second = await bootstrap.resolve(server.url, join_text(server), node_name="n1",
                                     data_dir=data, ca_file=server.ca_file)
    assert second.token != first.token
    assert (await server.node_auth.authenticate(second.token)) is not None


async def test_bootstrap_with_admin_token(server: RunningServer, tmp_path) -> None:
    creds = await bootstrap.resolve(server.url, server.admin_token, node_name="n1",
                                    data_dir=str(tmp_path), ca_file=server.ca_file)
    assert creds.token == server.admin_token
    assert creds.kubelet_client_token == server.node_auth.kubelet_client_token("n1")


async def test_a_node_reads_only_the_secrets_its_pods_use(server: RunningServer) -> None:
    admin, ns = server.admin_token, "/api/v1/namespaces/default"
    for name in ("used", "unused"):
        await call(server, admin, "POST", f"{ns}/secrets",
                   {"metadata": {"name": name}, "stringData": {"k": "v"}})
    await call(server, admin, "POST", f"{ns}/pods", {
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "v", "secret": {"secretName": "used"}}]}})
    token = await server.node_auth.issue("n1")
    got = await call(server, token, "GET", f"{ns}/secrets/used")
    assert got["data"] == {"k": "dg=="}
    listed = await call(server, token, "GET", f"{ns}/secrets?fieldSelector=metadata.name%3Dused")
    assert [s["metadata"]["name"] for s in listed["items"]] == ["used"]
    for path in (f"{ns}/secrets/unused", f"{ns}/secrets", "/api/v1/secrets"):
        with pytest.raises(errors.ApiError) as denied:
            await call(server, token, "GET", path)
        assert denied.value.code == 403, path
    other = await server.node_auth.issue("n2")
    with pytest.raises(errors.ApiError) as elsewhere:
        await call(server, other, "GET", f"{ns}/secrets/used")
    assert elsewhere.value.message.endswith(
        "no relationship found between node 'n2' and this object")
