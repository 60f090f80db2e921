"""Faults injected at the boundaries with failpoints (podling/util/failpoints.py), switched on
and off through the file ``PODLING_FAILPOINTS_FILE`` of a cluster of its own: a full disk
under the datastore, a registry that drops the connection mid-blob or serves a corrupt blob,
runc and the CNI bridge plugin failing or hanging, conmon killed. Each leaves a clear status
and event, nothing half-made on the host, and the pod recovers once the fault is gone.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess

import pytest
from kubectl_util import wait_until
from manifests import busybox, pod
from test_pod_lifecycle import cstatus, events, host_leftovers, pod_json, pod_runtime_ids

from podling.runtime.oci.core import MONITOR_LOST

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root")


class FaultyCluster:
    """The module's cluster and the file that switches its failpoints."""

    def __init__(self, cluster, switch: str) -> None:
        self.cluster, self.switch = cluster, switch
        self.server, self.node, self.run_dir = cluster.server, cluster.node, cluster.run_dir
        self.bridge, self.data_dir = cluster.bridge, cluster.data_dir

    def kubectl(self, *args, **kw):
        return self.cluster.kubectl(*args, **kw)

    def runc_list(self) -> list[str]:
        return self.cluster.runc_list()

    def fail(self, terms: str) -> None:
        with open(self.switch + ".tmp", "w") as f:
            f.write(terms)
        os.replace(self.switch + ".tmp", self.switch)

    def heal(self) -> None:
        if os.path.exists(self.switch):
            os.unlink(self.switch)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, demo_registry, e2e_start_server, make_cluster):
    """A one-node cluster whose failpoints follow a file; no offline images, so the first
    pull of busybox downloads its blobs."""
    switch = str(tmp_path_factory.mktemp("faults") / "failpoints")
    saved = os.environ.get("PODLING_FAILPOINTS_FILE")
    with contextlib.ExitStack() as stack:
        os.environ["PODLING_FAILPOINTS_FILE"] = switch  # the server inherits it
        try:
            cluster = stack.enter_context(make_cluster(
                tmp_path_factory, demo_registry, e2e_start_server, "--disable-offline-images"))
        finally:
            if saved is None:
                os.environ.pop("PODLING_FAILPOINTS_FILE", None)
            else:
                os.environ["PODLING_FAILPOINTS_FILE"] = saved
        faulty = FaultyCluster(cluster, switch)
        try:
            yield faulty
        finally:
            faulty.heal()


def _events_of(cluster, name: str, reason: str) -> list[str]:
    return [e["message"] for e in events(cluster, name) if e["reason"] == reason]


def _running(cluster, name: str) -> bool:
    return (pod_json(cluster, name) or {}).get("status", {}).get("phase") == "Running"


def _sleeper(cluster, name: str, **container) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        pod(name, cluster.node, [busybox("c", "sleep 3600", imagePullPolicy="IfNotPresent",
                                         **container)])))


def _delete_and_check(cluster, name: str) -> None:
    found = pod_json(cluster, name)
    uid, ip = found["metadata"]["uid"], (found.get("status") or {}).get("podIP", "")
    sandboxes, containers = pod_runtime_ids(cluster, uid)
    cluster.kubectl("delete", "pod", name, "--timeout=60s", timeout=90)
    left = host_leftovers(cluster, uid, sandboxes, containers, ip)
    assert not left, left


def test_a_registry_that_corrupts_or_drops_a_blob(faulty) -> None:
    faulty.fail("registry.blob=corrupt")
    _sleeper(faulty, "fault-pull")
    messages = wait_until(lambda: _events_of(faulty, "fault-pull", "Failed"), timeout=60,
                          message="a pull failure")
    assert "hashes to" in messages[0], messages
    # nothing of the bad blob is kept: no ingest left over (the next try waits for back-off)
    assert not glob.glob(os.path.join(faulty.data_dir, "**", "ingest", "*.part"),
                         recursive=True)
    faulty.fail("registry.blob=drop")
    wait_until(lambda: any("download interrupted" in m
                           for m in _events_of(faulty, "fault-pull", "Failed")),
               timeout=90, message="an interrupted download")
    faulty.heal()
    wait_until(lambda: _running(faulty, "fault-pull"), timeout=120,
               message="the pod once the registry is sound")
    _delete_and_check(faulty, "fault-pull")


