"""configMap, secret, downwardAPI and projected volumes set up and refreshed on disk
(VolumeSources over a fake ObjectSource and a fake token API), and in the pod sync: the
FailedMount message and back-off, the start once the object exists, the in-place refresh
of a running pod, and the emptyDir sizeLimit eviction.

Secret and projected volumes are tmpfs mounts: these tests need root."""

from __future__ import annotations

import asyncio
import base64
import copy
import os
from typing import Any, Iterator

import pytest
from sync_harness import ctr, make_harness, make_pod

from podling.agent.kuberuntime.atomic_writer import DATA_DIR
from podling.agent.kuberuntime.env import PodContext
from podling.agent.kuberuntime.resource_fields import NodeAllocatable
from podling.agent.kuberuntime.tokens import TokenManager
from podling.agent.kuberuntime.volume_sources import VolumeSources
from podling.agent.kuberuntime.volumes import VolumeError, cleanup_volumes, volume_mounts
from podling.agent.pod.eviction import EmptyDirEviction
from podling.api.resources import Resource
from podling.api.views import PodView
from podling.util.clock import FakeClock
from podling.util.mounts import is_mountpoint, mounts_under
from podling.util.timefmt import epoch_rfc3339

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs, bind mounts)")

CTX = PodContext(pod_ips=(), host_ips=("192.168.1.2",),
                 allocatable=NodeAllocatable(cpu_milli=2000, memory_bytes=1 << 30))


class FakeObjects:
    """An ObjectSource over a dict, with a call log."""

    def __init__(self, **objects: dict[str, Any]) -> None:
        self.objects = dict(objects)  # "configmaps/name" → object
        self.calls: list[str] = []

    async def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        self.calls.append(f"{resource.name}/{name}")
        found = self.objects.get(f"{resource.name}/{name}")
        return copy.deepcopy(found) if found is not None else None


async def fake_tokens(namespace: str, account: str, body: dict) -> dict:
    return {**body, "status": {"token": f"tok-{account}",
                               "expirationTimestamp": epoch_rfc3339(2_000_000_000)}}


def sources(objects: FakeObjects) -> VolumeSources:
    return VolumeSources(objects, TokenManager(fake_tokens, clock=FakeClock(1_700_000_000)))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


