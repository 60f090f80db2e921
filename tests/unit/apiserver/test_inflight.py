"""The max-in-flight filter: a request over its budget is answered 429 at once, with
Kubernetes' Status and Retry-After; the admin and long-running requests are not counted."""

from __future__ import annotations

import asyncio
import json
import ssl

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from podling.apiserver.inflight import InflightLimits, long_running
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
                                      inflight=InflightLimits(readonly=5, mutating=1)))
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
