"""What a sync overlaps (issue 11): the network set up while the containers are created,
the containers created together and started in spec order (postStart gating the next), a
network failure under containers being created, the containers of a deleted pod stopped
together (preStop each), and its release before it leaves the API."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
from sync_harness import Harness, ctr, deleted, make_harness, make_pod

from podling.agent.pod.sync_result import SyncAction
from podling.network.interface import NetworkError, PodIPs, PodNetworkInfo
from podling.runtime.interface import ExecResult


@pytest.fixture
async def h(tmp_path):
    harness = make_harness(tmp_path)
    yield harness
    await harness.close()


def hold_network(h: Harness, *, error: Exception | None = None) -> asyncio.Event:
    """The first CNI ADD waits for the returned event, then succeeds or raises ``error``."""
    gate = asyncio.Event()
    setup = h.network.setup_pod
    errors = [error] if error is not None else []

    async def held(netns: str, info: PodNetworkInfo) -> PodIPs:
        await gate.wait()
        if errors:
            h.network.fail_next("setup_pod", errors.pop())
        return await setup(netns, info)
    h.network.setup_pod = held  # type: ignore[method-assign]
    return gate


def hold_hooks(h: Harness, *commands: str) -> asyncio.Event:
    """Exec hooks running one of ``commands`` wait for the returned event (exit 0)."""
    gate = asyncio.Event()
    exec_sync = h.runtime.exec_sync

    async def held(cid: str, argv: list[str], timeout: float | None) -> ExecResult:
        result = await exec_sync(cid, argv, timeout)  # logged, checked running
        if argv[0] in commands:
            await gate.wait()
        return result
    h.runtime.exec_sync = held  # type: ignore[method-assign]
    return gate


def names_of(h: Harness, method: str, key: Callable[[tuple[Any, ...]], str]) -> list[str]:
    return [key(args) for args in h.runtime.calls_of(method)]


def started_names(h: Harness) -> list[str]:
    return [h.runtime.container_config(cid).name for cid in h.started()]


async def test_containers_are_created_while_the_network_is_set_up_then_started_in_order(
        h) -> None:
    gate = hold_network(h)
    sync = asyncio.create_task(h.sync(make_pod(ctr("a"), ctr("b"), ctr("c"))))
    await h.runtime.wait_for_calls("create_container", 3)
    assert sorted(names_of(h, "create_container", lambda a: a[1].name)) == ["a", "b", "c"]
    assert h.started() == [] and not sync.done()  # nothing starts before the network
    gate.set()
    result = await sync
    assert not result.errors()
    assert started_names(h) == ["a", "b", "c"]
    assert [(r.action, r.target) for r in result.results
            if r.action == SyncAction.START_CONTAINER] == [
        (SyncAction.START_CONTAINER, n) for n in ("a", "b", "c")]
    # as the kubelet's events: each container's three, in spec order
    assert await h.reasons() == ["Pulled", "Created", "Started"] * 3
    assert [e["involvedObject"]["fieldPath"] for e in h.client.events] == [
        f"spec.containers{{{n}}}" for n in ("a", "b", "c") for _ in range(3)]
    assert h.status()["phase"] == "Running"  # reported by this sync, not a later one


async def test_a_post_start_hook_holds_the_next_start_not_its_creation(h) -> None:
    gate = hold_hooks(h, "post")
    sync = asyncio.create_task(h.sync(make_pod(ctr("a", post_start=["post"]), ctr("b"))))
    await h.runtime.wait_for_calls("exec_sync", 1)
    await h.runtime.wait_for_calls("create_container", 2)
    assert started_names(h) == ["a"]  # b is created and waits for a's postStart
    gate.set()
    assert not (await sync).errors()
    assert started_names(h) == ["a", "b"]
    calls = h.calls()
    assert calls.index("exec_sync") < len(calls) - calls[::-1].index("start_container") - 1


async def test_a_network_failure_under_containers_being_created_leaves_nothing(h) -> None:
    gate = hold_network(h, error=NetworkError("no IP addresses available in range set"))
    sync = asyncio.create_task(h.sync(make_pod(ctr("a"), ctr("b"))))
    await h.runtime.wait_for_calls("create_container", 2)
    gate.set()
    result = await sync
    assert [(r.action, r.error) for r in result.errors()] == [
        (SyncAction.CREATE_POD_SANDBOX, "FailedCreatePodSandBox")]
    assert h.started() == []
    assert await h.runtime.list_pod_sandbox() == []
    assert await h.runtime.list_containers() == []  # removed with their sandbox
    assert h.network.attached == {}
    assert await h.events() == [  # nothing of the containers: they never were, for the API
        ("Warning", "FailedCreatePodSandBox",
         "Failed to create pod sandbox: no IP addresses available in range set")]
    assert h.container_status("a")["state"]["waiting"]["reason"] == "ContainerCreating"
    assert not (await h.sync(h.api_pod(make_pod(ctr("a"), ctr("b"))))).errors()  # retried
    assert sorted(started_names(h)) == ["a", "b"]


@pytest.mark.parametrize("grace, hooks_run, stop_timeout", [(30, True, 30.0),
                                                           (0, False, 2.0)])
async def test_a_deleted_pods_containers_stop_together_each_after_its_pre_stop(
        h, grace, hooks_run, stop_timeout) -> None:
    pod = make_pod(ctr("a", pre_stop=["drain-a"]), ctr("b", pre_stop=["drain-b"]),
                   terminationGracePeriodSeconds=grace)
    await h.sync(pod)
    running = h.started()
    gate = hold_hooks(h, "drain-a", "drain-b")
    h.forget_calls()
    terminate = asyncio.create_task(h.sync(deleted(h.api_pod(pod), grace), True))
    if hooks_run:
        hooks = await h.runtime.wait_for_calls("exec_sync", 2)  # both at once
        assert sorted(args[1][0] for args in hooks) == ["drain-a", "drain-b"]
        assert h.runtime.calls_of("stop_container") == []  # each after its own preStop
        gate.set()
    result = await terminate
    assert result.done and not result.errors()
    assert ("exec_sync" in h.calls()) is hooks_run
    assert sorted(h.runtime.calls_of("stop_container")) == sorted(
        (cid, stop_timeout, "SIGTERM") for cid in running)


async def test_the_pod_leaves_the_api_with_nothing_left_on_the_node(h) -> None:
    pod = make_pod(ctr("a"), ctr("b"))
    await h.sync(pod)
    seen: list[tuple[list[str], list[str], bool]] = []
    delete = h.client.delete

    async def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append((h.calls(), h.network.methods(), bool(h.rootfs.prepared)))
        return await delete(*args, **kwargs)
    h.client.delete = recording  # type: ignore[method-assign]
    h.forget_calls()
    result = await h.sync(deleted(h.api_pod(pod), 0), True)
    assert result.done
    [(runtime, network, rootfs_left)] = seen
    assert "remove_pod_sandbox" in runtime and network == ["teardown_pod"]
    assert not rootfs_left
    assert runtime.index("stop_container") < runtime.index("stop_pod_sandbox") \
        < runtime.index("remove_pod_sandbox")


class CountingSlots(asyncio.Semaphore):
    """A semaphore that tells when ``expected`` acquisitions were attempted."""

    def __init__(self, value: int, expected: int) -> None:
        super().__init__(value)
        self.attempts, self.acquired, self.expected = 0, 0, expected
        self.all_tried = asyncio.Event()

    async def acquire(self) -> bool:
        self.attempts += 1
        if self.attempts == self.expected:
            self.all_tried.set()
        await super().acquire()
        self.acquired += 1
        return True


async def test_the_sandboxes_set_up_at_once_are_bounded_per_node(h) -> None:
    slots = h.syncer.setup_parts.slots = CountingSlots(2, expected=3)
    gate = hold_network(h)
    pods = [make_pod(name=f"p{i}", uid=f"u{i}") for i in (1, 2, 3)]
    syncs = [asyncio.create_task(h.sync(p)) for p in pods]
    await asyncio.wait_for(slots.all_tried.wait(), 10)
    # every pod wants a slot, the network holds the two that got one: the third waits
    assert slots.acquired == 2
    assert len(h.runtime.calls_of("run_pod_sandbox")) == 2
    gate.set()
    results = await asyncio.gather(*syncs)
    assert not any(r.errors() for r in results)
    assert sorted(args[0].uid for args in h.runtime.calls_of("run_pod_sandbox")) == [
        "u1", "u2", "u3"]


async def test_an_unexpected_error_of_the_setup_fails_the_sync(h) -> None:
    h.network.fail_next("setup_pod", RuntimeError("plugin crashed"))  # not a NetworkError
    with pytest.raises(RuntimeError, match="plugin crashed"):
        await h.sync(make_pod(ctr("a")))  # the pod worker retries the whole sync
    assert h.started() == []
