"""Three nodes on one machine: `podling server` (its local agent is node 172.31.2.11) plus two
`podling agent` processes (172.31.2.12, 172.31.2.13), each with its own data dir, runtime dir,
CNI bridge and pod CIDR. The node names are only names: every node API listens on 127.0.0.1.

Scheduling by nodeSelector, a pod waiting for a label, nodeName pods (no Scheduled event; the
agent's admission refuses one whose selector does not match), pod-to-pod traffic across nodes,
and — when the server has the node lifecycle controller — a stopped agent's node turning
Unknown with new pods going elsewhere. The tests run in file order on one cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest
from builders import make_pod
from kubectl_util import get_json, is_gone, unique, wait_until
from podling_e2e import node_leftovers, runc_list, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
NODES = ("172.31.2.11", "172.31.2.12", "172.31.2.13")
GRACE = "20s"  # node monitor grace period (the agents renew their Lease every 10 s)
AFFINITY = "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE = ("0/3 nodes are available: 3 node(s) didn't match Pod's node "
                 "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not "
                 "helpful for scheduling.")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root")


def _has_lifecycle_flag() -> bool:
    from podling.cli.main import _parser
    _args, extra = _parser().parse_known_args(["server", "--node-monitor-grace-period", GRACE])
    return not extra


class Node:
    """One node's host state (and, for the extra agents, its `podling agent` process)."""

    def __init__(self, name: str, data_dir: str, run_dir: str, bridge: str, log_path: str):
        self.name, self.data_dir, self.run_dir, self.bridge = name, data_dir, run_dir, bridge
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def flags(self) -> list[str]:
        return ["--node-name", self.name, "--data-dir", self.data_dir, "--run-dir",
                self.run_dir, "--bridge-name", self.bridge]

    def start_agent(self, server) -> None:
        token_file = os.path.join(server.data_dir, "server", "admin.token")
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podling", "agent", "--server", server.url,
             "--token-file", token_file, "--ca-file", server.ca_file,
             "--node-api-address", "127.0.0.1", "--node-api-port", "0", *self.flags()],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()

    def stop_agent(self) -> None:
        terminate(self.process)

    def runc_list(self) -> list[str]:
        return runc_list(self.run_dir)

    def purge(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "podling", "purge", *self.flags()],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    def leftovers(self) -> list[str]:
        return node_leftovers(self.name, data_dir=self.data_dir, run_dir=self.run_dir,
                              bridge=self.bridge)


class Multi:
    def __init__(self, server, nodes: list[Node], lifecycle: bool):
        self.server, self.nodes, self.lifecycle = server, nodes, lifecycle

    def kubectl(self, *args, **kw):
        return self.server.kubectl(*args, **kw)

    def pod(self, name: str) -> dict:
        return get_json(self.server, "pod", name)

    def events(self, name: str) -> list[dict]:
        return get_json(self.server, "events", "--field-selector",
                        f"involvedObject.name={name}")["items"]

    def logs(self) -> str:
        out = []
        for node in self.nodes:
            with open(node.log_path) as f:
                out.append(f"--- {node.name}\n" + f.read()[-4000:])
        return "\n".join(out)


def pod_json(name: str, command: str = "echo READY; exec sleep 3600", **spec) -> str:
    """A bare busybox pod running ``sh -c command`` (grace 1 s) with ``spec`` added, as JSON."""
    return json.dumps(make_pod(name, None).container("main", command=["sh", "-c", command])
                      .bare().grace(1).set_spec(**spec).build())


def wait_running(multi: Multi, name: str, timeout: float = 90) -> dict:
    def running():
        pod = multi.pod(name)
        return pod if pod.get("status", {}).get("phase") == "Running" else None
    try:
        return wait_until(running, timeout=timeout, interval=0.5, message=f"{name} Running")
    except AssertionError:
        print(multi.logs())
        raise


def delete(multi: Multi, *names: str) -> None:
    multi.kubectl("delete", "pod", *names, "--wait=true", "--timeout=60s", timeout=90)


@pytest.fixture(scope="module")
def multi(tmp_path_factory, demo_registry, e2e_start_server):
    tag = secrets.token_hex(2)
    base = tmp_path_factory.mktemp("multinode")
    nodes = []
    for i, name in enumerate(NODES, 1):
        data_dir = str(base / f"data{i}")
        os.makedirs(data_dir)
        shutil.copy(demo_registry, os.path.join(data_dir, "registries.yaml"))
        nodes.append(Node(name, data_dir, f"/run/podling-mn-{tag}-{i}", f"pdm{tag}{i}",
                          str(base / f"node{i}.log")))
    lifecycle = _has_lifecycle_flag()
    first = nodes[0]
    extra = ["--node-monitor-grace-period", GRACE] if lifecycle else []
    server = e2e_start_server(first.data_dir, str(base / "home"), "--node-name", first.name,
                              "--run-dir", first.run_dir, "--bridge-name", first.bridge,
                              *extra, with_agent=True, log_path=first.log_path)
    multi = Multi(server, nodes, lifecycle)
    try:
        for node in nodes[1:]:
            node.start_agent(server)

        def all_ready():
            items = get_json(server, "nodes")["items"]
            ready = {n["metadata"]["name"] for n in items
                     for c in n.get("status", {}).get("conditions", [])
                     if c["type"] == "Ready" and c["status"] == "True"}
            return ready >= set(NODES)
        try:
            wait_until(all_ready, timeout=60, interval=0.5, message="three Ready nodes")
        except AssertionError:
            print(multi.logs())
            raise
        yield multi
    finally:
        server.kubectl("delete", "pods", "--all", "--all-namespaces", "--wait=true",
                       "--timeout=60s", check=False, timeout=90)
        for node in nodes[1:]:
            node.stop_agent()
        server.kill()
        purged = [(node.name, node.purge()) for node in nodes]
        failed = [(name, p.stderr) for name, p in purged if p.returncode != 0]
        left = [problem for node in nodes for problem in node.leftovers()]
        assert not failed and not left, (failed, left)


