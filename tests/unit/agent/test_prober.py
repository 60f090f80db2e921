"""Container probes: the handlers against real sockets on 127.0.0.1 (port 0), the workers
with a FakeClock and a fake exec, and the whole path through PodSyncer (sync_harness):
results wake the pod, drive started / ready, and liveness / startup failures restart."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web
from http_target import serve
from sync_harness import Harness, ctr, make_harness, make_pod

from podling.agent.prober.handlers import (ERROR, FAILURE, SUCCESS, WARNING, ProbeTarget, run_probe,
                                           tcp_probe)
from podling.agent.prober.manager import ProbeManager
from podling.agent.prober.worker import (LIVENESS, READINESS, STARTUP, ProbeWorker, WorkerKey,
                                         WorkerSpec)
from podling.api.views import ContainerView, ProbeView
from podling.apiserver.pki import ensure_credentials
from podling.runtime.fake import FakeRuntime
from podling.runtime.interface import ExecResult, ExecTimeout
from podling.util.clock import FakeClock

# -- helpers ------------------------------------------------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait (yielding to the loop) until ``check()`` is truthy."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.001)


class RecordingRecorder:
    """An EventRecorder stand-in: (type, reason, message, field_path) per event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str | None]] = []

    def event(self, obj: Any, type: str, reason: str, message: str,
              field_path: str | None = None) -> None:
        self.events.append((type, reason, message, field_path))


def exec_returning(*codes: int | str) -> tuple[Callable[..., Any], list[list[str]]]:
    """A fake exec_sync answering with the exit codes in turn (the last one repeats);
    "timeout" raises ExecTimeout, "gone" a runtime error."""
    calls: list[list[str]] = []

    async def exec_sync(argv: list[str], timeout: float) -> ExecResult:
        calls.append(argv)
        code = codes[min(len(calls), len(codes)) - 1]
        if code == "timeout":
            raise ExecTimeout("deadline")
        if code == "gone":
            raise RuntimeError("container not running")
        return ExecResult(int(code), b"out:" if code else b"", b"no such file\n" if code else b"")
    return exec_sync, calls


