"""`podling server --datastore etcd` with the real kubectl and a real etcd on loopback: the
objects live in etcd under Kubernetes' layout, resourceVersions are etcd's revisions, a
`kubectl get -w` sees the writes, and a restarted server serves the same objects."""

from __future__ import annotations

import json
import shutil
import signal
import uuid
from typing import Iterator

import pytest

from podling.storage.etcd.testing import EtcdProcess
from kubectl_util import LineReader
from podling_e2e import Server, start_server

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None,
                                reason="needs etcd (make install-test installs etcd-server)")


@pytest.fixture
def etcd(tmp_path) -> Iterator[EtcdProcess]:
    with EtcdProcess(str(tmp_path / "etcd")) as process:
        yield process


def etcd_server(tmp_path, etcd: EtcdProcess, prefix: str) -> Server:
    return start_server(str(tmp_path / "data"), str(tmp_path / "home"), "--datastore", "etcd",
                        "--etcd-endpoints", etcd.url, "--etcd-prefix", prefix)


def etcd_get(etcd: EtcdProcess, key: str) -> dict:
    """One key's entry from etcd's own JSON gateway (value and revisions)."""
    import base64
    import urllib.request
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    with urllib.request.urlopen(urllib.request.Request(etcd.url + "/v3/kv/range", body),
                                timeout=10) as response:
        kvs = json.loads(response.read()).get("kvs", [])
    assert len(kvs) == 1, f"{key} not in etcd"
    return {"value": json.loads(base64.b64decode(kvs[0]["value"])),
            "mod_revision": kvs[0]["mod_revision"]}


POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: NS, labels: {app: web}}
spec:
  schedulerName: nobody  # stays Pending: this test is about the store
  containers: [{name: c, image: busybox}]
