"""Lifecycle hooks with a fake exec and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from http_target import serve

from podling.agent.kuberuntime.lifecycle import (HookResult, go_quote, grace_period_seconds,
                                                 http_url, kill_sequence_plan, run_hook,
                                                 should_run_prestop)
from podling.api.views import ContainerView, HandlerView, HTTPGetActionView, PodView
from podling.runtime.interface import ExecResult, ExecTimeout, InvalidState

POD = PodView.from_obj({"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
                        "spec": {}})
C = ContainerView.from_obj({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]})


class FakeExec:
    """Records each call; answers with ``result`` or raises ``error``."""

    def __init__(self, result: ExecResult | None = None, error: Exception | None = None,
                 delay: float = 0.0) -> None:
        self.calls: list[tuple[list[str], float | None]] = []
        self.result = result or ExecResult(0, b"", b"")
        self.error = error
        self.delay = delay

    async def __call__(self, argv: list[str], timeout: float | None) -> ExecResult:
        self.calls.append((argv, timeout))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return self.result


async def hook(handler: dict[str, Any], exec_sync=None, *, pod_ip="127.0.0.1", timeout=5.0,
               **kw) -> HookResult:
    return await run_hook(HandlerView.from_obj(handler), container=C, pod=POD,
                          exec_sync=exec_sync or FakeExec(),
                          pod_ip=pod_ip, timeout=timeout, **kw)


async def test_exec_success():
    fake = FakeExec()
    assert await hook({"exec": {"command": ["sh", "-c", "true"]}}, fake) == HookResult(True)
    assert fake.calls == [(["sh", "-c", "true"], 5.0)]


async def test_exec_without_a_time_limit_waits_for_the_command():
    fake = FakeExec(delay=0.05)
    assert await hook({"exec": {"command": ["sleep"]}}, fake, timeout=None) == HookResult(True)
    assert fake.calls == [(["sleep"], None)]


async def test_exec_failure_message():
    fake = FakeExec(ExecResult(3, b"some out\n", b"bad thing"))
    r = await hook({"exec": {"command": ["sh", "-c", "exit 3"]}}, fake)
    assert not r.ok
    assert r.message == (
        'Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "web_default(u1)" '
        "failed - error: command 'sh -c exit 3' exited with 3: bad thing, "
        'message: "some out\\nbad thing"')


@pytest.mark.parametrize("error, fragment", [
    (ExecTimeout("after 1s"), "command 'x' timed out: after 1s"),
    (InvalidState("container is not running"), "error: container is not running"),
])
async def test_exec_runtime_errors_are_failures(error, fragment):
    r = await hook({"exec": {"command": ["x"]}}, FakeExec(error=error))
    assert not r.ok and fragment in r.message


async def test_hook_timeout():
    r = await hook({"exec": {"command": ["x"]}}, FakeExec(delay=5), timeout=0.05)
    assert not r.ok and "did not finish in 0.05s" in r.message


async def test_sleep_handler_uses_injected_sleep():
    slept = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    assert (await hook({"sleep": {"seconds": 5}}, sleep=fake_sleep)).ok
    assert slept == [5.0]


async def test_invalid_handler():
    r = await hook({"tcpSocket": {"port": 80}})
    assert not r.ok and r.message.startswith("invalid handler")


@pytest.fixture
async def server():
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"path": request.path_qs, "headers": dict(request.headers)})
        code = int(request.query.get("code", "200"))
        if 300 <= code < 400:
            return web.Response(status=code, headers={"Location": "/elsewhere"})
        return web.Response(status=code, text="ok")

    async with serve(handle) as port:
        yield port, seen


async def test_http_get_ok_with_headers(server):
    port, seen = server
    r = await hook({"httpGet": {"path": "/hook?x=1", "port": port,
                                "httpHeaders": [{"name": "X-Test", "value": "v"}]}})
    assert r.ok
    assert seen[0]["path"] == "/hook?x=1"
    assert seen[0]["headers"]["X-Test"] == "v"
    assert seen[0]["headers"]["User-Agent"].startswith("kube-lifecycle/")


async def test_http_get_named_port_and_explicit_host(server):
    port, seen = server
    c = ContainerView.from_obj({"name": "app", "ports": [{"name": "admin", "containerPort": port}]})
    r = await run_hook(HandlerView.from_obj(
        {"httpGet": {"path": "/a", "port": "admin", "host": "127.0.0.1"}}),
                       container=c, pod=POD, exec_sync=FakeExec(), pod_ip="", timeout=5)
    assert r.ok and seen[0]["path"] == "/a"


@pytest.mark.parametrize("code, ok", [(200, True), (204, True), (302, True), (404, False),
                                      (500, False)])
async def test_http_get_status_codes(server, code, ok):
    port, _ = server
    r = await hook({"httpGet": {"path": f"/s?code={code}", "port": port}})
    assert r.ok is ok
    if not ok:
        assert r.message == (
            f'HTTP lifecycle hook (/s?code={code}) for Container "app" in Pod '
            f'"web_default(u1)" failed - error: HTTP probe failed with statuscode: {code}')
    relaxed = await hook({"httpGet": {"path": f"/s?code={code}", "port": port}},
                         check_status=False)
    assert relaxed.ok


async def test_http_get_connection_refused(server):
    port, _ = server
    r = await hook({"httpGet": {"path": "/x", "port": 1}})
    assert not r.ok
    assert r.message.startswith(
        'HTTP lifecycle hook (/x) for Container "app" in Pod "web_default(u1)" failed - error: ')


async def test_http_get_unknown_named_port():
    r = await hook({"httpGet": {"path": "/x", "port": "nope"}})
    assert not r.ok and r.message.endswith("error: couldn't find port: nope in app")


@pytest.mark.parametrize("action, ip, url", [
    ({"port": 80}, "10.0.0.1", "http://10.0.0.1:80/"),
    ({"port": "http", "path": "a/b", "scheme": "HTTPS"}, "10.0.0.1", "https://10.0.0.1:8080/a/b"),
    ({"port": 80, "path": "/", "host": "example.com"}, "10.0.0.1", "http://example.com:80/"),
    ({"port": 80, "path": "/x"}, "fd00::1", "http://[fd00::1]:80/x"),
])
def test_http_url(action, ip, url):
    assert http_url(HTTPGetActionView.from_obj(action), C, ip) == url


def test_http_url_without_pod_ip():
    with pytest.raises(ValueError):
        http_url(HTTPGetActionView.from_obj({"port": 80}), C, "")


@pytest.mark.parametrize("grace, elapsed, remaining", [
    (30, 0, 30), (30, 5, 25), (30, 5.9, 25), (30, 29, 2), (30, 40, 2), (0, 0, 2), (1, 0, 2),
])
def test_kill_sequence_plan(grace, elapsed, remaining):
    assert kill_sequence_plan(grace, elapsed) == remaining


@pytest.mark.parametrize("meta, spec, grace", [
    ({}, {}, 30), ({}, {"terminationGracePeriodSeconds": 5}, 5),
    ({"deletionGracePeriodSeconds": 0}, {"terminationGracePeriodSeconds": 5}, 0),
])
def test_grace_period_seconds(meta, spec, grace):
    assert grace_period_seconds(PodView.from_obj({"metadata": meta, "spec": spec})) == grace


def test_should_run_prestop():
    c = ContainerView.from_obj({"name": "a",
                                "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}})
    assert should_run_prestop(c, 30) and not should_run_prestop(c, 0)
    assert not should_run_prestop(ContainerView.from_obj({"name": "a"}), 30)
    assert not should_run_prestop(None, 30)


def test_go_quote():
    assert go_quote('a"b\\c\n\t\x01é') == '"a\\"b\\\\c\\n\\t\\x01é"'