VOLUMES = [
    {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "conf", "path": "app.conf",
                                                            "mode": 0o600}]}},
    {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
    {"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
    {"name": "kube-api-access-abcde", "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                              "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
]


def pod_obj(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns1", "uid": "u1",
                         "labels": labels or {"app": "web"}},
            "spec": {"volumes": VOLUMES, "containers": [{"name": "c", "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/app"},
                {"name": "cfg", "mountPath": "/app.conf", "subPath": "app.conf"},
                {"name": "kube-api-access-abcde",
                 "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}]}}


def objects() -> FakeObjects:
    return FakeObjects(**{"configmaps/app": {"data": {"conf": "v1"}},
                          "secrets/creds": {"data": {"user": b64("admin")}},
                          "configmaps/kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}})


@pytest.fixture
def pod_dir(tmp_path) -> Iterator[str]:
    path = str(tmp_path / "pods" / "u1")
    os.makedirs(path)
    yield path
    cleanup_volumes(path)
    assert mounts_under(str(tmp_path)) == []


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_setup_writes_every_kind(pod_dir) -> None:
    vs = sources(objects())
    pod = PodView.from_obj(pod_obj())
    prepared = asyncio.run(vs.setup(pod, pod_dir, CTX))
    cfg, sec = prepared["cfg"], prepared["sec"]
    assert cfg == os.path.join(pod_dir, "volumes", "configmap", "cfg")
    assert read(os.path.join(cfg, "app.conf")) == "v1"
    assert os.stat(os.path.join(cfg, "app.conf")).st_mode & 0o777 == 0o600
    assert os.readlink(os.path.join(cfg, "app.conf")) == "..data/app.conf"
    assert is_mountpoint(sec) and not is_mountpoint(cfg)
    assert read(os.path.join(sec, "user")) == "admin"
    assert os.stat(os.path.join(sec, "user")).st_mode & 0o777 == 0o400
    assert read(os.path.join(prepared["info"], "labels")) == 'app="web"'
    access = prepared["kube-api-access-abcde"]
    assert is_mountpoint(access)
    assert {n: read(os.path.join(access, n)) for n in ("token", "ca.crt", "namespace")} == {
        "token": "tok-default", "ca.crt": "PEM", "namespace": "ns1"}
    mounts = volume_mounts(pod, pod.spec.containers[0], prepared, env={})
    assert [m.readonly for m in mounts] == [True, True, True]  # forced, as the kubelet


def test_refresh_rewrites_only_what_changed(pod_dir) -> None:
    objs = objects()
    vs = sources(objs)
    pod = PodView.from_obj(pod_obj())
    prepared = asyncio.run(vs.setup(pod, pod_dir, CTX))
    cfg = prepared["cfg"]
    mounts = volume_mounts(pod, pod.spec.containers[0], prepared, env={}, pod_dir=pod_dir)
    sub = mounts[1].host_path
    assert read(sub) == "v1"
    links = {n: os.readlink(os.path.join(p, DATA_DIR)) for n, p in prepared.items()
             if n != "cfg" or True}
    assert not asyncio.run(vs.refresh(pod, pod_dir, CTX))  # nothing changed
    assert {n: os.readlink(os.path.join(p, DATA_DIR)) for n, p in prepared.items()} == links
    objs.objects["configmaps/app"] = {"data": {"conf": "v2"}}
    relabelled = PodView.from_obj(pod_obj({"app": "web", "tier": "db"}))
    assert asyncio.run(vs.refresh(relabelled, pod_dir, CTX))
    assert read(os.path.join(cfg, "app.conf")) == "v2"
    assert read(os.path.join(prepared["info"], "labels")) == 'app="web"\ntier="db"'
    assert read(sub) == "v1"  # the subPath bind keeps the file it was made with
    assert os.readlink(os.path.join(prepared["sec"], DATA_DIR)) == links["sec"]


def test_missing_objects(pod_dir) -> None:
    vs = sources(FakeObjects())
    pod = PodView.from_obj(pod_obj())
    with pytest.raises(VolumeError) as err:
        asyncio.run(vs.setup(pod, pod_dir, CTX))
    assert err.value.message == \
        'MountVolume.SetUp failed for volume "cfg" : configmap "app" not found'
    optional = {"metadata": {"name": "w", "namespace": "ns1", "uid": "u1"},
                "spec": {"volumes": [{"name": "o", "configMap": {"name": "x",
                                                                 "optional": True}},
                                     {"name": "s", "secret": {"secretName": "y",
                                                              "optional": True}}],
                         "containers": [{"name": "c"}]}}
    prepared = asyncio.run(vs.setup(PodView.from_obj(optional), pod_dir, CTX))
    assert sorted(os.listdir(prepared["o"])) == sorted([DATA_DIR, os.readlink(
        os.path.join(prepared["o"], DATA_DIR))])
    assert [vs.retry_after("u1") for _ in range(6)] == [2, 4, 8, 16, 30, 30]


# -- in the pod sync --------------------------------------------------------------------------


def cm_pod(**extra: Any) -> dict[str, Any]:
    return make_pod(ctr(volumeMounts=[{"name": "cfg", "mountPath": "/etc/app"}]),
                    volumes=[{"name": "cfg", "configMap": {"name": "app"}}], **extra)


def test_sync_waits_for_a_missing_config_map_then_starts(tmp_path) -> None:
    async def main() -> None:
        h = make_harness(tmp_path)
        objs = FakeObjects()
        h.syncer.volumes.sources.objects = objs
        pod = cm_pod()
        try:
            result = await h.sync(pod)
            assert result.requeue_after == 2
            assert ("Warning", "FailedMount",
                    'MountVolume.SetUp failed for volume "cfg" : configmap "app" not found') \
                in await h.events()
            assert h.started() == []
            assert h.container_status()["state"] == {"waiting": {"reason": "ContainerCreating"}}
            assert (await h.sync(h.api_pod(pod))).requeue_after == 4
            objs.objects["configmaps/app"] = {"data": {"k": "v"}}
            await h.sync(h.api_pod(pod))
            assert len(h.started()) == 1
            volume = os.path.join(str(tmp_path), "agent", "pods", "u1", "volumes",
                                  "configmap", "cfg")
            assert read(os.path.join(volume, "k")) == "v"
            objs.objects["configmaps/app"] = {"data": {"k": "v2"}}
            await h.sync(h.api_pod(pod))                  # running: refreshed in place
            assert read(os.path.join(volume, "k")) == "v2" and len(h.started()) == 1
            del objs.objects["configmaps/app"]
            await h.sync(h.api_pod(pod))                  # gone: the old files stay
            assert read(os.path.join(volume, "k")) == "v2"
            assert (await h.events())[-1][1] == "FailedMount"
        finally:
            await h.sync(h.api_pod(pod) | {"metadata": {**pod["metadata"],
                                                        "deletionTimestamp": "x"}}, True)
            await h.close()
    asyncio.run(main())


def test_sync_evicts_a_pod_over_its_empty_dir_limit(tmp_path) -> None:
    async def main() -> None:
        h = make_harness(tmp_path)
        h.syncer.volumes.eviction = EmptyDirEviction(clock=h.clock.monotonic)
        pod = make_pod(ctr(), volumes=[{"name": "scratch",
                                        "emptyDir": {"sizeLimit": "1Mi"}}])
        try:
            result = await h.sync(pod)
            assert result.requeue_after == 10
            assert len(h.started()) == 1
            path = os.path.join(str(tmp_path), "agent", "pods", "u1", "volumes", "empty-dir",
                                "scratch", "big")
            with open(path, "wb") as f:
                f.write(os.urandom(2 << 20))
            await h.sync(h.api_pod(pod))   # measured less than 10 s ago: not yet
            assert h.status()["phase"] == "Running"
            h.clock.advance(10)
            await h.sync(h.api_pod(pod))
            message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
            status = h.status()
            assert (status["phase"], status["reason"], status["message"]) == \
                ("Failed", "Evicted", message)
            assert ("Warning", "Evicted", message) in await h.events()
            assert "stop_container" in h.calls()
            assert h.runtime.calls_of("stop_container")[0][1] == 2  # grace 0 → 2 s minimum
            await h.sync(h.api_pod(pod))
            assert [r for r in await h.reasons() if r == "Evicted"] == ["Evicted"]
        finally:
            await h.sync(h.api_pod(pod) | {"metadata": {**pod["metadata"],
                                                        "deletionTimestamp": "x"}}, True)
            await h.close()
    asyncio.run(main())
