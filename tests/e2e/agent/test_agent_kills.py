"""The agent killed with SIGKILL at random moments while pods are created, deleted and run
to completion, then started again on the same directories, again and again.

After each restart, once the node has caught up:
- every pod is where its spec and history put it: a sleeper Running and Ready, its
  restartCount the same from then on (a kill never restarts a container that ran; one that
  was being made may cost one attempt, as a kubelet's crash does), a pod that exited 3
  Failed with exit code 3, one that keeps exiting restarted with a restartCount that never
  goes back, a deleted pod gone from the API;
- no container is lost or doubled: each sleeper has one sandbox and one running container
  in runc, with one conmon each, and runc holds nothing of a pod the API no longer has;
- no IP reservation, veth or mount outlives its pod.
At the end every pod is deleted and the node must be bare: no runc container, conmon,
reservation, veth, pod mount or pod directory.

``PODLING_AGENT_KILLS`` sets the number of kills (``make test``: 3;
``tests/chaos/agent_kills.sh``: 500). The server runs without its own agent; the node is a
separate ``podling agent`` process.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest
from builders import make_pod
from kubectl_util import get_json, wait_until
from podling_e2e import node_leftovers, runc_list, terminate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
KILLS = int(os.environ.get("PODLING_AGENT_KILLS", "3"))
CONVERGE_SECONDS = 120

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agent tests need root")


class Node:
    """The node under test: its directories and its `podling agent` process."""

    def __init__(self, base: str, registries: str) -> None:
        tag = secrets.token_hex(2)
        self.name = f"kill-{tag}"
        self.data_dir = os.path.join(base, "node")
        os.makedirs(self.data_dir)
        shutil.copy(registries, os.path.join(self.data_dir, "registries.yaml"))
        self.run_dir, self.bridge = f"/run/podling-kill-{tag}", f"pdk{tag}"
        self.log_path = os.path.join(base, "agent.log")
        self.process: subprocess.Popen | None = None

    def flags(self) -> list[str]:
        return ["--node-name", self.name, "--data-dir", self.data_dir, "--run-dir",
                self.run_dir, "--bridge-name", self.bridge]

    def start(self, server) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "podling", "agent", "--server", server.url,
                 "--token-file", os.path.join(server.data_dir, "server", "admin.token"),
                 "--ca-file", server.ca_file, "--node-api-address", "127.0.0.1",
                 "--node-api-port", "0", *self.flags()],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None, self.log_tail()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def log_tail(self) -> str:
        with open(self.log_path) as f:
            return f.read()[-3000:]


@pytest.fixture(scope="module")
def node_and_server(tmp_path_factory, demo_registry, e2e_start_server):
    base = str(tmp_path_factory.mktemp("agentkills"))
    node = Node(base, demo_registry)
    server = e2e_start_server(os.path.join(base, "server"), os.path.join(base, "home"))
    try:
        node.start(server)
        wait_until(lambda: _ready(server, node.name), timeout=60, interval=0.5,
                   message="the node Ready")
        yield node, server
    finally:
        server.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=90s", check=False,
                       timeout=120)
        terminate(node.process)
        server.kill()
        purge = subprocess.run([sys.executable, "-m", "podling", "purge", *node.flags()],
                               cwd=REPO, capture_output=True, text=True, timeout=120)
        left = node_leftovers(node.name, data_dir=node.data_dir, run_dir=node.run_dir,
                              bridge=node.bridge)
        assert purge.returncode == 0 and not left, (purge.stderr, left)


def _ready(server, node: str) -> bool:
    found = server.kubectl("get", "node", node, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    conditions = json.loads(found.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


COMMANDS = {"sleeper": "trap 'exit 0' TERM; while true; do sleep 1; done",
            "exiter": "sleep 0.3; exit 3",  # restartPolicy Never: Failed, exit code 3
            "restarter": "sleep 1; exit 1"}  # restartPolicy Always: restarted, backing off


def _pod(name: str, node: str, kind: str) -> dict:
    return (make_pod(name, None).bare().node(node).grace(1)
            .restart_policy("Never" if kind == "exiter" else "Always")
            .container("c", command=["sh", "-c", COMMANDS[kind]],
                       imagePullPolicy="IfNotPresent")
            .build())


class Workload:
    """The pods this campaign asked for: name → kind (:data:`COMMANDS`); deleted ones; the
    restart counts seen last."""

    def __init__(self, server, node: str) -> None:
        self.server, self.node = server, node
        self.live: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.restarts: dict[str, int] = {}
        self.count = 0
        self.rng = random.Random()

    def step(self) -> None:
        """Create one or two pods and delete up to two, without waiting for any."""
        created = []
        for _ in range(self.rng.choice((1, 2))):
            self.count += 1
            kind = self.rng.choices(list(COMMANDS), weights=(6, 2, 2))[0]
            name = f"{kind[0]}{self.count}"
            created.append(_pod(name, self.node, kind))
            self.live[name] = kind
        self.server.kubectl("create", "-f", "-", input="\n".join(json.dumps(p)
                                                                   for p in created))
        doomed = self.rng.sample(sorted(self.live), min(len(self.live) // 3, 2))
        if doomed:
            self.server.kubectl("delete", "pod", *doomed, "--wait=false")
            for name in doomed:
                del self.live[name]
                self.deleted.add(name)


def _settled(server, work: Workload) -> list[str]:
    """What is not yet as it must end up (empty: the API shows every pod settled)."""
    pods = {p["metadata"]["name"]: p for p in get_json(server, "pods")["items"]}
    problems = [f"{name} still exists" for name in work.deleted if name in pods]
    for name, kind in work.live.items():
        pod = pods.get(name)
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        if pod is None or not statuses:
            problems.append(f"{name}: no container status yet")
            continue
        phase, status = pod["status"].get("phase"), statuses[0]
        if kind == "sleeper" and (phase != "Running" or not status.get("ready")):
            problems.append(f"{name}: {phase}, ready={status.get('ready')}")
        terminated = (status.get("state") or {}).get("terminated") or {}
        if kind == "exiter" and (phase != "Failed" or terminated.get("exitCode") != 3):
            problems.append(f"{name}: {phase}, {terminated}")
    return problems


def _host_problems(server, node: Node, work: Workload) -> list[str]:
    """Where the host disagrees with the API: lost or doubled containers, leaks."""
    pods = [p for p in get_json(server, "pods")["items"]]
    uids = {p["metadata"]["uid"] for p in pods}
    problems = []
    runtime = os.path.join(node.run_dir, "runtime")
    owners = _runtime_owners(runtime, uids)
    known = set(runc_list(node.run_dir))
    running = _runc_running(node.run_dir)
    problems += [f"runc container {cid} of no API pod" for cid, (uid, _) in owners.items()
                 if cid in known and not uid]
    problems += [f"runc container {cid} unknown to the runtime store"
                 for cid in known - set(owners)]
    for pod in pods:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        mine = [(cid, kind) for cid, (owner, kind) in owners.items()
                if owner == uid and cid in running]
        restarts = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]
        kinds = sorted(kind for _, kind in mine)
        if work.live.get(name) == "sleeper":
            if kinds != ["container", "sandbox"]:
                problems.append(f"{name}: runc holds {kinds}")
            # a kill while the pod was being set up may cost one attempt (as a kubelet's
            # crash does); once it has run, a kill never restarts it
            count = restarts.get("restartCount")
            if count != work.restarts.setdefault(name, count):
                problems.append(f"{name}: restartCount {work.restarts[name]} → {count}")
        if work.live.get(name) == "restarter":
            if kinds.count("container") > 1:
                problems.append(f"{name}: {kinds.count('container')} containers running")
            count = restarts.get("restartCount") or 0
            if count < work.restarts.get(name, 0):
                problems.append(f"{name}: restartCount went back to {count}")
            work.restarts[name] = max(count, work.restarts.get(name, 0))
    problems += [f"{cid}: {n} conmon processes" for cid, n in _conmons(node.run_dir).items()
                 if n != 1]
    live_ips = {(p.get("status") or {}).get("podIP") for p in pods}
    reserved = [os.path.basename(p) for p in glob.glob(
        os.path.join(node.data_dir, "agent", "cni", "ipam", "*", "*.*.*.*"))]
    problems += [f"IP {ip} reserved for no pod" for ip in reserved if ip not in live_ips]
    veths = subprocess.run(["ip", "-o", "link", "show", "master", node.bridge],
                           capture_output=True, text=True).stdout.splitlines()
    if len(veths) > len(pods):
        problems.append(f"{len(veths)} veths on {node.bridge} for {len(pods)} pods")
    with open("/proc/self/mountinfo") as f:
        stale = {line.split()[4] for line in f if "/agent/pods/" in line and
                 node.data_dir in line and not any(uid in line for uid in uids)}
    problems += [f"mount {m} of a gone pod" for m in sorted(stale)]
    return problems


def _diagnosis(server, node: Node, names: list[str]) -> str:
    """For a failure's report: each named pod's status and events, and the runtime's
    records, exit files and runc states of its containers."""
    out = []
    runtime = os.path.join(node.run_dir, "runtime")
    for name in names:
        pod = server.kubectl("get", "pod", name, "-o", "json", check=False).stdout
        events = server.kubectl("get", "events", "--field-selector",
                                f"involvedObject.name={name}", check=False).stdout
        out += [f"--- pod {name}", pod, events]
        uid = (json.loads(pod or "{}").get("metadata") or {}).get("uid") or "?"
        for cid, (owner, kind) in _runtime_owners(runtime, {uid}).items():
            if owner != uid:
                continue
            directory = "sandboxes" if kind == "sandbox" else "containers"
            for path in (os.path.join(runtime, directory, cid, f"{kind}.json"),
                         os.path.join(runtime, "exits", cid)):
                with contextlib.suppress(OSError), open(path) as f:
                    out.append(f"{path}: {f.read()}")
            state = subprocess.run(["runc", "--root", os.path.join(runtime, "runc"), "state",
                                    cid], capture_output=True, text=True, timeout=10)
            out.append(f"runc state {cid}: {state.stdout or state.stderr}")
    return "\n".join(out)


def _runc_running(run_dir: str) -> set[str]:
    """The ids of this node's runc containers that run (dead ones are kept a while, as the
    kubelet keeps them for `kubectl logs --previous`)."""
    root = os.path.join(run_dir, "runtime", "runc")
    if not os.path.isdir(root):  # `runc list` would make it
        return set()
    out = subprocess.run(["runc", "--root", root, "list", "-f", "json"], capture_output=True,
                         text=True, timeout=10).stdout
    return {c["id"] for c in json.loads(out or "null") or [] if c.get("status") == "running"}


def _runtime_owners(runtime: str, uids: set[str]) -> dict[str, tuple[str, str]]:
    """Runtime store entries: id → (the uid of the API pod it belongs to, or "" for none;
    "sandbox" or "container")."""
    owners = {}
    for kind, pattern in (("sandbox", "sandboxes/*/sandbox.json"),
                          ("container", "containers/*/container.json")):
        for path in glob.glob(os.path.join(runtime, pattern)):
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            owner = next((uid for uid in uids if uid in text), "")
            owners[os.path.basename(os.path.dirname(path))] = (owner, kind)
    return owners


def _conmons(run_dir: str) -> dict[str, int]:
    """Container id → conmon processes of this node's runtime that monitor it."""
    counts: dict[str, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != "conmon" or \
                not any(run_dir in a for a in argv):
            continue
        cid = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-c", "--cid")), "")
        counts[cid] = counts.get(cid, 0) + 1
    return counts


def test_agent_kills_lose_and_leak_nothing(node_and_server) -> None:
    node, server = node_and_server
    work = Workload(server, node.name)
    checked = 0
    started = time.monotonic()
    for kill in range(KILLS):
        work.step()
        time.sleep(work.rng.uniform(0.0, 2.5))
        node.kill()
        node.start(server)
        try:
            wait_until(lambda: not _settled(server, work), timeout=CONVERGE_SECONDS,
                       interval=0.5, message=f"the pods to settle after kill {kill + 1}")
            # what a killed agent left half-done is swept by its orphan pass, at start
            # and every 30 s (the kubelet's housekeeping does the same, every 2 s)
            wait_until(lambda: not _host_problems(server, node, work), timeout=75,
                       interval=0.5, message=f"the host to match after kill {kill + 1}")
        except AssertionError:
            print(node.log_tail())
            wrong, host = _settled(server, work), _host_problems(server, node, work)
            print("still wrong:", wrong, host)
            print(_diagnosis(server, node, [w.split(":")[0].split()[0] for w in wrong]))
            for reservation in glob.glob(os.path.join(node.data_dir, "agent", "cni", "ipam",
                                                      "*", "*.*.*.*")):
                with open(reservation) as f:
                    print(reservation, repr(f.read()))
            raise
        checked += len(work.live) + len(work.deleted)
    server.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=120s", timeout=150)
    work.deleted |= set(work.live)
    work.live.clear()
    wait_until(lambda: not _host_problems(server, node, work) and
               not runc_list(node.run_dir) and not _conmons(node.run_dir), timeout=60,
               message="a bare node after deleting every pod")
    print(f"\nagent kills: {KILLS}, pods made: {work.count}, pod checks: {checked}, "
          f"{time.monotonic() - started:.0f} s, failures: 0")
