"""ApiClient against a real in-process API server: config, CRUD, status, patches, bind,
errors as ApiError, connection failures, and watch streams."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import socket
from typing import Any, AsyncIterator

import pytest
import yaml

from builders import make_pod
from client_testlib import ca_file
from podling.api.resources import LEASES, NODES, PODS
from podling.client import (ApiClient, ApiConnectionError, ApiError, ClientConfig, ConfigError,
                            Expired, resource_path)
from podling.client.rest import _lines

Obj = dict[str, Any]


# --- configuration --------------------------------------------------------------------------

def test_from_kubeconfig_reads_the_servers_kubeconfig(server) -> None:
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path)
    assert config.server == server.url
    assert config.ca_data and b"BEGIN CERTIFICATE" in config.ca_data
    assert config.token and config.namespace == "default"


def _write_kubeconfig(path: str, cluster: Obj, user: Obj, namespace: str = "") -> None:
    context: Obj = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "other",
           "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "other", "context": {"cluster": "missing"}},
                        {"name": "mine", "context": context}]}
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)


async def test_kubeconfig_with_relative_ca_file_token_file_and_named_context(server, tmp_path
                                                                              ) -> None:
    token = ClientConfig.from_kubeconfig(server.config.kubeconfig_path).token
    (tmp_path / "ca.crt").write_bytes(pathlib.Path(ca_file(server)).read_bytes())
    (tmp_path / "token").write_text(token + "\n")
    path = str(tmp_path / "kc")
    _write_kubeconfig(path, {"server": server.url, "certificate-authority": "ca.crt"},
                      {"tokenFile": "token"}, namespace="kube-system")
    config = ClientConfig.from_kubeconfig(path, context="mine")
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.token_file == str(tmp_path / "token")
    assert config.namespace == "kube-system"
    async with ApiClient(config) as api:
        assert (await api.get("namespaces", "kube-system"))["metadata"]["name"] == "kube-system"


async def test_insecure_skip_tls_verify(server, tmp_path) -> None:
    token = ClientConfig.from_kubeconfig(server.config.kubeconfig_path).token
    path = str(tmp_path / "kc")
    _write_kubeconfig(path, {"server": server.url, "insecure-skip-tls-verify": True},
                      {"token": token})
    async with ApiClient(ClientConfig.from_kubeconfig(path, context="mine")) as api:
        items, _ = await api.list("namespaces")
    assert {"default", "kube-system"} <= {ns["metadata"]["name"] for ns in items}


@pytest.mark.parametrize("context, user, message", [
    (None, {"token": "x"}, "no cluster named 'missing'"),
    ("nope", {"token": "x"}, "no context named 'nope'"),
    ("mine", {"exec": {"command": "x"}}, "exec"),
])
def test_kubeconfig_errors(tmp_path, context, user, message) -> None:
    path = str(tmp_path / "kc")
    _write_kubeconfig(path, {"server": "https://127.0.0.1:1"}, user)
    with pytest.raises(ConfigError, match=message):
        ClientConfig.from_kubeconfig(path, context=context)


def test_missing_kubeconfig_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        ClientConfig.from_kubeconfig(str(tmp_path / "absent"))


@pytest.mark.parametrize("args, path", [
    ((PODS,), "/api/v1/pods"),
    ((PODS, "ns1"), "/api/v1/namespaces/ns1/pods"),
    ((PODS, "ns1", "web", "status"), "/api/v1/namespaces/ns1/pods/web/status"),
    ((NODES, None, "n1"), "/api/v1/nodes/n1"),
    ((LEASES, "kube-node-lease", "n1"),
     "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"),
])
def test_resource_path(args, path) -> None:
    assert resource_path(*args) == path


def test_resource_path_rejects_a_namespace_for_cluster_scoped_resources() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        resource_path(NODES, "default", "n1")


# --- CRUD -----------------------------------------------------------------------------------

async def test_create_get_list_update(client: ApiClient) -> None:
    created = await client.create("pods", make_pod("web").labels(app="web").bare().build())
    assert created["metadata"]["namespace"] == "default" and created["metadata"]["uid"]
    await client.create(PODS, make_pod("db").labels(app="db").bare().build())
    got = await client.get("pods", "web")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]

    items, rv = await client.list("pods", "default", label_selector="app=web")
    assert [p["metadata"]["name"] for p in items] == ["web"] and int(rv) > 0
    items, _ = await client.list("pods")  # all namespaces
    assert {p["metadata"]["name"] for p in items} == {"web", "db"}
    items, _ = await client.list("pods", field_selector="metadata.name=db")
    assert [p["metadata"]["name"] for p in items] == ["db"]

    got["metadata"]["labels"]["tier"] = "front"
    updated = await client.update("pods", got)
    assert updated["metadata"]["labels"] == {"app": "web", "tier": "front"}
    with pytest.raises(ApiError) as info:
        await client.update("pods", got)  # stale resourceVersion
    assert (info.value.code, info.value.reason) == (409, "Conflict")


async def test_update_status_changes_only_status(client: ApiClient) -> None:
    pod = await client.create("pods", make_pod("web").bare().build())
    pod["status"]["phase"] = "Running"
    pod["metadata"]["labels"] = {"ignored": "yes"}
    updated = await client.update_status("pods", pod)
    assert updated["status"]["phase"] == "Running"
    assert not updated["metadata"].get("labels")


async def test_cluster_scoped_and_grouped_resources(client: ApiClient) -> None:
    node = await client.create("nodes", {"apiVersion": "v1", "kind": "Node",
                                         "metadata": {"name": "n1"}})
    assert "namespace" not in node["metadata"]
    assert (await client.get(NODES, "n1"))["metadata"]["name"] == "n1"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}
    await client.create(LEASES, lease, namespace="kube-node-lease")
    got = await client.get("leases", "n1", "kube-node-lease")
    assert got["spec"]["holderIdentity"] == "n1"
    with pytest.raises(ValueError, match="cluster-scoped"):
        await client.get("nodes", "n1", namespace="default")


# --- patch ----------------------------------------------------------------------------------

async def test_patch_types(client: ApiClient) -> None:
    await client.create("pods", make_pod("web").labels(app="web").bare().build())
    merged = await client.patch("pods", "web", {"metadata": {"labels": {"app": None, "x": "1"}}})
    assert merged["metadata"]["labels"] == {"x": "1"}

    strategic = await client.patch(
        "pods", "web", {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}},
        patch_type="strategic")
    assert [(c["name"], c["image"]) for c in strategic["spec"]["containers"]] == \
        [("c", "busybox:2")]

    jsonpatch = await client.patch(
        "pods", "web", [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}],
        patch_type="json")
    assert jsonpatch["metadata"]["annotations"] == {"a": "b"}

    status = await client.patch("pods", "web", {"status": {"phase": "Running"}},
                                subresource="status")
    assert status["status"]["phase"] == "Running"


async def test_bad_patches(client: ApiClient) -> None:
    await client.create("pods", make_pod("web").bare().build())
    with pytest.raises(ValueError, match="patch_type"):
        await client.patch("pods", "web", {}, patch_type="apply")  # type: ignore[arg-type]
    with pytest.raises(ApiError) as info:
        await client.patch("pods", "web", [{"op": "test", "path": "/metadata/name",
                                            "value": "other"}], patch_type="json")
    assert 400 <= info.value.code < 500


# --- delete and bind ------------------------------------------------------------------------

async def test_delete_unbound_pod_then_not_found(client: ApiClient) -> None:
    pod = await client.create("pods", make_pod("web").bare().build())
    with pytest.raises(ApiError) as info:
        await client.delete("pods", "web", preconditions={"uid": "not-the-uid"})
    assert (info.value.code, info.value.reason) == (409, "Conflict")
    await client.delete("pods", "web", preconditions={"uid": pod["metadata"]["uid"]})
    with pytest.raises(ApiError) as info:
        await client.get("pods", "web")
    error = info.value
    assert (error.code, error.reason) == (404, "NotFound")
    assert error.message == 'pods "web" not found'
    assert error.details == {"name": "web", "kind": "pods"}


async def test_graceful_delete_of_a_bound_pod(client: ApiClient) -> None:
    await client.create("pods", make_pod("web").node("n1").bare().build())
    marked = await client.delete("pods", "web", grace_period=20)
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 20
    await client.delete("pods", "web", grace_period=0)
    with pytest.raises(ApiError, match="not found"):
        await client.get("pods", "web")


async def test_bind(client: ApiClient) -> None:
    pod = await client.create("pods", make_pod("web").bare().build())
    with pytest.raises(ApiError) as info:
        await client.bind("default", "web", "n1", uid="wrong-uid")
    assert info.value.code == 409
    await client.bind("default", "web", "n1", uid=pod["metadata"]["uid"])
    bound = await client.get("pods", "web")
    assert bound["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True"
               for c in bound["status"]["conditions"])
    with pytest.raises(ApiError) as info:
        await client.bind("default", "web", "n2")
    assert (info.value.code, info.value.reason) == (409, "Conflict")


# --- errors ---------------------------------------------------------------------------------

async def test_already_exists_and_invalid(client: ApiClient) -> None:
    await client.create("pods", make_pod("web").bare().build())
    with pytest.raises(ApiError) as info:
        await client.create("pods", make_pod("web").bare().build())
    assert (info.value.code, info.value.reason) == (409, "AlreadyExists")
    bad = make_pod("bad").container("c", image="").bare().build()
    with pytest.raises(ApiError) as info:
        await client.create("pods", bad)
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    assert info.value.details is not None
    assert [c["field"] for c in info.value.details["causes"]] == ["spec.containers[0].image"]


async def test_wrong_token_is_unauthorized(server) -> None:
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path, token="wrong")
    async with ApiClient(config) as api:
        with pytest.raises(ApiError) as info:
            await api.list("pods")
    assert (info.value.code, info.value.reason) == (401, "Unauthorized")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_refused_is_a_connection_error(server) -> None:
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path,
                                          server=f"https://127.0.0.1:{_free_port()}")
    async with ApiClient(config) as api:
        with pytest.raises(ApiConnectionError) as info:
            await api.get("pods", "x")
    assert isinstance(info.value, ConnectionError)
    assert "127.0.0.1" in str(info.value)


async def test_an_unreachable_server_sends_the_next_requests_to_a_fallback(server) -> None:
    dead = f"https://127.0.0.1:{_free_port()}"
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path, server=dead,
                                          fallback_servers=(server.url,))
    async with ApiClient(config) as api:
        assert api.server == dead
        with pytest.raises(ApiConnectionError, match=dead):  # not retried behind its back
            await api.get("namespaces", "default")
        assert api.server == server.url
        assert (await api.get("namespaces", "default"))["metadata"]["name"] == "default"
        assert api.server == server.url  # answers, even errors, keep the current server
        with pytest.raises(ApiError):
            await api.get("namespaces", "nope")
        assert api.server == server.url


async def test_a_failing_fallback_goes_round_to_the_first_server(server) -> None:
    dead = f"https://127.0.0.1:{_free_port()}"
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path,
                                          fallback_servers=(dead,))
    async with ApiClient(config) as api:
        api._failed(server.url)  # as after a broken connection
        with pytest.raises(ApiConnectionError):
            await api.list("pods")
        assert api.server == server.url
        await api.list("pods")


async def test_untrusted_certificate_is_a_connection_error(server, start_server) -> None:
    other = await start_server()  # a different CA
    config = ClientConfig.from_kubeconfig(other.config.kubeconfig_path, server=server.url)
    async with ApiClient(config) as api:
        with pytest.raises(ApiConnectionError, match="(?i)certificate"):
            await api.list("pods")


async def test_closed_client_refuses_requests(server) -> None:
    api = ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path))
    await api.list("pods")
    await api.close()
    await api.close()
    with pytest.raises(RuntimeError, match="closed"):
        await api.list("pods")


# --- watch ----------------------------------------------------------------------------------

async def _collect(events: AsyncIterator[tuple[str, Obj]], count: int,
                   skip_bookmarks: bool = True) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async for type_, obj in events:
        if type_ == "BOOKMARK" and skip_bookmarks:
            continue
        seen.append((type_, obj["metadata"].get("name", "")))
        if len(seen) == count:
            break
    return seen


async def test_watch_streams_changes_in_order(client: ApiClient) -> None:
    await client.create("pods", make_pod("old").bare().build())
    _, rv = await client.list("pods", "default")
    async with contextlib.aclosing(client.watch("pods", "default", resource_version=rv)) as events:
        collector = asyncio.create_task(_collect(events, 3))
        await client.create("pods", make_pod("web").bare().build())
        await client.patch("pods", "web", {"metadata": {"labels": {"a": "b"}}})
        await client.delete("pods", "web")
        seen = await asyncio.wait_for(collector, 5)
    assert seen == [("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "web")]


async def test_watch_from_zero_starts_with_the_current_state(client: ApiClient) -> None:
    for name in ("a", "b"):
        await client.create("pods", make_pod(name).labels(app=name).bare().build())
    events = client.watch("pods", "default", resource_version="0", label_selector="app=b")
    async with contextlib.aclosing(events):
        assert await asyncio.wait_for(_collect(events, 1), 5) == [("ADDED", "b")]


async def test_watch_bookmarks_and_timeout(client: ApiClient) -> None:
    _, rv = await client.list("pods")
    events = client.watch("pods", resource_version=rv, timeout_seconds=1)
    types = [type_ async for type_, _ in events]  # ends by itself after about a second
    assert types and set(types) == {"BOOKMARK"}
    types = [t async for t, _ in client.watch("pods", resource_version=rv, timeout_seconds=1,
                                              allow_bookmarks=False)]
    assert types == []


async def test_watch_from_a_compacted_version_raises_expired(start_server) -> None:
    server = await start_server(history=3)
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        _, rv = await api.list("pods")
        for i in range(6):
            await api.create("pods", make_pod(f"p{i}").bare().build())
        with pytest.raises(Expired) as info:
            async for _ in api.watch("pods", resource_version=rv):
                pass
    assert (info.value.code, info.value.reason) == (410, "Expired")
    assert isinstance(info.value, ApiError)


async def test_watch_ends_with_a_connection_error_when_the_server_goes_away(start_server
                                                                            ) -> None:
    server = await start_server()
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        _, rv = await api.list("pods")
        events = api.watch("pods", resource_version=rv, allow_bookmarks=False)

        async def drain() -> None:
            async for _ in events:
                pass

        task = asyncio.create_task(drain())
        await asyncio.sleep(0.2)
        await server.stop()
        # the server ends streams on shutdown: cleanly, or with a cut connection
        with contextlib.suppress(ApiConnectionError):
            await asyncio.wait_for(task, 5)
        with pytest.raises(ApiConnectionError):
            await api.list("pods")


class _Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


@pytest.mark.parametrize("chunks, lines", [
    ([b'{"a":1}\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}']),
    ([b'{"a"', b':1}\n{"b', b'":2}\n'], [b'{"a":1}', b'{"b":2}']),
    ([b'{"a":1}\n\n', b'\n{"b":2}'], [b'{"a":1}', b'{"b":2}']),  # no final newline
    ([b"", b"\n"], []),
])
async def test_lines_split_whatever_the_chunking(chunks, lines) -> None:
    assert [line async for line in _lines(_Chunks(chunks))] == lines  # type: ignore[arg-type]


async def test_token_file_is_reread(server, tmp_path) -> None:
    token = ClientConfig.from_kubeconfig(server.config.kubeconfig_path).token
    token_path = tmp_path / "token"
    token_path.write_text("wrong")
    base = ClientConfig.from_kubeconfig(server.config.kubeconfig_path)
    config = dataclasses.replace(base, token=None, token_file=str(token_path))
    async with ApiClient(config) as api:
        api._tokens._reload = 0.0  # re-read on every request for this test
        with pytest.raises(ApiError, match="Unauthorized"):
            await api.list("pods")
        token_path.write_text(token or "")
        await api.list("pods")


def test_ca_data_is_decoded_from_base64(server) -> None:
    config = ClientConfig.from_kubeconfig(server.config.kubeconfig_path)
    assert config.ca_data == pathlib.Path(ca_file(server)).read_bytes()
