"""Three `podling server` processes on one three-member etcd cluster, with two `podling
agent` processes that each know all three servers: one cluster, whichever server answers.

The first server founds the cluster; the second joins with `--server` and the server token,
the third with the token alone. The agents join with the agents' join token (their CA
pinned by its hash, their node tokens recorded in etcd) and list the servers in different
orders. Then the server holding the scheduler's lease is killed with SIGKILL during a stream
of 200 pod creates. The tests run in file order on one cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from builders import make_pod
from kubectl_util import LineReader, get_json, unique, wait_until
from podling_e2e import Server, node_leftovers, runc_list, start_server, terminate

from podling.api.resources import LEASES, PODS
from podling.cli.server import leader_identity
from podling.client import ApiClient, ApiConnectionError, ApiError, ClientConfig
from podling.storage.etcd.testing import EtcdCluster

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
NODES = ("172.31.4.21", "172.31.4.22")
CLUSTER_CIDR = "10.44.0.0/16"
CREATES, KILL_AFTER = 200, 50

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root"),
    pytest.mark.skipif(shutil.which("etcd") is None,
                       reason="needs etcd (make install-test installs etcd-server)"),
]


@dataclass
class Node:
    name: str
    data_dir: str
    run_dir: str
    bridge: str
    log_path: str
    process: subprocess.Popen | None = None

    def flags(self) -> list[str]:
        return ["--node-name", self.name, "--data-dir", self.data_dir, "--run-dir",
                self.run_dir, "--bridge-name", self.bridge]

    def start(self, servers: list[str], join_token_file: str) -> None:
        """`podling agent` with every server (the first is where it starts) and the join
        token: no CA file, it is fetched and pinned by the token's hash."""
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "podling", "agent", "--server", ",".join(servers),
                 "--token-file", join_token_file, "--node-api-address", "127.0.0.1",
                 "--node-api-port", "0", *self.flags()],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def purge(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "podling", "purge", *self.flags()],
                              cwd=REPO, capture_output=True, text=True, timeout=120)


@dataclass
class Cluster:
    servers: list[Server]
    nodes: list[Node]
    killed: set[int]

    def alive(self) -> Server:
        return next(s for i, s in enumerate(self.servers) if i not in self.killed)

    def client(self, first: int) -> ApiClient:
        """Our client, starting at server ``first`` and falling back to the others."""
        urls = [s.url for s in self.servers]
        server = self.servers[first]
        return ApiClient(ClientConfig(server=urls[first], token=server.token,
                                      ca_file=server.ca_file, fallback_servers=tuple(
                                          u for i, u in enumerate(urls) if i != first)))

    def leader(self, lease: str) -> int:
        """The index of the server holding ``kube-system/<lease>``."""
        holder = lease_holder(self.alive(), lease)
        identities = [leader_identity(s.data_dir) for s in self.servers]
        return identities.index(holder)


def lease_holder(server: Server, name: str) -> str:
    spec = get_json(server, "lease", name, "-n", "kube-system").get("spec", {})
    return spec.get("holderIdentity", "")


def pod_json(name: str) -> str:
    return json.dumps(make_pod(name, None).container("main", command=["sleep", "3600"])
                      .bare().grace(1).build())


def ready_nodes(server: Server) -> set[str]:
    return {n["metadata"]["name"] for n in get_json(server, "nodes")["items"]
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, demo_registry):
    tag = secrets.token_hex(2)
    base = tmp_path_factory.mktemp("multiserver")
    with EtcdCluster(str(base / "etcd"), 3) as etcd:
        common = ("--datastore", "etcd", "--etcd-endpoints", ",".join(etcd.urls),
                  "--etcd-prefix", f"/podling-ms-{tag}", "--cluster-cidr", CLUSTER_CIDR)
        servers: list[Server] = []
        nodes = [Node(name, str(base / f"node{i}"), f"/run/podling-ms-{tag}-{i}",
                      f"pdx{tag}{i}", str(base / f"node{i}.log"))
                 for i, name in enumerate(NODES)]
        made = Cluster(servers, nodes, set())
        try:
            def start(i: int, *extra: str) -> Server:
                return start_server(str(base / f"server{i}"), str(base / f"home{i}"), *common,
                                    *extra, with_scheduler=True,
                                    log_path=str(base / f"server{i}.log"))
            servers.append(start(0))
            token_file = os.path.join(servers[0].data_dir, "server", "token")
            servers.append(start(1, "--token-file", token_file, "--server", servers[0].url))
            with open(token_file) as f:
                servers.append(start(2, "--token", f.read().strip()))
            wait_until(lambda: lease_holder(servers[0], "podling-scheduler"), timeout=30,
                       message="a scheduler leader")
            urls = [s.url for s in servers]
            first = made.leader("podling-scheduler")  # node 0 starts on the leader
            join = os.path.join(servers[0].data_dir, "server", "node-token")
            for i, node in enumerate(nodes):
                os.makedirs(node.data_dir)
                shutil.copy(demo_registry, os.path.join(node.data_dir, "registries.yaml"))
                start_at = (first + i) % len(urls)
                node.start(urls[start_at:] + urls[:start_at], join)
            wait_until(lambda: ready_nodes(servers[0]) >= set(NODES), timeout=90,
                       interval=0.5, message="two Ready nodes")
            yield made
        finally:
            _tear_down(made)


