"""FakeRuntime's test controls (the protocol behaviour is in the conformance suite)."""

from __future__ import annotations

import asyncio

import pytest

from podling.runtime.fake import FakeRuntime
from podling.runtime.interface import (ContainerConfig, ContainerStartError, ContainerState,
                                       ExecResult, InvalidState, NamespaceMode,
                                       NamespaceOptions, PodSandboxConfig, RuntimeCommandError,
                                       RuntimeService, SandboxState)


def sandbox(name: str = "p", **kw: object) -> PodSandboxConfig:
    return PodSandboxConfig(name=name, namespace="ns", uid=f"u-{name}", **kw)  # type: ignore[arg-type]


def container(name: str = "c", **kw: object) -> ContainerConfig:
    return ContainerConfig(name=name, rootfs="/r", command=["x"], **kw)  # type: ignore[arg-type]


async def started(rt: FakeRuntime, sid: str, name: str = "c") -> str:
    cid = await rt.create_container(sid, container(name))
    await rt.start_container(cid)
    return cid


def test_is_a_runtime_service() -> None:
    assert isinstance(FakeRuntime(), RuntimeService)


async def test_call_log() -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox())
    await rt.list_containers(sid)
    assert [name for name, _ in rt.calls] == ["run_pod_sandbox", "list_containers"]
    assert rt.calls_of("list_containers") == [(sid, None)]


async def test_fail_next_is_one_shot_and_has_no_effect() -> None:
    rt = FakeRuntime()
    rt.fail_next("run_pod_sandbox", RuntimeCommandError("boom"))
    with pytest.raises(RuntimeCommandError):
        await rt.run_pod_sandbox(sandbox())
    assert await rt.list_pod_sandbox() == []
    await rt.run_pod_sandbox(sandbox())
    assert len(await rt.list_pod_sandbox()) == 1


async def test_exit_container_and_oom() -> None:
    rt = FakeRuntime(clock=lambda: 100.0)
    sid = await rt.run_pod_sandbox(sandbox())
    a, b = await started(rt, sid, "a"), await started(rt, sid, "b")
    rt.exit_container(a, 1)
    rt.exit_container(b, 137, oom=True)
    sa, sb = await rt.container_status(a), await rt.container_status(b)
    assert (sa.state, sa.exit_code, sa.reason, sa.finished_at) == (
        ContainerState.EXITED, 1, "Error", 100.0)
    assert sb.reason == "OOMKilled"
    rt.exit_container(a, 5)  # no-op once exited
    assert (await rt.container_status(a)).exit_code == 1


async def test_wait_and_events_follow_exit() -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox())
    cid = await started(rt, sid)
    events = rt.exit_events()
    waiter = asyncio.create_task(rt.wait_container(cid))
    await asyncio.sleep(0)
    assert not waiter.done()
    rt.exit_container(cid, 0)
    assert (await waiter).reason == "Completed"
    event = await events.__anext__()
    assert (event.container_id, event.exit_code) == (cid, 0)
    await rt.close()
    with pytest.raises(StopAsyncIteration):
        await events.__anext__()
    with pytest.raises(StopAsyncIteration):
        await rt.exit_events().__anext__()


async def test_ignore_term_waits_for_timeout() -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox())
    cid = await started(rt, sid)
    rt.ignore_term.add(cid)
    stop = asyncio.create_task(rt.stop_container(cid, 10))
    await asyncio.sleep(0.01)
    assert not stop.done()
    rt.exit_container(cid, 0)  # the process gives up on its own
    await stop
    assert (await rt.container_status(cid)).exit_code == 0


async def test_stop_signal_code() -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox())
    cid = await started(rt, sid)
    await rt.stop_container(cid, 1, signal="SIGINT")
    assert (await rt.container_status(cid)).exit_code == 130