@pytest.fixture
async def http_server():
    """An HTTP server on 127.0.0.1: /ok 200, /missing 404, /moved 302; it records the
    request headers of each request."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.path == "/ok":
            return web.Response(text="fine")
        if request.path == "/moved":
            return web.Response(status=302, headers={"Location": "/ok"}, text="go")
        return web.Response(status=404, text="nope")
    async with serve(handle) as port:
        yield port, seen


@pytest.fixture
async def session():
    s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    yield s
    await s.close()


def target(session: Any, exec_sync: Any = None, *, ports: list[dict] | None = None,
           pod_ip: str = "127.0.0.1") -> ProbeTarget:
    container = ContainerView.from_obj({"name": "c", "image": "i", "ports": ports or []})
    return ProbeTarget(container=container, pod_ip=pod_ip, session=session,
                       exec_sync=exec_sync or exec_returning(0)[0])


def probe(**fields: Any) -> ProbeView:
    view = ProbeView.from_obj(fields)
    assert view is not None
    return view


# -- handlers ---------------------------------------------------------------------------------


async def test_http_probe_results_and_messages(http_server, session) -> None:
    port, seen = http_server
    t = target(session)
    ok = await run_probe(probe(httpGet={"path": "/ok", "port": port}), t)
    assert (ok.result, ok.output) == (SUCCESS, "fine")
    missing = await run_probe(probe(httpGet={"path": "/missing", "port": port}), t)
    assert (missing.result, missing.output) == (FAILURE,
                                                "HTTP probe failed with statuscode: 404")
    moved = await run_probe(probe(httpGet={"path": "/moved", "port": port}), t)
    assert (moved.result, moved.output) == (WARNING,
                                            "Probe terminated redirects, Response body: go")
    assert seen[0]["User-Agent"] == "kube-probe/1.32" and seen[0]["Accept"] == "*/*"


async def test_http_probe_sends_headers_and_finds_a_named_port(http_server, session) -> None:
    port, seen = http_server
    t = target(session, ports=[{"name": "web", "containerPort": port}])
    p = probe(httpGet={"path": "ok", "port": "web", "httpHeaders": [
        {"name": "X-Probe", "value": "1"}, {"name": "User-Agent", "value": "mine"}]})
    assert (await run_probe(p, t)).result == SUCCESS
    assert seen[-1]["X-Probe"] == "1" and seen[-1]["User-Agent"] == "mine"
    unknown = await run_probe(probe(httpGet={"port": "nope"}), t)
    assert unknown.result == ERROR and "nope" in unknown.output


async def test_https_probe_goes_through_the_session_unverified(tmp_path, session) -> None:
    creds = ensure_credentials(str(tmp_path), ["127.0.0.1"])  # signed by a CA nobody trusts
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(creds.cert, creds.key)
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="secure") if request.path == "/ok" else \
            web.Response(status=503, text="down")
    runner = web.AppRunner(web.Application())
    runner.app.router.add_get("/{tail:.*}", handle)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        port = runner.addresses[0][1]
        t = target(session)
        ok = await run_probe(probe(httpGet={"path": "/ok", "port": port, "scheme": "HTTPS",
                                            "httpHeaders": [{"name": "X-Probe", "value": "1"}]}), t)
        down = await run_probe(probe(httpGet={"path": "/x", "port": port, "scheme": "HTTPS"}), t)
    finally:
        await runner.cleanup()
    assert (ok.result, ok.output) == (SUCCESS, "secure")
    assert (down.result, down.output) == (FAILURE, "HTTP probe failed with statuscode: 503")
    assert seen[0]["User-Agent"] == "kube-probe/1.32" and seen[0]["X-Probe"] == "1"
    assert seen[0]["Host"] == f"127.0.0.1:{port}"


async def test_http_probe_refused_reads_like_go(session) -> None:
    port = closed_port()
    out = await run_probe(probe(httpGet={"path": "/", "port": port}), target(session))
    assert out.result == FAILURE
    assert out.output == (f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: '
                          "connect: connection refused")


async def test_tcp_probe_passes_on_a_listener_and_fails_when_refused(session) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await tcp_probe("127.0.0.1", port, 1.0)).result == SUCCESS
        ok = await run_probe(probe(tcpSocket={"port": port}), target(session))
        assert ok.result == SUCCESS
    finally:
        server.close()
        await server.wait_closed()
    closed = closed_port()
    refused = await run_probe(probe(tcpSocket={"port": closed}), target(session))
    assert (refused.result, refused.output) == (
        FAILURE, f"dial tcp 127.0.0.1:{closed}: connect: connection refused")


@pytest.mark.parametrize("code, result, output", [
    (0, SUCCESS, ""),
    (1, FAILURE, "out:no such file\n"),
    ("timeout", FAILURE, 'command "cat /tmp/ready" timed out'),
    ("gone", ERROR, "container not running"),
])
async def test_exec_probe(session, code, result, output) -> None:
    exec_sync, calls = exec_returning(code)
    out = await run_probe(probe(exec={"command": ["cat", "/tmp/ready"]}, timeoutSeconds=2),
                          target(session, exec_sync))
    assert (out.result, out.output) == (result, output)
    assert calls == [["cat", "/tmp/ready"]]


def test_probe_view_defaults() -> None:
    p = probe(exec={"command": ["true"]})
    assert (p.initial_delay_seconds, p.period_seconds, p.timeout_seconds,
            p.success_threshold, p.failure_threshold,
            p.termination_grace_period_seconds) == (0, 10, 1, 1, 3, None)
    assert ProbeView.from_obj(None) is None and ProbeView.from_obj({}) is None


# -- workers ------------------------------------------------------------------------------------


def make_worker(kind: str, codes: tuple[int | str, ...], *, clock: FakeClock,
                started: bool = True, field_path: str = "spec.containers{c}", **fields: Any
                ) -> tuple[ProbeWorker, RecordingRecorder, list[tuple[str, str]]]:
    exec_sync, _ = exec_returning(*codes)
    recorder = RecordingRecorder()
    published: list[tuple[str, str]] = []
    spec = WorkerSpec(WorkerKey("u1", "c", kind), probe(exec={"command": ["check"]}, **fields),
                      "cid1", clock.now(), {"metadata": {"name": "p"}},
                      target(None, exec_sync), field_path)
    worker = ProbeWorker(spec, clock=clock, recorder=recorder,  # type: ignore[arg-type]
                         is_started=lambda: started,
                         set_result=lambda key, cid, r: published.append((cid, r)))
    return worker, recorder, published


@pytest.mark.parametrize("kind, codes, fields, ticks, published, goes_on", [
    # failureThreshold 3 (default): two failures change nothing, the third publishes
    (READINESS, (1,), {}, 2, [], True),
    (READINESS, (1,), {}, 3, [("cid1", "failure")], True),
    # successThreshold 2: one success is not enough
    (READINESS, (0,), {"successThreshold": 2}, 1, [], True),
    (READINESS, (0,), {"successThreshold": 2}, 2, [("cid1", "success")], True),
    # a success in between restarts the failure count
    (READINESS, (1, 1, 0, 1, 1), {}, 5, [("cid1", "success")], True),
    # errors are thrown away
    (READINESS, ("gone",), {"failureThreshold": 1}, 3, [], True),
    # a liveness failure ends the worker (the container will be killed)
    (LIVENESS, (1,), {"failureThreshold": 1}, 1, [("cid1", "failure")], False),
    (LIVENESS, (0,), {}, 1, [("cid1", "success")], True),
])
async def test_worker_thresholds(kind, codes, fields, ticks, published, goes_on) -> None:
    clock = FakeClock()
    worker, _, out = make_worker(kind, codes, clock=clock, **fields)
    results = [await worker.tick() for _ in range(ticks)]
    assert out == published
    assert results[-1] is goes_on


async def test_worker_events_name_the_probe_and_container() -> None:
    clock = FakeClock()
    worker, recorder, _ = make_worker(READINESS, (1, "gone"), clock=clock)
    await worker.tick()
    await worker.tick()
    assert recorder.events == [
        ("Warning", "Unhealthy", "Readiness probe failed: out:no such file\n",
         "spec.containers{c}"),
        ("Warning", "Unhealthy", "Readiness probe errored: container not running",
         "spec.containers{c}")]


async def test_worker_waits_for_the_initial_delay_and_the_startup_probe() -> None:
    clock = FakeClock()
    worker, _, out = make_worker(READINESS, (0,), clock=clock, initialDelaySeconds=5)
    assert await worker.tick() and out == []
    clock.advance(5)
    assert await worker.tick() and out == [("cid1", "success")]
    gated, _, gated_out = make_worker(LIVENESS, (1,), clock=clock, started=False,
                                      failureThreshold=1)
    assert await gated.tick() and gated_out == []
    startup, _, startup_out = make_worker(STARTUP, (0,), clock=clock, started=True)
    assert not await startup.tick() and startup_out == []  # started: nothing left to do


async def test_worker_runs_on_its_period_of_the_injected_clock() -> None:
    clock = FakeClock()
    worker, _, out = make_worker(READINESS, (1,), clock=clock, periodSeconds=7)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: clock.sleepers == 1)
        assert out == []
        for _ in range(2):
            clock.advance(7)
            await eventually(lambda: clock.sleepers == 1)
        await eventually(lambda: out == [("cid1", "failure")])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_worker_beats_are_a_fixed_cadence_on_the_grid() -> None:
    """Beats on multiples of 100 ms plus whole periods: a run taking 0.4 s does not shift
    them, beats missed while the worker was late are skipped."""
    clock = FakeClock()
    clock.advance(0.05)
    runs: list[float] = []

    async def slow(argv: list[str], timeout: float) -> ExecResult:
        runs.append(round(clock.monotonic(), 3))  # the fake clock's floats: ~1e-7
        clock.advance(0.4)
        return ExecResult(0, b"", b"")
    spec = WorkerSpec(WorkerKey("u1", "c", READINESS),
                      probe(exec={"command": ["check"]}, periodSeconds=1),
                      "cid1", clock.now(), {"metadata": {"name": "p"}}, target(None, slow),
                      "spec.containers{c}")
    worker = ProbeWorker(spec, clock=clock, recorder=RecordingRecorder(),  # type: ignore
                         is_started=lambda: True, set_result=lambda *a: None)
    task = asyncio.create_task(worker.run())
    try:
        for when in (1.1, 2.1, 6.0):
            await eventually(lambda: clock.sleepers == 1)
            clock.advance(when - clock.monotonic() + 1e-5)
        await eventually(lambda: clock.sleepers == 1)
        clock.advance(7.1 - clock.monotonic() - 0.01)
        await asyncio.sleep(0.01)
        assert runs == [0.05, 1.1, 2.1, 6.0]
        clock.advance(0.01 + 1e-5)
        await eventually(lambda: len(runs) == 5)
        assert runs[-1] == 7.1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- through the pod syncer -------------------------------------------------------------------


@pytest.fixture
async def h(tmp_path):
    harness = make_harness(tmp_path)
    yield harness
    await harness.close()


def exec_pod(kind: str, **fields: Any) -> dict:
    return make_pod(ctr(**{kind: {"exec": {"command": ["check"]}, "periodSeconds": 1,
                                  **fields}}))


async def settle(h: Harness, workers: int) -> None:
    """Until every probe worker of the syncer sleeps on the fake clock."""
    await eventually(lambda: h.clock.sleepers >= min(workers, h.syncer.prober.worker_count()))


async def probe_period(h: Harness, workers: int = 1, seconds: float = 1.0) -> None:
    h.clock.advance(seconds)
    await asyncio.sleep(0)
    await settle(h, workers)


async def test_readiness_follows_the_probe(h) -> None:
    woken: list[str] = []
    h.syncer.prober.notify = woken.append
    answers = {"code": 1}
    h.runtime.exec_handler = lambda cid, argv: ExecResult(answers["code"], b"", b"")
    pod = exec_pod("readinessProbe", failureThreshold=1)
    await h.sync(pod)
    await settle(h, 1)
    cs = h.container_status()
    assert cs["started"] is True and cs["ready"] is False
    assert h.status()["conditions"][2]["type"] == "Ready"
    assert h.status()["conditions"][2]["status"] == "False"
    answers["code"] = 0
    await probe_period(h)
    assert woken == ["u1"]
    await h.sync(h.api_pod(pod))
    assert h.container_status()["ready"] is True
    assert {c["type"]: c["status"] for c in h.status()["conditions"]}["ContainersReady"] == "True"
    answers["code"] = 1
    await probe_period(h)
    await h.sync(h.api_pod(pod))
    assert h.container_status()["ready"] is False
    assert ("Warning", "Unhealthy", "Readiness probe failed: ") in await h.events()


async def test_liveness_failure_restarts_the_container_as_a_crash(h) -> None:
    h.runtime.exec_handler = lambda cid, argv: ExecResult(1, b"dead\n", b"")
    pod = exec_pod("livenessProbe", failureThreshold=2, terminationGracePeriodSeconds=3)
    await h.sync(pod)
    [first] = h.started()
    await settle(h, 1)
    await probe_period(h)  # the second failure reaches the threshold
    assert h.syncer.prober.failures("u1") == {first: "liveness"}
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    stops = h.runtime.calls_of("stop_container")
    assert stops and stops[0][0] == first and stops[0][1] == 3  # the probe's grace
    [second] = h.started()
    assert second != first and h.container_status()["restartCount"] == 1
    events = await h.events()
    assert ("Normal", "Killing", "Container c failed liveness probe, will be restarted") \
        in events
    assert ("Warning", "Unhealthy", "Liveness probe failed: dead\n") in events
    assert h.syncer.prober.failures("u1") == {}
    # the next liveness failure soon after is held by the crash back-off
    await settle(h, 1)
    await probe_period(h)
    await probe_period(h)
    h.forget_calls()
    result = await h.sync(h.api_pod(pod))
    assert h.started() == [] and result.requeue_after is not None
    assert h.container_status()["state"]["waiting"]["reason"] == "CrashLoopBackOff"


async def test_liveness_failure_under_restart_policy_never_only_kills(h) -> None:
    h.runtime.exec_handler = lambda cid, argv: ExecResult(1, b"", b"")
    pod = make_pod(ctr(livenessProbe={"exec": {"command": ["x"]}, "failureThreshold": 1}),
                   policy="Never")
    await h.sync(pod)
    await settle(h, 1)
    h.forget_calls()
    await h.sync(h.api_pod(pod))
    assert h.started() == []
    assert ("Normal", "Killing", "Container c failed liveness probe") in await h.events()


async def test_the_startup_probe_holds_back_readiness_and_liveness(h) -> None:
    answers = {"startup": 1}

    def handler(cid: str, argv: list[str]) -> ExecResult:
        return ExecResult(answers["startup"] if argv == ["starting"] else 0, b"", b"")
    h.runtime.exec_handler = handler
    pod = make_pod(ctr(startupProbe={"exec": {"command": ["starting"]}, "periodSeconds": 1,
                                     "failureThreshold": 5},
                       readinessProbe={"exec": {"command": ["ready"]}, "periodSeconds": 1},
                       livenessProbe={"exec": {"command": ["live"]}, "periodSeconds": 1}))
    await h.sync(pod)
    await settle(h, 3)
    await probe_period(h, 3)
    await h.sync(h.api_pod(pod))
    cs = h.container_status()
    assert cs["started"] is False and cs["ready"] is False
    assert [args[1] for args in h.runtime.calls_of("exec_sync")] == [["starting"]] * 2
    answers["startup"] = 0
    await probe_period(h, 2)  # the startup worker ends once the container started
    await probe_period(h, 2)
    await h.sync(h.api_pod(pod))
    cs = h.container_status()
    assert cs["started"] is True and cs["ready"] is True


async def test_a_startup_probe_that_keeps_failing_restarts(h) -> None:
    h.runtime.exec_handler = lambda cid, argv: ExecResult(1, b"", b"")
    pod = make_pod(ctr(startupProbe={"exec": {"command": ["x"]}, "periodSeconds": 1,
                                     "failureThreshold": 2}))
    await h.sync(pod)
    await settle(h, 1)
    await probe_period(h)
    await h.sync(h.api_pod(pod))
    assert len(h.started()) == 2
    assert ("Normal", "Killing", "Container c failed startup probe, will be restarted") \
        in await h.events()


async def test_workers_follow_the_container_and_the_pod(h) -> None:
    pod = exec_pod("readinessProbe")
    await h.sync(pod)
    [cid] = h.started()
    assert h.syncer.prober.worker_count() == 1
    h.exit(cid, 1)
    await h.sync(h.api_pod(pod))  # restarted: a worker for the new container only
    assert h.syncer.prober.worker_count() == 1
    await h.sync(h.api_pod(pod), terminating=True)
    assert h.syncer.prober.worker_count() == 0


async def test_an_adopted_container_is_probed(h) -> None:
    pod = exec_pod("readinessProbe")
    await h.sync(pod)
    syncer = h.restart_agent()
    await h.sync(h.api_pod(pod))
    assert syncer.prober.worker_count() == 1


async def test_manager_close_cancels_every_worker() -> None:
    clock = FakeClock()
    manager = ProbeManager(runtime=FakeRuntime(), recorder=RecordingRecorder(),  # type: ignore
                           clock=clock)
    await manager.close()
    await manager.close()
    assert manager.worker_count() == 0


async def test_a_stale_pod_object_does_not_make_the_status_ping_pong(h) -> None:
    """Syncs that get a pod object older than the agent's last write carry over what the
    agent sent, not the stale conditions: a readiness change is written once."""
    answers = {"code": 1}
    h.runtime.exec_handler = lambda cid, argv: ExecResult(answers["code"], b"", b"")
    pod = exec_pod("readinessProbe", failureThreshold=1)
    await h.sync(pod)
    await settle(h, 1)
    stale = h.api_pod(pod)  # Ready False
    answers["code"] = 0
    await probe_period(h)
    await h.sync(stale)  # Ready True, written
    written = len(h.client.status_patches)
    for _ in range(3):
        h.clock.advance(1)
        await h.sync(stale)
    assert len(h.client.status_patches) == written
    ready = {c["type"]: c for c in h.status()["conditions"]}["Ready"]
    assert ready["status"] == "True"


async def test_a_sidecar_is_probed_and_its_startup_probe_gates_the_next_init(h) -> None:
    answers = {"starting": 1, "ready": 1}
    h.runtime.exec_handler = lambda cid, argv: ExecResult(answers.get(argv[0], 0), b"", b"")
    side = ctr("side", restartPolicy="Always",
               startupProbe={"exec": {"command": ["starting"]}, "periodSeconds": 1,
                             "failureThreshold": 30},
               readinessProbe={"exec": {"command": ["ready"]}, "periodSeconds": 1})
    pod = make_pod(ctr("app"), initContainers=[side, ctr("init2")])
    await h.sync(pod)
    [sidecar] = h.started()
    await settle(h, 2)
    await h.sync(h.api_pod(pod))
    assert h.started() == [sidecar]  # init2 waits for the sidecar's startup probe
    [side_status] = h.status()["initContainerStatuses"][:1]
    assert (side_status["started"], side_status["ready"]) == (False, False)
    answers["starting"] = 0
    await probe_period(h, 2)
    await h.sync(h.api_pod(pod))
    assert len(h.started()) == 2  # now init2 runs
    await h.events()
    unhealthy = [e for e in h.client.events if e["reason"] == "Unhealthy"]
    assert unhealthy  # the sidecar's failed startup probes, named as an init container
    assert {e["involvedObject"].get("fieldPath") for e in unhealthy} == \
        {"spec.initContainers{side}"}
    answers["ready"] = 0
    await probe_period(h, 1)
    await probe_period(h, 1)
    h.exit(h.started()[1], 0)
    await h.sync(h.api_pod(pod))  # init2 done: the app starts
    await settle(h, 1)
    await h.sync(h.api_pod(pod))
    statuses = {s["name"]: s for s in h.status()["initContainerStatuses"]}
    assert statuses["side"]["started"] is True and statuses["side"]["ready"] is True
    assert {c["type"]: c["status"] for c in h.status()["conditions"]}["Ready"] == "True"
