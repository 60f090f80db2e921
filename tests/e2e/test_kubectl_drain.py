"""Node lifecycle with the real kubectl: cordon, uncordon, drain (pods/eviction) and a node
whose Lease stops being renewed turning Unknown with the unreachable taints.

The server runs without agent and scheduler; Nodes, Leases and bound pods are made by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from builders import make_node, make_pod

from podling_e2e import start_server, wait_for

GRACE = 3  # --node-monitor-grace-period for the lifecycle test


def node_yaml(name: str) -> str:
    """A bare Node, Ready as a kubelet reports it, as JSON for ``kubectl create -f -``."""
    return json.dumps(make_node(name).bare().ready(
        reason="KubeletReady", message="kubelet is posting ready status").build())


def micro_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def server(tmp_path):
    srv = start_server(str(tmp_path / "data"), str(tmp_path / "home"), "--disable-scheduler",
                       "--node-monitor-grace-period", f"{GRACE}s")
    yield srv
    srv.kill()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


@pytest.fixture
def slow_server(tmp_path):
    """The default 40 s grace: hand-made nodes stay Ready for the whole test."""
    srv = start_server(str(tmp_path / "data"), str(tmp_path / "home"), "--disable-scheduler")
    yield srv
    srv.kill()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


def node_status_column(srv, name: str) -> str:
    out = srv.kubectl("get", "node", name, "--no-headers").stdout.split()
    return out[1]


def test_cordon_and_uncordon(slow_server) -> None:
    srv = slow_server
    srv.kubectl("create", "-f", "-", input=node_yaml("n1"))
    assert node_status_column(srv, "n1") == "Ready"
    assert srv.kubectl("cordon", "n1").stdout.strip() == "node/n1 cordoned"
    assert node_status_column(srv, "n1") == "Ready,SchedulingDisabled"
    assert srv.kubectl("get", "node", "n1", "-o",
                       "jsonpath={.spec.unschedulable}").stdout == "true"
    assert srv.kubectl("cordon", "n1").stdout.strip() == "node/n1 already cordoned"
    assert srv.kubectl("uncordon", "n1").stdout.strip() == "node/n1 uncordoned"
    assert node_status_column(srv, "n1") == "Ready"


def test_drain_evicts_the_pods_of_the_node(slow_server) -> None:
    srv = slow_server
    for name in ("n1", "n2"):
        srv.kubectl("create", "-f", "-", input=node_yaml(name))
    for pod, node in (("a", "n1"), ("b", "n1"), ("other", "n2")):
        srv.kubectl("create", "-f", "-", input=json.dumps(
            make_pod(pod, None).bare().node(node).build()))
    refused = srv.kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=20s", check=False)
    assert refused.returncode != 0
    assert "cannot delete Pods that declare no controller (use --force to override)" in \
        refused.stderr
    result = srv.kubectl("drain", "n1", "--ignore-daemonsets", "--grace-period=0", "--force",
                         "--timeout=30s")
    assert "evicting pod default/a" in result.stderr + result.stdout
    assert "pod/a evicted" in result.stdout and "pod/b evicted" in result.stdout
    assert result.stdout.strip().endswith("node/n1 drained")
    names = srv.kubectl("get", "pods", "-o", "name").stdout.split()
    assert names == ["pod/other"]
    assert node_status_column(srv, "n1") == "Ready,SchedulingDisabled"


def test_drain_with_a_grace_period_marks_pods_terminating(slow_server) -> None:
    srv = slow_server
    srv.kubectl("create", "-f", "-", input=node_yaml("n1"))
    srv.kubectl("create", "-f", "-", input=json.dumps(
        make_pod("slow", None).bare().node("n1").grace(60).build()))
    # no agent finishes the pod, so drain waits for it and gives up after its timeout
    result = srv.kubectl("drain", "n1", "--force", "--timeout=3s", check=False)
    assert result.returncode != 0
    assert "pod/slow evicted" not in result.stdout
    pod = json.loads(srv.kubectl("get", "pod", "slow", "-o", "json").stdout)
    assert pod["metadata"]["deletionTimestamp"]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 60
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"
    assert "Terminating" in srv.kubectl("get", "pod", "slow").stdout


def _ready(srv, name: str) -> str:
    return srv.kubectl("get", "node", name, "-o",
                       'jsonpath={.status.conditions[?(@.type=="Ready")].status}').stdout


def _taints(srv, name: str) -> list[dict]:
    return json.loads(srv.kubectl("get", "node", name, "-o",
                                  "jsonpath={.spec.taints}").stdout or "[]")


def _renew(srv, name: str) -> None:
    srv.kubectl("patch", "lease", name, "-n", "kube-node-lease", "--type=merge", "-p",
                json.dumps({"spec": {"renewTime": micro_now()}}))


def test_a_node_whose_lease_is_not_renewed_turns_unknown(server) -> None:
    srv = server
    srv.kubectl("create", "-f", "-", input=node_yaml("n1"))
    srv.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                 "renewTime": micro_now()}}))
    wait_for(lambda: _ready(srv, "n1") == "Unknown", timeout=GRACE + 15,
             message="node n1 did not turn Unknown")
    node = json.loads(srv.kubectl("get", "node", "n1", "-o", "json").stdout)
    [ready] = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown",
                                                   "Kubelet stopped posting node status.")
    types = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert types == {"Ready": "Unknown", "MemoryPressure": "Unknown",
                     "DiskPressure": "Unknown", "PIDPressure": "Unknown"}
    wait_for(lambda: len(_taints(srv, "n1")) == 2, timeout=10)
    taints = {t["effect"]: t for t in _taints(srv, "n1")}
    assert set(taints) == {"NoSchedule", "NoExecute"}
    assert {t["key"] for t in taints.values()} == {"node.kubernetes.io/unreachable"}
    assert taints["NoExecute"]["timeAdded"]
    assert node_status_column(srv, "n1") == "NotReady"

    # the agent comes back: renews its lease and reports Ready=True
    _renew(srv, "n1")
    srv.kubectl("patch", "node", "n1", "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status",
                     "lastHeartbeatTime": micro_now()[:19] + "Z"}]}}))
    wait_for(lambda: _taints(srv, "n1") == [], timeout=10,
             message="the unreachable taints were not removed")
    assert _ready(srv, "n1") == "True"