def _tear_down(cluster: Cluster) -> None:
    if len(cluster.killed) < len(cluster.servers):
        cluster.alive().kubectl("delete", "pods", "--all", "--all-namespaces", "--wait=true",
                                "--timeout=300s", check=False, timeout=330)
    for node in cluster.nodes:
        terminate(node.process)
    for server in cluster.servers:
        server.kill()
    purged = [(node.name, node.purge()) for node in cluster.nodes]
    failed = [(name, p.stderr) for name, p in purged if p.returncode != 0]
    left = [problem for node in cluster.nodes for problem in node_leftovers(
        node.name, data_dir=node.data_dir, run_dir=node.run_dir, bridge=node.bridge)]
    assert not failed and not left, (failed, left)


def test_every_server_serves_the_same_cluster(cluster):
    a, b, c = cluster.servers
    for name in ("ca.crt", "admin.token", "service-account.key", "node-token"):
        contents = {open(os.path.join(s.data_dir, "server", name)).read() for s in (a, b, c)}
        assert len(contents) == 1, name
    for server in (a, b, c):  # each agent's node token is accepted by every server
        assert ready_nodes(server) == set(NODES)
    ns = unique("ms")
    c.kubectl("create", "namespace", ns)
    watch = a.kubectl_popen("get", "pods", "-n", ns, "-w", "-o", "name")
    try:
        lines = LineReader(watch)
        names = [unique("p") for _ in (a, b, c)]
        for server, name in zip((a, b, c), names):
            server.kubectl("apply", "-n", ns, "-f", "-", input=pod_json(name))
        for name in names:  # a write through any server reaches a watch on A
            lines.wait_for(lambda line, n=name: line == f"pod/{n}", timeout=20,
                           what=f"pod/{name} in A's watch")
    finally:
        watch.kill()
        watch.wait()
    for name in names:
        a.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", ns, "--timeout=90s",
                  timeout=120)
    placed = {get_json(b, "pod", name, "-n", ns)["spec"]["nodeName"] for name in names}
    assert placed <= set(NODES)


def test_a_kubeconfig_switches_to_another_server(cluster, tmp_path):
    """As the README says: one kubeconfig, a context per server (one CA, one admin)."""
    a, b, _ = cluster.servers
    config = tmp_path / "kubeconfig"
    shutil.copy(a.kubeconfig, config)
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=str(config))

    def kubectl(*args: str) -> str:
        return subprocess.run(["kubectl", *args], env=env, check=True, capture_output=True,
                              text=True, timeout=60).stdout
    kubectl("config", "set-cluster", "podling-b", "--server", b.url,
            "--certificate-authority", a.ca_file, "--embed-certs")
    kubectl("config", "set-context", "podling-b", "--cluster", "podling-b", "--user", "admin")
    kubectl("config", "use-context", "podling-b")
    assert kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
                   ) == b.url
    assert set(kubectl("get", "nodes", "-o", "name").split()) == {f"node/{n}" for n in NODES}


async def _create(api: ApiClient, ns: str, names: list[str], acknowledged: list[str],
                  kill: int, on_kill) -> None:
    """Create each pod until a server acknowledges it (201, or 409 when an earlier attempt
    whose answer was lost had landed); ``on_kill()`` after ``kill`` acknowledgements."""
    for name in names:
        while True:
            try:
                await api.create(PODS, json.loads(pod_json(name)), namespace=ns)
                break
            except ApiConnectionError:
                await asyncio.sleep(0.05)  # the client moved on to the next server
            except ApiError as exc:
                if exc.code != 409:
                    raise
                break
        acknowledged.append(name)
        if len(acknowledged) == kill:
            on_kill()


async def _watch(api: ApiClient, ns: str, rv: str, seen: list[tuple[str, str, int]],
                 done: asyncio.Event) -> None:
    """Every event of ``ns`` from ``rv`` on, resumed from the last one seen when the
    connection is lost (the client then goes to the next server)."""
    while not done.is_set():
        try:
            async for type_, obj in api.watch(PODS, ns, resource_version=rv):
                rv = obj["metadata"]["resourceVersion"]
                if type_ != "BOOKMARK":
                    seen.append((type_, obj["metadata"]["name"], int(rv)))
                if done.is_set():
                    return
        except ApiConnectionError:
            await asyncio.sleep(0.05)