"""


def test_kubectl_on_an_etcd_backed_server_and_a_restart(tmp_path, etcd):
    prefix = f"/podling-e2e-{uuid.uuid4().hex[:8]}"
    ns = f"etcd-{uuid.uuid4().hex[:6]}"
    server = etcd_server(tmp_path, etcd, prefix)
    watch = None
    try:
        server.kubectl("create", "namespace", ns)
        watch = server.kubectl_popen("get", "pods", "-n", ns, "-w", "--output-watch-events",
                                     "--show-labels", "-v=6")
        LineReader(watch, "stderr").wait_for(
            lambda line: "watch=true" in line and " 200 OK" in line, timeout=30,
            what="kubectl's watch request answered")
        server.kubectl("apply", "-f", "-", input=POD.replace("NS", ns))
        server.kubectl("label", "pod", "web", "-n", ns, "v=two")
        got = json.loads(server.kubectl("get", "pod", "web", "-n", ns, "-o", "json").stdout)
        stored = etcd_get(etcd, f"{prefix}/pods/{ns}/web")
        assert got["metadata"]["resourceVersion"] == stored["mod_revision"]
        assert stored["value"]["metadata"]["labels"] == {"app": "web", "v": "two"}
        assert "resourceVersion" not in stored["value"]["metadata"]
        etcd_get(etcd, f"{prefix}/namespaces/{ns}")

        server.kill()
        server = etcd_server(tmp_path, etcd, prefix)
        again = json.loads(server.kubectl("get", "pod", "web", "-n", ns, "-o", "json").stdout)
        assert again["metadata"]["resourceVersion"] == got["metadata"]["resourceVersion"]
        assert again["metadata"]["uid"] == got["metadata"]["uid"]
    finally:
        server.kill()
        if watch is not None:
            watch.kill()
            out, _ = watch.communicate(timeout=10)
    lines = [line.split() for line in out.splitlines()[1:]]  # kubectl prints them at exit
    assert [line[:2] for line in lines[:2]] == [["ADDED", "web"], ["MODIFIED", "web"]], out
    assert lines[0][-1] == "app=web" and lines[1][-1] == "app=web,v=two", out


def test_a_write_when_etcd_is_gone_fails_with_a_status_and_reads_go_on(tmp_path, etcd):
    server = etcd_server(tmp_path, etcd, f"/podling-e2e-{uuid.uuid4().hex[:8]}")
    try:
        server.kubectl("create", "namespace", "kept")
        etcd.stop()
        failed = server.kubectl("create", "namespace", "lost", check=False, timeout=60)
        assert failed.returncode == 1
        assert failed.stderr.startswith("Error from server (InternalError): Internal error "
                                        "occurred: etcd: no endpoint answered: "), failed.stderr
        names = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
        assert "namespace/kept" in names and "namespace/lost" not in names
    finally:
        server.kill()


async def test_a_watch_resumed_on_another_server_and_after_a_compaction(tmp_path, etcd):
    """Two servers on one etcd: a watch from server A's resourceVersion, resumed on server B
    after A is gone, gets exactly the later changes; after etcd compacted them away, a
    server that never saw them answers that version with 410 Expired, as Kubernetes does."""
    from podling.api.resources import PODS
    from podling.client import ApiClient, ClientConfig, Expired
    from podling.storage.etcd import EtcdClient
    prefix = f"/podling-e2e-{uuid.uuid4().hex[:8]}"
    a = etcd_server(tmp_path / "a", etcd, prefix)
    b = start_server(str(tmp_path / "b" / "data"), str(tmp_path / "b" / "home"), "--datastore",
                     "etcd", "--etcd-endpoints", etcd.url, "--etcd-prefix", prefix,
                     "--token-file", str(tmp_path / "a" / "data" / "server" / "token"))
    late = None
    try:
        def client(server: Server) -> ApiClient:
            return ApiClient(ClientConfig(server=server.url, token=server.token,
                                          ca_file=server.ca_file))
        async with client(a) as api_a, client(b) as api_b:
            _, start = await api_a.list(PODS, "default")
            pod = {"metadata": {"name": "w"}, "spec": {
                "schedulerName": "nobody", "containers": [{"name": "c", "image": "busybox"}]}}
            created = await api_a.create(PODS, pod, namespace="default")
            await api_a.patch(PODS, "w", {"metadata": {"labels": {"v": "2"}}}, "default")
            a.kill(signal.SIGKILL)
            await api_b.delete(PODS, "w", "default")
            seen = []
            async for type_, obj in api_b.watch(PODS, "default", resource_version=start):
                if type_ != "BOOKMARK":
                    seen.append((type_, obj["metadata"].get("labels", {}).get("v")))
                if type_ == "DELETED":
                    break
            assert seen == [("ADDED", None), ("MODIFIED", "2"), ("DELETED", "2")]
            _, now = await api_b.list(PODS, "default")
        compacting = EtcdClient([etcd.url])
        await compacting.compact(int(now))
        await compacting.close()
        late = start_server(str(tmp_path / "c" / "data"), str(tmp_path / "c" / "home"),
                            "--datastore", "etcd", "--etcd-endpoints", etcd.url,
                            "--etcd-prefix", prefix, "--token-file",
                            str(tmp_path / "a" / "data" / "server" / "token"))
        async with client(late) as api_c:
            with pytest.raises(Expired):
                async for _ in api_c.watch(PODS, "default", resource_version=created[
                        "metadata"]["resourceVersion"]):
                    pass
    finally:
        for server in (a, b, late):
            if server is not None:
                server.kill()


def test_an_object_too_large_for_etcd_is_a_413_status(tmp_path, etcd):
    server = etcd_server(tmp_path, etcd, f"/podling-e2e-{uuid.uuid4().hex[:8]}")
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
               "spec": {"schedulerName": "nobody", "containers": [  # < 3 MiB, > etcd's 1.5
                   {"name": "c", "image": "busybox", "args": ["x" * 1_700_000]}]}}
        (tmp_path / "big.json").write_text(json.dumps(pod))
        out = server.kubectl("create", "-f", str(tmp_path / "big.json"), check=False)
        assert out.returncode == 1
        assert out.stderr.startswith(
            'Error from server (RequestEntityTooLarge): error when creating "'
            f'{tmp_path}/big.json": Request entity too large: the object is larger than etcd '
            "accepts"), out.stderr
        assert server.kubectl("get", "pods", "-o", "name").stdout == ""
    finally:
        server.kill()
