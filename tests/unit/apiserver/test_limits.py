"""The request limits: a request over its in-flight budget is answered 429 at once, with
Kubernetes' Status and Retry-After (the admin and long-running requests are not counted);
one that takes longer than the request timeout, or its own ``?timeout=``, gets 504."""

from __future__ import annotations

import asyncio
import json
import ssl

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from podling.api.errors import ApiError
from podling.apiserver.limits import RequestLimits, long_running, requested_timeout
from podling.apiserver.server import ServerConfig, start
from podling.client import ApiClient, ClientConfig


@pytest.mark.parametrize("path, expected", [
    ("/api/v1/namespaces/d/pods", False),
    ("/api/v1/namespaces/d/pods?watch=true", True),
    ("/api/v1/namespaces/d/pods?watch=1", True),
    ("/api/v1/namespaces/d/pods?watch=false", False),
    ("/api/v1/watch/namespaces/d/pods", True),
    ("/apis/coordination.k8s.io/v1/watch/leases", True),
    ("/api/v1/namespaces/watch/pods", False),  # a namespace named "watch"
    ("/api/v1/namespaces/d/pods/p/log", True),
    ("/api/v1/namespaces/d/pods/p/exec", True),
    ("/api/v1/namespaces/d/pods/p/attach", True),
    ("/api/v1/namespaces/d/pods/p/portforward", True),
    ("/api/v1/namespaces/d/pods/p/status", False),
])
def test_long_running_requests_are_told_apart(path: str, expected: bool) -> None:
    assert long_running(make_mocked_request("GET", path)) is expected


async def test_a_request_over_the_budget_is_429_until_one_finishes(tmp_path) -> None:
    server = await start(ServerConfig(data_dir=str(tmp_path), port=0, datastore="memory",
                                      service_account_admission=False,
                                      limits=RequestLimits(readonly=5, mutating=1)))
    events = f"{server.url}/api/v1/namespaces/default/events"
    try:
        token = await server.node_auth.issue("n1")  # not system:masters: counted
        tls = ssl.create_default_context(cafile=server.ca_file)
        _, slow = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls)
        slow.write((f"POST /api/v1/namespaces/default/events HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: 100\r\n\r\n{{").encode())  # the body never ends
        await slow.drain()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        admin = ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path))
        async with aiohttp.ClientSession() as session, admin:
            async def post() -> tuple[int, dict, dict]:
                async with session.post(events, data=json.dumps({"metadata": {"name": "e"}}),
                                        ssl=tls, headers=headers) as response:
                    return response.status, dict(response.headers), await response.json()
            for _ in range(100):  # until the slow request is being served
                status, got_headers, answer = await post()
                if status == 429:
                    break
                await asyncio.sleep(0.02)
            assert (status, got_headers["Retry-After"]) == (429, "1")
            assert answer == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "code": 429, "reason": "TooManyRequests",
                              "message": "Too many requests, please try again later.",
                              "details": {"retryAfterSeconds": 1}}
            async with session.get(f"{server.url}/api/v1/pods", ssl=tls,
                                   headers=headers) as response:
                assert response.status != 429  # reads have their own budget
            await admin.create("namespaces", {"metadata": {"name": "masters-pass"}})
            slow.close()  # the slow request ends
            for _ in range(100):
                if (await post())[0] != 429:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("still 429 after the slow request ended")
    finally:
        await server.stop()


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("1m30s", 90), ("500ms", 0.5),
                                           ("1h", 3600), ("2.5s", 2.5)])
def test_requested_timeouts_are_go_durations(text: str, seconds: float) -> None:
    assert requested_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "soon", "1m x", "-1s"])
def test_a_requested_timeout_that_is_no_duration_is_400(text: str) -> None:
    with pytest.raises(ApiError) as info:
        requested_timeout(text)
    assert info.value.code == 400
    assert info.value.message.startswith("invalid timeout specified in the request URL")


async def slow_post(server, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST whose body never ends, as the admin."""
    tls = ssl.create_default_context(cafile=server.ca_file)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  f"{server.admin_token}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: 100\r\n\r\n{{").encode())
    await writer.drain()
    return reader, writer


async def answer(reader: asyncio.StreamReader) -> tuple[str, dict]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    length = int(next(line.split(":")[1] for line in head.split("\r\n")
                      if line.lower().startswith("content-length")))
    return head.split("\r\n")[0], json.loads(await reader.readexactly(length))


@pytest.mark.parametrize("server_timeout, query", [(0.3, ""), (60.0, "?timeout=300ms")])
async def test_a_request_that_takes_too_long_is_504(tmp_path, server_timeout: float,
                                                    query: str) -> None:
    server = await start(ServerConfig(data_dir=str(tmp_path), port=0, datastore="memory",
                                      service_account_admission=False,
                                      limits=RequestLimits(request_timeout=server_timeout)))
    try:
        reader, writer = await slow_post(server, f"/api/v1/namespaces/default/pods{query}")
        line, status = await answer(reader)
        assert line == "HTTP/1.1 504 Gateway Timeout"
        assert (status["reason"], status["message"]) == (
            "Timeout", "Timeout: request did not complete within requested timeout - "
            "context deadline exceeded")
        writer.close()
    finally:
        await server.stop()