async def _new_leader(api: ApiClient, old: str, killed_at: float) -> float:
    """Seconds from the kill until another server holds the scheduler's lease."""
    while True:
        try:
            lease = await api.get(LEASES, "podling-scheduler", "kube-system")
            holder = lease.get("spec", {}).get("holderIdentity", "")
            if holder and holder != old:
                return time.monotonic() - killed_at
        except ApiConnectionError:
            pass
        await asyncio.sleep(0.2)


async def _all_running(api: ApiClient, ns: str, count: int) -> list[dict]:
    while True:
        pods, _ = await api.list(PODS, ns)
        if len(pods) == count and all(p.get("status", {}).get("phase") == "Running"
                                      for p in pods):
            return pods
        await asyncio.sleep(1)


async def test_the_scheduler_leader_killed_during_200_creates(cluster):
    leader = cluster.leader("podling-scheduler")
    old_holder = leader_identity(cluster.servers[leader].data_dir)
    survivor = next(i for i in range(len(cluster.servers)) if i != leader)
    before = {p["metadata"]["uid"]: [(c["containerID"], c["restartCount"])
                                     for c in p["status"]["containerStatuses"]]
              for p in get_json(cluster.servers[survivor], "pods", "-A")["items"]}
    ns = unique("storm")
    cluster.servers[survivor].kubectl("create", "namespace", ns)
    names = [f"p{i:03d}" for i in range(CREATES)]
    killed_at: list[float] = []

    def kill() -> None:
        cluster.servers[leader].kill(signal.SIGKILL)
        cluster.killed.add(leader)
        killed_at.append(time.monotonic())

    async with cluster.client(leader) as api, cluster.client(leader) as watcher, \
            cluster.client(survivor) as observer:
        _, rv = await observer.list(PODS, ns)
        seen: list[tuple[str, str, int]] = []  # through the leader, then another server
        reference: list[tuple[str, str, int]] = []  # through a server that stays up
        done = asyncio.Event()
        watching = [asyncio.create_task(_watch(watcher, ns, rv, seen, done)),
                    asyncio.create_task(_watch(observer, ns, rv, reference, done))]
        acknowledged: list[str] = []
        await asyncio.wait_for(_create(api, ns, names, acknowledged, KILL_AFTER, kill), 120)
        takeover = await asyncio.wait_for(_new_leader(observer, old_holder, killed_at[0]), 60)
        pods = await asyncio.wait_for(_all_running(observer, ns, CREATES), 300)
        final = {p["metadata"]["name"]: int(p["metadata"]["resourceVersion"]) for p in pods}
        await asyncio.wait_for(_caught_up(seen, final), 30)
        await asyncio.wait_for(_caught_up(reference, final), 30)
        done.set()
        for task in watching:
            task.cancel()
    print(f"new scheduler leader {takeover:.1f} s after the kill")
    assert takeover <= 20  # the lease is 15 s; candidates retry every 2 s
    assert sorted(acknowledged) == sorted(final) == names  # every acknowledged create exists
    assert all(p["spec"].get("nodeName") in NODES for p in pods)
    _assert_no_gap_or_repeat(seen, names)
    assert seen == reference  # the resumed watch saw exactly what an unbroken one saw
    for node in cluster.nodes:
        assert node.process is not None and node.process.poll() is None, node.log()[-3000:]
    assert any("unreachable; next requests go to" in n.log() for n in cluster.nodes)
    after = {p["metadata"]["uid"]: [(c["containerID"], c["restartCount"])
                                    for c in p["status"]["containerStatuses"]]
             for p in get_json(cluster.servers[survivor], "pods", "-A")["items"]}
    assert {uid: after.get(uid) for uid in before} == before  # no container restarted
    running = set(runc_list(cluster.nodes[0].run_dir)) | set(runc_list(cluster.nodes[1].run_dir))
    assert {c[0].partition("://")[2] for cs in before.values() for c in cs} <= running


async def _caught_up(seen: list[tuple[str, str, int]], final: dict[str, int]) -> None:
    """Until the watch has seen every pod's latest resourceVersion."""
    while True:
        last = {name: rv for _, name, rv in seen}
        if all(last.get(name) == rv for name, rv in final.items()):
            return
        await asyncio.sleep(0.2)


def _assert_no_gap_or_repeat(seen: list[tuple[str, str, int]], names: list[str]) -> None:
    revisions = [rv for _, _, rv in seen]
    assert revisions == sorted(set(revisions)), "an event repeated or out of order"
    added = sorted(name for type_, name, _ in seen if type_ == "ADDED")
    assert added == names  # each pod ADDED exactly once