def test_three_nodes_with_their_own_pod_cidrs(multi):
    items = {n["metadata"]["name"]: n for n in get_json(multi.server, "nodes")["items"]}
    assert set(items) == set(NODES)
    cidrs = {items[name]["spec"].get("podCIDR") for name in NODES}
    assert len(cidrs) == 3 and None not in cidrs
    for name in NODES:
        assert items[name]["metadata"]["labels"]["kubernetes.io/hostname"] == name


def test_node_selector_places_the_pod(multi):
    name = unique("sel")
    multi.kubectl("apply", "-f", "-", input=pod_json(
        name, nodeSelector={"kubernetes.io/hostname": "172.31.2.12"}))
    pod = wait_running(multi, name)
    assert pod["spec"]["nodeName"] == "172.31.2.12"
    assert pod["status"]["podIP"] in _cidr_hosts(multi, "172.31.2.12", pod["status"]["podIP"])
    scheduled = [e for e in multi.events(name) if e["reason"] == "Scheduled"]
    assert [e["message"] for e in scheduled] == \
        [f"Successfully assigned default/{name} to 172.31.2.12"]
    delete(multi, name)


def _cidr_hosts(multi: Multi, node: str, ip: str) -> list[str]:
    """[ip] when ``ip`` lies in the node's pod CIDR, else []."""
    import ipaddress
    cidr = get_json(multi.server, "node", node)["spec"]["podCIDR"]
    return [ip] if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr) else []


def test_pod_waits_for_a_label_then_runs(multi):
    name, key = unique("late"), f"podling-test/{unique('role')}"
    multi.kubectl("apply", "-f", "-", input=pod_json(name, nodeSelector={key: "yes"}))

    def failed_scheduling():
        return [e for e in multi.events(name) if e["reason"] == "FailedScheduling"]
    events = wait_until(failed_scheduling, timeout=20, message="FailedScheduling")
    assert events[0]["type"] == "Warning" and events[0]["message"] == UNSCHEDULABLE
    pod = multi.pod(name)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("False", "Unschedulable", UNSCHEDULABLE)
    time.sleep(2)  # still Pending a while later
    assert not multi.pod(name)["spec"].get("nodeName")

    multi.kubectl("label", "node", "172.31.2.13", f"{key}=yes")
    labelled = time.monotonic()
    try:
        wait_until(lambda: multi.pod(name)["spec"].get("nodeName"), timeout=5, interval=0.2,
                   message="bound within a few seconds of the label")
        assert time.monotonic() - labelled < 5
        pod = wait_running(multi, name, timeout=30)
        assert pod["spec"]["nodeName"] == "172.31.2.13"
    finally:
        delete(multi, name)
        multi.kubectl("label", "node", "172.31.2.13", f"{key}-")


def test_node_name_pod_starts_without_scheduled_event(multi):
    name = unique("pinned")
    multi.kubectl("apply", "-f", "-", input=pod_json(name, nodeName="172.31.2.13"))
    pod = wait_running(multi, name)
    assert pod["spec"]["nodeName"] == "172.31.2.13"
    reasons = {e["reason"] for e in multi.events(name)}
    assert "Started" in reasons and "Scheduled" not in reasons
    assert multi.pod(name)["spec"].get("schedulerName") == "default-scheduler"
    delete(multi, name)


