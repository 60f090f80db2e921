"""The grpc probe handler against a real grpc.health.v1 server on 127.0.0.1 (h2, port 0):
SERVING, NOT_SERVING, an unknown service, a server that never answers, one that never
speaks HTTP/2, and a refused connection, each with the kubelet's message."""

from __future__ import annotations

import asyncio
import socket

import pytest
from grpc_health_server import serve_health

from podling.agent.prober.grpc import decode_status, encode_request, grpc_probe
from podling.agent.prober.handlers import FAILURE, SUCCESS, ProbeTarget, run_probe
from podling.api.views import ContainerView, ProbeView

SERVING, NOT_SERVING = 1, 2


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_request_and_response_encoding() -> None:
    assert encode_request("") == b"\x00\x00\x00\x00\x00"
    assert encode_request("db") == b"\x00\x00\x00\x00\x04\x0a\x02db"
    assert decode_status(b"") == 0
    assert decode_status(b"\x08\x02") == 2
    assert decode_status(b"\x12\x01x\x08\x01") == 1  # an unknown field is skipped
    with pytest.raises(ValueError):
        decode_status(b"\x08")


async def test_serving_and_not_serving() -> None:
    async with serve_health({"": SERVING, "db": NOT_SERVING}) as server:
        assert await grpc_probe("127.0.0.1", server.port, "", 1.0) == (True, "service healthy")
        assert await grpc_probe("127.0.0.1", server.port, "db", 1.0) == (
            False, 'service unhealthy (responded with "NOT_SERVING")')
        server.statuses["db"] = SERVING
        assert (await grpc_probe("127.0.0.1", server.port, "db", 1.0))[0]
        assert server.calls == 3


async def test_an_unknown_service_is_a_not_found_error() -> None:
    async with serve_health({"": SERVING}) as server:
        assert await grpc_probe("127.0.0.1", server.port, "nope", 1.0) == (
            False, "error: health rpc probe failed: rpc error: code = NotFound "
                   "desc = unknown service")


async def test_a_call_without_answer_times_out() -> None:
    async with serve_health({"": SERVING}) as server:
        server.mode = "hang"
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await grpc_probe("127.0.0.1", server.port, "", 1.0) == (
            False, "timeout: health rpc did not complete within 1s")
        assert 0.9 < loop.time() - began < 3.0 and server.calls == 1


async def test_a_server_without_http2_and_a_refused_port_time_out_connecting() -> None:
    async with serve_health({"": SERVING}) as server:
        server.mode = "silent"
        assert await grpc_probe("127.0.0.1", server.port, "", 1.0) == (
            False, f'timeout: failed to connect service "127.0.0.1:{server.port}" within 1s: '
                   "context deadline exceeded")
    port = closed_port()  # gRPC's blocking dial retries a refused connection until the end
    assert await grpc_probe("127.0.0.1", port, "", 1.0) == (
        False, f'timeout: failed to connect service "127.0.0.1:{port}" within 1s: '
               "context deadline exceeded")


async def test_run_probe_targets_the_pod_ip() -> None:
    container = ContainerView.from_obj({"name": "c", "image": "i"})
    async with serve_health({"": SERVING, "db": NOT_SERVING}) as server:
        def target(ip: str) -> ProbeTarget:
            return ProbeTarget(container=container, pod_ip=ip, session=None,  # type: ignore
                               exec_sync=None)  # type: ignore
        ok = ProbeView.from_obj({"grpc": {"port": server.port}})
        bad = ProbeView.from_obj({"grpc": {"port": server.port, "service": "db"}})
        assert ok is not None and bad is not None
        out = await run_probe(ok, target("127.0.0.1"))
        assert (out.result, out.output) == (SUCCESS, "service healthy")
        out = await run_probe(bad, target("127.0.0.1"))
        assert (out.result, out.output) == (
            FAILURE, 'service unhealthy (responded with "NOT_SERVING")')
        assert (await run_probe(ok, target(""))).result == "error"
