"""sync_pod with environments from ConfigMaps and Secrets: a missing one leaves the container
waiting in CreateContainerConfigError (status, Failed event), the pod is retried on a short
capped back-off with fresh reads, and it starts once the object exists."""

from __future__ import annotations

import base64

import pytest
from sync_harness import Harness, ctr, make_harness, make_pod

from podling.agent.objects import ObjectCache
from podling.agent.pod.starting import CONFIG_RETRY
from podling.agent.pod.sync_result import SyncAction

MISSING = 'configmap "cfg" not found'


@pytest.fixture
async def s(tmp_path):
    harness = make_harness(tmp_path)
    yield harness
    await harness.close()


def env_pod(*, init: bool = False) -> dict:
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}]
    env_from = [{"secretRef": {"name": "creds"}, "prefix": "S_"}]
    if init:
        return make_pod(ctr("app"), initContainers=[ctr("c", env=env, envFrom=env_from)])
    return make_pod(ctr(env=env, envFrom=env_from))


def add_objects(s: Harness) -> None:
    s.client.objects[("configmaps", "default", "cfg")] = {"data": {"mode": "fast"}}
    s.client.objects[("secrets", "default", "creds")] = {
        "data": {"token": base64.b64encode(b"t0k").decode()}}


def created_env(s: Harness) -> dict[str, str]:
    config = s.runtime.calls_of("create_container")[-1][1]
    return dict(e.split("=", 1) for e in config.env)


async def test_a_missing_config_map_is_a_config_error_retried_soon(s) -> None:
    add_objects(s)
    del s.client.objects[("configmaps", "default", "cfg")]
    pod = env_pod()
    result = await s.sync(pod)
    assert "create_container" not in s.calls()
    [start] = [r for r in result.results if r.action == SyncAction.START_CONTAINER]
    assert (start.error, start.message) == ("CreateContainerConfigError", MISSING)
    waiting = s.container_status()["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError", "message": MISSING}
    assert ("Warning", "Failed", f"Error: {MISSING}") in await s.events()
    assert result.requeue_after == CONFIG_RETRY[0]
    # the back-off doubles up to its cap; every retry reads the ConfigMap afresh
    delays = []
    for _ in range(5):
        s.clock.advance(result.requeue_after or 0)
        result = await s.sync(s.api_pod(pod))
        delays.append(result.requeue_after)
    assert delays == [2.0, 4.0, CONFIG_RETRY[1], CONFIG_RETRY[1], CONFIG_RETRY[1]]
    assert s.client.gets.count(("configmaps", "default", "cfg")) == 6
    assert "create_container" not in s.calls()


async def test_the_pod_starts_once_the_objects_exist(s) -> None:
    pod = env_pod()
    await s.sync(pod)
    assert s.container_status()["state"]["waiting"]["message"] == 'secret "creds" not found'
    add_objects(s)
    s.clock.advance(1)
    result = await s.sync(s.api_pod(pod))
    assert result.requeue_after is None
    assert not [r for r in result.results if r.error]
    env = created_env(s)
    assert (env["MODE"], env["S_token"]) == ("fast", "t0k")
    assert s.container_status()["state"].keys() == {"running"}
    # the container exits and its ConfigMap is gone: the restart waits again, and the retry
    # back-off starts again from its first delay (it was reset by the start)
    del s.client.objects[("configmaps", "default", "cfg")]
    assert isinstance(s.syncer.objects, ObjectCache)
    s.syncer.objects.invalidate_pod(pod)  # what the agent does on every pod event
    [cid] = s.started()
    s.exit(cid, 1, ago=30)
    result = await s.sync(s.api_pod(pod))
    assert s.container_status()["state"]["waiting"]["message"] == MISSING
    assert result.requeue_after == CONFIG_RETRY[0]


async def test_a_missing_secret_key_holds_an_init_container(s) -> None:
    add_objects(s)
    s.client.objects[("secrets", "default", "creds")] = {"data": {}}
    pod = env_pod(init=True)
    pod["spec"]["initContainers"][0]["env"].append(
        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pass"}}})
    result = await s.sync(pod)
    [init] = [r for r in result.results if r.action == SyncAction.INIT_CONTAINER]
    message = "couldn't find key pass in Secret default/creds"
    assert (init.error, init.message) == ("CreateContainerConfigError", message)
    assert result.requeue_after == CONFIG_RETRY[0]
    status = next(c for c in s.status()["initContainerStatuses"] if c["name"] == "c")
    assert status["state"]["waiting"]["message"] == message


async def test_other_config_errors_wait_for_the_periodic_resync(s) -> None:
    pod = make_pod(ctr(env=[{"name": "V", "valueFrom": {"resourceFieldRef": {
        "resource": "limits.gpu"}}}]))
    result = await s.sync(pod)
    [start] = [r for r in result.results if r.action == SyncAction.START_CONTAINER]
    assert start.error == "CreateContainerConfigError"
    assert start.message == "unsupported container resource : limits.gpu"
    assert result.requeue_after is None