def test_a_full_disk_under_the_datastore(faulty) -> None:
    faulty.kubectl("create", "configmap", "fault-kept", "--from-literal=a=1")
    faulty.fail("storage.write=enospc")
    refused = faulty.kubectl("create", "configmap", "fault-full", "--from-literal=a=1",
                             check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error: failed to create configmap: Internal "
                                             "error occurred: sqlite: write of ")
    assert refused.stderr.strip().endswith("failed: database or disk is full")
    faulty.heal()
    assert faulty.kubectl("get", "configmap", "fault-full", check=False).returncode == 1
    kept = json.loads(faulty.kubectl("get", "configmap", "fault-kept", "-o", "json").stdout)
    assert kept["data"] == {"a": "1"}
    faulty.kubectl("create", "configmap", "fault-full", "--from-literal=a=1")


@pytest.mark.parametrize("kind", ["error", "hang"])
def test_runc_that_fails_or_hangs(faulty, kind) -> None:
    name = f"fault-runc-{kind}"
    faulty.fail(f"runc.create=1*{kind}")
    _sleeper(faulty, name)
    failed = wait_until(lambda: [m for m in _events_of(faulty, name, "Failed")], timeout=90,
                        message="a failed container create")
    expected = "failpoint runc.create: runc create failed" if kind == "error" else \
        "conmon did not report within"
    assert any(expected in m for m in failed), failed
    wait_until(lambda: _running(faulty, name), timeout=120, message="the next attempt runs")
    assert cstatus(pod_json(faulty, name))["restartCount"] <= 1
    assert not [a for a in _conmon_argvs(faulty.run_dir).values() if "failpoint-runc" in a]
    wait_until(lambda: not _processes_running("failpoint-runc"), timeout=10,
               message="a hung runc killed with its conmon (and reaped)")
    _delete_and_check(faulty, name)


@pytest.mark.parametrize("kind", ["error", "hang"])
def test_a_cni_plugin_that_fails_or_hangs(faulty, kind) -> None:
    name = f"fault-cni-{kind}"
    veths = _veth_count(faulty)
    faulty.fail(f"cni.add=1*{kind}")
    _sleeper(faulty, name)
    failed = wait_until(lambda: _events_of(faulty, name, "FailedCreatePodSandBox"),
                        timeout=90, message="a failed sandbox")
    expected = "failpoint cni.add: bridge failed" if kind == "error" else "timed out"
    assert expected in failed[0], failed
    wait_until(lambda: _running(faulty, name), timeout=120, message="the next sandbox runs")
    uid = pod_json(faulty, name)["metadata"]["uid"]
    assert len(pod_runtime_ids(faulty, uid)[0]) == 1  # the failed sandbox is gone
    assert _veth_count(faulty) == veths + 1  # the pod's, and no other
    _delete_and_check(faulty, name)


def test_conmon_killed(faulty) -> None:
    _sleeper(faulty, "fault-conmon")
    wait_until(lambda: _running(faulty, "fault-conmon"), timeout=90, message="Running")
    cid = cstatus(pod_json(faulty, "fault-conmon"))["containerID"].split("://")[-1]
    monitors = [pid for pid, argv in _conmon_argvs(faulty.run_dir).items() if cid in argv]
    assert len(monitors) == 1
    os.kill(monitors[0], signal.SIGKILL)
    wait_until(lambda: cstatus(pod_json(faulty, "fault-conmon")).get("restartCount", 0) >= 1
               and _running(faulty, "fault-conmon"), timeout=120,
               message="the container replaced after its monitor died")
    status = cstatus(pod_json(faulty, "fault-conmon"))
    assert status["containerID"].split("://")[-1] != cid
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["message"] == MONITOR_LOST
    state = subprocess.run(["runc", "--root", os.path.join(faulty.run_dir, "runtime", "runc"),
                            "state", cid], capture_output=True, text=True).stdout
    assert json.loads(state)["status"] == "stopped"  # kept, as the kubelet keeps the last
    _delete_and_check(faulty, "fault-conmon")


def _conmon_argvs(run_dir: str) -> dict[int, str]:
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if argv.split(" ")[0].endswith("conmon") and run_dir in argv:
            found[int(pid)] = argv
    return found


def _processes_running(word: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", word], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def _veth_count(cluster) -> int:
    out = subprocess.run(["ip", "-o", "link", "show", "master", cluster.bridge],
                         capture_output=True,
                         text=True).stdout
    return len(out.splitlines())