async def test_exec_handler_and_state() -> None:
    rt = FakeRuntime()
    rt.exec_handler = lambda cid, argv: ExecResult(7, b"out", b"err")
    sid = await rt.run_pod_sandbox(sandbox())
    cid = await started(rt, sid)
    assert await rt.exec_sync(cid, ["x"], 1) == ExecResult(7, b"out", b"err")
    rt.set_state(cid, ContainerState.UNKNOWN)
    with pytest.raises(InvalidState):
        await rt.exec_sync(cid, ["x"], 1)
    await rt.remove_container(cid)


async def test_sandbox_crash_and_host_network() -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox(
        namespace_options=NamespaceOptions(network=NamespaceMode.NODE)))
    st = await rt.pod_sandbox_status(sid)
    assert st.network_namespace_path == "" and st.state is SandboxState.READY
    rt.crash_sandbox(sid)
    st = await rt.pod_sandbox_status(sid)
    assert st.state is SandboxState.NOTREADY and st.pid == 0
    assert rt.sandbox_config(sid).name == "p"


async def test_on_start_hook_sync_and_configs() -> None:
    rt = FakeRuntime()
    seen: list[str] = []
    rt.on_start = lambda r, cid, cfg: seen.append(cfg.name)  # type: ignore[assignment,func-returns-value]
    sid = await rt.run_pod_sandbox(sandbox())
    cid = await started(rt, sid, "web")
    assert seen == ["web"] and rt.container_config(cid).name == "web"


@pytest.mark.parametrize("times, codes", [
    (1, [1, None]),           # the first start crashes, the second runs
    (2, [3, 3, None]),
    (None, [7, 7, 7]),         # every start crashes
])
async def test_exit_on_start(times: int | None, codes: list[int | None]) -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox())
    rt.exit_on_start("c", codes[0] or 0, times=times)
    seen = []
    for _ in codes:
        status = await rt.container_status(await started(rt, sid))
        seen.append(status.exit_code if status.state is ContainerState.EXITED else None)
    assert seen == codes
    other = await rt.container_status(await started(rt, sid, "other"))
    assert other.state is ContainerState.RUNNING


async def test_exit_on_start_emits_an_exit_event() -> None:
    rt = FakeRuntime()
    events = rt.exit_events()
    sid = await rt.run_pod_sandbox(sandbox())
    rt.exit_on_start("c", 2)
    cid = await started(rt, sid)
    event = await asyncio.wait_for(events.__anext__(), 5)
    assert (event.container_id, event.exit_code) == (cid, 2)


async def test_wait_for_calls_wakes_on_the_matching_call() -> None:
    rt = FakeRuntime()
    sid = await rt.run_pod_sandbox(sandbox())
    waiter = asyncio.create_task(rt.wait_for_calls("stop_pod_sandbox", 2,
                                                   where=lambda args: args[0] == sid))
    await rt.stop_pod_sandbox("other")
    await rt.stop_pod_sandbox(sid)
    await asyncio.sleep(0)
    assert not waiter.done()
    await rt.stop_pod_sandbox(sid)
    assert await asyncio.wait_for(waiter, 5) == [(sid,), (sid,)]


async def test_wait_for_calls_times_out_with_a_count() -> None:
    rt = FakeRuntime()
    with pytest.raises(AssertionError, match="0 of 1 calls of start_container"):
        await rt.wait_for_calls("start_container", timeout=0.05)


async def test_fail_start_of_leaves_an_exited_start_error() -> None:
    rt = FakeRuntime()
    events = rt.exit_events()
    sid = await rt.run_pod_sandbox(sandbox())
    rt.fail_start_of("c", 'exec: "x": not found')
    cid = await rt.create_container(sid, container("c"))
    with pytest.raises(ContainerStartError, match='exec: "x": not found'):
        await rt.start_container(cid)
    status = await rt.container_status(cid)
    assert (status.state, status.exit_code, status.reason, status.message) == (
        ContainerState.EXITED, 128, "StartError", 'exec: "x": not found')
    assert (await asyncio.wait_for(events.__anext__(), 5)).container_id == cid
    again = await started(rt, sid)  # only the next start failed
    assert (await rt.container_status(again)).state is ContainerState.RUNNING