@pytest.mark.parametrize("spec, reason, message", [
    ({"nodeSelector": {"podling-test/nowhere": "true"}}, "NodeAffinity", AFFINITY),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["172.31.2.11"]}]}]}}}},
     "NodeAffinity", AFFINITY),
    ({"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1"],
                      "resources": {"requests": {"cpu": "100000"}}}]}, "OutOfcpu",
     "Node didn't have enough resource: cpu, requested: 100000000, used: "),
], ids=["selector", "required-affinity", "cpu"])
def test_node_name_pod_refused_by_admission(multi, spec, reason, message):
    name = unique("refused")
    multi.kubectl("apply", "-f", "-", input=pod_json(name, nodeName="172.31.2.12", **spec))

    def failed():
        pod = multi.pod(name)
        return pod if pod.get("status", {}).get("phase") == "Failed" else None
    pod = wait_until(failed, timeout=20, interval=0.3, message=f"{name} Failed")
    status = pod["status"]
    assert status["reason"] == reason
    assert status["message"].startswith("Pod was rejected: " + message)
    warnings = [e for e in multi.events(name) if e["reason"] == reason]
    assert warnings and warnings[0]["type"] == "Warning"
    assert warnings[0]["message"] == status["message"][len("Pod was rejected: "):]
    assert warnings[0]["source"]["component"] == "kubelet"
    assert not status.get("containerStatuses") or all(
        "running" not in c.get("state", {}) for c in status["containerStatuses"])
    reasons = {e["reason"] for e in multi.events(name)}
    assert not reasons & {"Pulling", "Created", "Started", "Scheduled"}
    # kubectl shows the reason as the pod's status
    row = multi.kubectl("get", "pod", name, "--no-headers").stdout.split()
    assert row[2] == reason
    delete(multi, name)


def test_pods_on_two_nodes_reach_each_other_by_pod_ip(multi):
    # 172.31.2.12 and .13 (pod CIDRs 10.42.1.0/24, 10.42.2.0/24): every one-node cluster on
    # this machine (other tests, a dev server on podling0) also routes 10.42.0.0/24, the
    # first node's range, so replies to a pod of .11 may leave through another bridge.
    server_name, client_name = unique("nc-server"), unique("nc-client")
    multi.kubectl("apply", "-f", "-", input=pod_json(
        server_name, "exec nc -ll -p 8080 -e echo hi-from-172.31.2.12",
        nodeName="172.31.2.12"))
    server_ip = wait_running(multi, server_name)["status"]["podIP"]
    client = ('for i in $(seq 300); do out=$(timeout 2 nc $SERVER 8080 </dev/null 2>/dev/null); '
              'case "$out" in *hi-from*) break;; esac; sleep 0.2; done; echo "got:$out"; '
              'exec sleep 3600')
    manifest = json.loads(pod_json(client_name, client, nodeName="172.31.2.13"))
    manifest["spec"]["containers"][0]["env"] = [{"name": "SERVER", "value": server_ip}]
    multi.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    client_ip = wait_running(multi, client_name)["status"]["podIP"]
    assert client_ip != server_ip and not _cidr_hosts(multi, "172.31.2.12", client_ip)
    try:
        wait_until(lambda: "got:" in multi.kubectl("logs", client_name).stdout, timeout=90,
                   interval=0.5, message="client output")
        assert "got:hi-from-172.31.2.12" in multi.kubectl("logs", client_name).stdout
    finally:
        delete(multi, server_name, client_name)


def test_pod_deleted_while_its_agent_is_down_goes_when_the_agent_returns(multi):
    """kill -9 of an agent: its containers keep running; a deletion waits for the agent and
    finishes (containers stopped, nothing left) once it is back."""
    node = multi.nodes[1]
    name = unique("orphaned")
    multi.kubectl("apply", "-f", "-", input=pod_json(name, nodeName=node.name))
    wait_running(multi, name)
    running = node.runc_list()
    assert len(running) == 2  # the pause sandbox and the container
    node.process.kill()  # SIGKILL: no cleanup at all
    node.process.wait(10)
    multi.kubectl("delete", "pod", name, "--wait=false")
    pod = multi.pod(name)
    assert pod["metadata"].get("deletionTimestamp")  # Terminating: only its agent ends it
    assert node.runc_list() == running  # the containers outlived their agent
    node.start_agent(multi.server)
    wait_until(lambda: is_gone(multi.server, "pod", name), timeout=90, interval=0.5,
               message=f"{name} deleted after the agent came back")
    wait_until(lambda: node.runc_list() == [], timeout=30, interval=0.5,
               message="containers removed")


def test_stopped_agent_node_turns_unknown_and_new_pods_go_elsewhere(multi):
    if not multi.lifecycle:
        pytest.skip("podling server has no --node-monitor-grace-period (node lifecycle)")
    down = multi.nodes[2]
    assert not [p for p in get_json(multi.server, "pods", "--all-namespaces")["items"]
                if p["spec"].get("nodeName") == down.name]
    down.stop_agent()
    stopped = time.monotonic()

    def unknown():
        node = get_json(multi.server, "node", down.name)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        return node if ready["status"] == "Unknown" else None
    node = wait_until(unknown, timeout=45 + 20, interval=1, message="Ready=Unknown")
    assert time.monotonic() - stopped < 45 + 20
    taints = {t["key"] for t in node["spec"].get("taints", [])}
    assert "node.kubernetes.io/unreachable" in taints
    # even a pod preferring the lost node goes elsewhere
    name = unique("elsewhere")
    multi.kubectl("apply", "-f", "-", input=pod_json(name, affinity={"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                  "values": [down.name]}]}}]}}))
    pod = wait_running(multi, name)
    assert pod["spec"]["nodeName"] in NODES[:2]
    delete(multi, name)
    assert is_gone(multi.server, "pod", name)
