"""Pods observed from the inside: shared and host namespaces, /etc/hosts, volumes, seed pods.

``kubectl exec``/``logs`` are not there yet, so each container prints what the test needs
into its log and the test reads the CRI log files under the agent's pod directory
(``<data dir>/agent/pods/<uid>/logs/<container>/<restart>.log``).

All pods of the module are applied at once by the ``pods`` fixture so they start in
parallel; each test then waits only for its own pods.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading

import pytest
import yaml

from manifests import GRACE, busybox, pod

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SEED_DIR = os.path.join(REPO, "examples", "seed")

RUN_TIMEOUT = 120.0

HOSTS_HEADER = b"# Kubernetes-managed hosts file.\n"
HOSTS_HEADER_HOST_NETWORK = b"# Kubernetes-managed hosts file (host network).\n"
HOSTS_FIXED = (b"127.0.0.1\tlocalhost\n"
               b"::1\tlocalhost ip6-localhost ip6-loopback\n"
               b"fe00::0\tip6-localnet\n"
               b"fe00::0\tip6-mcastprefix\n"
               b"fe00::1\tip6-allnodes\n"
               b"fe00::2\tip6-allrouters\n")

# Every container that reports its namespaces runs this first.
NS_REPORT = ('for n in net ipc uts pid; do echo "ns:$n=$(readlink /proc/self/ns/$n)"; done; '
             'echo "hostname=$(hostname)"; ')

TWO_ALIASES = [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
               {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]


# -- helpers --------------------------------------------------------------------------------


def parse_cri_log(data: bytes) -> bytes:
    """The container's output from a CRI log (``<ts> <stream> <P|F> <text>`` lines)."""
    out = []
    for line in data.split(b"\n"):
        if not line:
            continue
        parts = line.split(b" ", 3)
        assert len(parts) >= 3, f"not a CRI log line: {line!r}"
        text = parts[3] if len(parts) > 3 else b""
        out.append(text + (b"\n" if parts[2].split(b":")[0] == b"F" else b""))
    return b"".join(out)


def between(text: bytes, begin: bytes, end: bytes) -> bytes | None:
    """The bytes between a line ``begin`` and a line ``end`` (None if not both there yet)."""
    start = text.find(begin + b"\n")
    if start < 0:
        return None
    start += len(begin) + 1
    stop = text.find(b"\n" + end + b"\n", start - 1)
    if stop < 0:
        return None
    return text[start:stop + 1]


def ns_links(text: bytes) -> dict[str, str]:
    return {m.group(1).decode(): m.group(2).decode()
            for m in re.finditer(rb"^ns:(\w+)=(.*)$", text, re.M)}


def ps_table(text: bytes) -> list[tuple[int, str]]:
    """(pid, args) rows of busybox ``ps -o pid,args`` output (header skipped)."""
    rows = []
    for line in text.decode().splitlines():
        fields = line.strip().split(None, 1)
        if len(fields) == 2 and fields[0].isdigit():
            rows.append((int(fields[0]), fields[1]))
    return rows


def alias_section(aliases: list[dict]) -> bytes:
    if not aliases:
        return b""
    return b"\n# Entries added by HostAliases.\n" + b"".join(
        (a["ip"] + "\t" + "\t".join(a["hostnames"]) + "\n").encode() for a in aliases)


def expected_hosts(ip: str, hostname: str, aliases: list[dict]) -> bytes:
    return HOSTS_HEADER + HOSTS_FIXED + f"{ip}\t{hostname}\n".encode() + alias_section(aliases)


class Pods:
    """The module's pods and helpers to observe them."""

    def __init__(self, cluster, wait):
        self.cluster = cluster
        self.wait = wait
        self.manifests: list[dict] = []

    def get(self, name: str) -> dict | None:
        result = self.cluster.kubectl("get", "pod", name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def log_path(self, name: str, container: str, restart: int = 0) -> str:
        p = self.get(name)
        assert p is not None, f"pod {name} not found"
        return os.path.join(self.cluster.data_dir, "agent", "pods", p["metadata"]["uid"],
                            "logs", container, f"{restart}.log")

    def output(self, name: str, container: str, restart: int = 0) -> bytes:
        try:
            with open(self.log_path(name, container, restart), "rb") as f:
                return parse_cri_log(f.read())
        except FileNotFoundError:
            return b""

    def wait_output(self, name: str, container: str, marker: bytes, restart: int = 0,
                    timeout: float = RUN_TIMEOUT) -> bytes:
        """Wait until the container's log has a line ``marker``; the whole output."""
        def ready():
            out = self.output(name, container, restart)
            return out if re.search(rb"^" + re.escape(marker) + rb"$", out, re.M) else None
        try:
            return self.wait(ready, timeout)
        except AssertionError:
            raise AssertionError(self.describe(name, f"no line {marker!r} in {container}"
                                               f"/{restart}.log")) from None

    def wait_phase(self, name: str, phase: str, timeout: float = RUN_TIMEOUT) -> dict:
        def ready():
            p = self.get(name)
            return p if p and (p.get("status") or {}).get("phase") == phase else None
        try:
            return self.wait(ready, timeout)
        except AssertionError:
            raise AssertionError(self.describe(name, f"not {phase}")) from None

    def wait_running(self, name: str, timeout: float = RUN_TIMEOUT) -> dict:
        """Phase Running with every container running."""
        def ready():
            p = self.get(name)
            if not p or (p.get("status") or {}).get("phase") != "Running":
                return None
            statuses = p["status"].get("containerStatuses") or []
            if len(statuses) != len(p["spec"]["containers"]):
                return None
            return p if all("running" in (s.get("state") or {}) for s in statuses) else None
        try:
            return self.wait(ready, timeout)
        except AssertionError:
            raise AssertionError(self.describe(name, "not Running")) from None

    def describe(self, name: str, problem: str) -> str:
        p = self.get(name)
        status = json.dumps((p or {}).get("status"), indent=1)[:3000]
        events = self.cluster.kubectl("get", "events", "--field-selector",
                                      f"involvedObject.name={name}", check=False).stdout
        logs = ""
        if p:
            for c in p["spec"]["containers"]:
                logs += f"--- {c['name']}:\n{self.output(name, c['name']).decode()[-1500:]}\n"
        node = ((p or {}).get("spec") or {}).get("nodeName")
        return (f"pod {name} (node {node}): {problem}\nserver log: {self.cluster.log_path}"
                f"\nstatus: {status}\nevents:\n{events}\nlogs:\n{logs}"
                f"\nserver log tail:\n{self.cluster.log()[-3000:]}")


class HostPort:
    """A TCP listener on the host's 127.0.0.1 that answers every connection with a token."""

    def __init__(self):
        self.token = "host-" + secrets.token_hex(4)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall((self.token + "\n").encode())
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.sock.close()


def seed_manifests(node: str) -> list[dict]:
    docs = []
    for fname in sorted(os.listdir(SEED_DIR)):
        if not fname.endswith(".yaml"):
            continue
        with open(os.path.join(SEED_DIR, fname)) as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                spec = doc["spec"]
                # Pinned to the local node (whatever node the example names, if any).
                spec["nodeName"] = node
                selector = spec.get("nodeSelector") or {}
                if "kubernetes.io/hostname" in selector:
                    selector["kubernetes.io/hostname"] = node
                docs.append(doc)
    return docs


# -- the module's pods ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pods(cluster, wait, tmp_path_factory):
    node = cluster.node
    p = Pods(cluster, wait)
    p.seeds = seed_manifests(node)
    p.host_port = HostPort()
    p.test_pid = os.getpid()
    shm = subprocess.run(["ipcmk", "-M", "4096", "-p", "0600"], capture_output=True,
                         text=True, check=True)
    p.shmid = int(re.search(r"(\d+)\s*$", shm.stdout.strip()).group(1))
    p.hostpath_base = str(tmp_path_factory.mktemp("hostpath"))
    p.hostpath = os.path.join(p.hostpath_base, "made", "by-agent")
    assert not os.path.exists(p.hostpath)
    p.restart_marker = "9.9.9.9\tinjected-" + secrets.token_hex(3)

    ns_sleep = NS_REPORT + "echo READY; exec sleep 3600"
    manifests = [
        # Two containers sharing the pod's namespaces, and another pod.
        pod("ns-pair", node, [busybox("first", ns_sleep), busybox("second", ns_sleep)]),
        pod("ns-other", node, [busybox("only", ns_sleep)]),
        # A server and a client on the pod's loopback.
        pod("loopback", node, [
            busybox("server", "exec nc -ll -p 8080 -e echo hi-from-server"),
            busybox("client", 'for i in $(seq 300); do out=$(nc 127.0.0.1 8080 </dev/null '
                              '2>/dev/null); case "$out" in *hi-from-server*) break;; esac; '
                              'sleep 0.2; done; echo "got:$out"; echo READY; exec sleep 3600'),
        ]),
        pod("loopback-nginx", node, [
            {"name": "web", "image": "nginx"},
            busybox("client", 'for i in $(seq 300); do out=$(wget -q -O - http://127.0.0.1:80/ '
                              '2>/dev/null) && break; sleep 0.2; done; '
                              'echo "$out" | grep -i -m1 "<title>"; echo READY; '
                              'exec sleep 3600'),
        ]),
        # PID namespaces.
        pod("pid-shared", node, [
            {"name": "target", "image": "busybox", "command": ["sleep", "3601"]},
            busybox("looker", 'for i in $(seq 300); do ps -o pid,args | grep -q "[s]leep 3601" '
                              '&& break; sleep 0.2; done; echo BEGIN; ps -o pid,args; echo END; '
                              'exec sleep 3600'),
        ], shareProcessNamespace=True),
        pod("pid-private", node, [
            # "one" is up before "two" looks (the file), each prints its own ps.
            busybox("one", "touch /shared/one-up; echo BEGIN; ps -o pid,args; echo END; "
                           "exec sleep 3602",
                    volumeMounts=[{"name": "shared", "mountPath": "/shared"}]),
            busybox("two", 'for i in $(seq 300); do [ -f /shared/one-up ] && break; sleep 0.2; '
                           'done; echo BEGIN; ps -o pid,args; echo END; exec sleep 3603',
                    volumeMounts=[{"name": "shared", "mountPath": "/shared"}]),
        ], volumes=[{"name": "shared", "emptyDir": {}}]),
        # Host namespaces.
        pod("host-ns", node, [busybox(
            "main",
            NS_REPORT +
            '[ -d /proc/$TEST_PID ] && echo "test-pid-visible"; '
            'echo SHM-BEGIN; cat /proc/sysvipc/shm; echo SHM-END; '
            'for i in $(seq 300); do out=$(nc 127.0.0.1 $HOST_PORT </dev/null 2>/dev/null); '
            'case "$out" in *host-*) break;; esac; sleep 0.2; done; echo "port:$out"; '
            'echo HOSTS-BEGIN; cat /etc/hosts; echo HOSTS-END; echo READY; exec sleep 3600',
            env=[{"name": "TEST_PID", "value": str(p.test_pid)},
                 {"name": "HOST_PORT", "value": str(p.host_port.port)}])],
            hostNetwork=True, hostPID=True, hostIPC=True, hostAliases=TWO_ALIASES),
        # /etc/hosts byte-exact, and rewritten when the container restarts.
        pod("hosts-exact", node, [busybox(
            "cat", "echo HOSTS-BEGIN; cat /etc/hosts; echo HOSTS-END; echo READY; "
                   "exec sleep 3600")], hostAliases=TWO_ALIASES),
        pod("hosts-restart", node, [busybox(
            "edit", "echo HOSTS-BEGIN; cat /etc/hosts; echo HOSTS-END; "
                    f"printf '{p.restart_marker}\\n' >> /etc/hosts; "
                    "echo AFTER-BEGIN; cat /etc/hosts; echo AFTER-END; exit 1")],
            hostAliases=TWO_ALIASES, restartPolicy="Always"),
        # Volumes.
        pod("empty-dir", node, [
            busybox("writer", "echo disk-payload > /data/file; echo mem-payload > /mem/file; "
                              "echo READY; exec sleep 3600",
                    volumeMounts=[{"name": "data", "mountPath": "/data"},
                                  {"name": "mem", "mountPath": "/mem"}]),
            busybox("reader", "for i in $(seq 300); do [ -f /in/data/file ] && "
                              "[ -f /in/mem/file ] && break; sleep 0.2; done; "
                              "echo \"disk:$(cat /in/data/file)\"; "
                              "echo \"mem:$(cat /in/mem/file)\"; "
                              "echo \"mount:$(grep ' /in/mem ' /proc/mounts)\"; "
                              "echo READY; exec sleep 3600",
                    volumeMounts=[{"name": "data", "mountPath": "/in/data"},
                                  {"name": "mem", "mountPath": "/in/mem"}]),
        ], volumes=[{"name": "data", "emptyDir": {}},
                    {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]),
        pod("host-path", node, [
            busybox("whole", "echo from-whole > /hp/whole-file; "
                             "for i in $(seq 300); do [ -f /hp/nested/from-sub ] && break; "
                             "sleep 0.2; done; echo \"sub-seen:$(cat /hp/nested/from-sub)\"; "
                             "for i in $(seq 300); do [ -f /scratch/deep/dir/from-sub ] && "
                             "break; sleep 0.2; done; "
                             "echo \"scratch-seen:$(cat /scratch/deep/dir/from-sub)\"; "
                             "echo READY; exec sleep 3600",
                    volumeMounts=[{"name": "hp", "mountPath": "/hp"},
                                  {"name": "scratch", "mountPath": "/scratch"}]),
            busybox("sub", "echo from-sub > /hpsub/from-sub; "
                           "echo from-sub > /scratchsub/from-sub; "
                           "echo \"entries:$(ls /hpsub | tr '\\n' ' ')\"; "
                           "echo READY; exec sleep 3600",
                    volumeMounts=[{"name": "hp", "mountPath": "/hpsub", "subPath": "nested"},
                                  {"name": "scratch", "mountPath": "/scratchsub",
                                   "subPath": "deep/dir"}]),
        ], volumes=[{"name": "hp", "hostPath": {"path": p.hostpath,
                                                "type": "DirectoryOrCreate"}},
                    {"name": "scratch", "emptyDir": {}}]),
    ]
    p.manifests = manifests
    cluster.apply(yaml.safe_dump_all(p.seeds + manifests))
    try:
        yield p
    finally:
        cluster.kubectl("delete", "pods", "--all", f"--grace-period={GRACE}", "--wait=true",
                        "--timeout=90s", check=False, timeout=120)
        p.host_port.close()
        subprocess.run(["ipcrm", "-m", str(p.shmid)], capture_output=True)
        shutil.rmtree(p.hostpath_base, ignore_errors=True)


# -- tests ----------------------------------------------------------------------------------


def test_seed_pods_run_on_the_local_node(pods, cluster):
    names = [d["metadata"]["name"] for d in pods.seeds]
    assert set(names) >= {"aliases", "host-hooks", "pinned-web", "selector-web", "shared-pid"}
    for doc in pods.seeds:
        name = doc["metadata"]["name"]
        if name == "aliases":
            got = pods.wait_phase(name, "Succeeded")
            state = got["status"]["containerStatuses"][0]["state"]["terminated"]
            assert (state["exitCode"], state["reason"]) == (0, "Completed")
            out = pods.output(name, "cat-hosts")
            assert out == expected_hosts(got["status"]["podIP"], "aliases",
                                         doc["spec"]["hostAliases"]), out
        else:
            got = pods.wait_running(name)
        assert got["spec"]["nodeName"] == cluster.node

    # shared-pid's busybox shell (stdin + tty) keeps running: no restart for 3 s of running.
    def shell_up_for_3s():
        got = pods.get("shared-pid")
        shell = [s for s in got["status"]["containerStatuses"] if s["name"] == "shell"][0]
        assert shell["restartCount"] == 0 and "running" in shell["state"], shell
        started = shell["state"]["running"]["startedAt"]
        return _age_seconds(started) >= 3
    pods.wait(shell_up_for_3s, 30)


def _age_seconds(timestamp: str) -> float:
    import datetime
    started = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()


def test_containers_of_a_pod_share_net_ipc_uts(pods):
    first = ns_links(pods.wait_output("ns-pair", "first", b"READY"))
    second = ns_links(pods.wait_output("ns-pair", "second", b"READY"))
    other = ns_links(pods.wait_output("ns-other", "only", b"READY"))
    for kind in ("net", "ipc", "uts"):
        assert first[kind].startswith(f"{kind}:["), first
        assert first[kind] == second[kind], (kind, first, second)
    # Without shareProcessNamespace each container has its own PID namespace.
    assert first["pid"] != second["pid"]
    # Another pod has its own network (and IPC, UTS) namespace.
    for kind in ("net", "ipc", "uts"):
        assert other[kind] != first[kind], (kind, first, other)
    # None of them is the host's.
    for kind in ("net", "ipc", "uts", "pid"):
        host = os.readlink(f"/proc/self/ns/{kind}")
        assert first[kind] != host and other[kind] != host, (kind, host, first, other)
    # The UTS namespace carries the pod name as hostname.
    assert re.search(rb"^hostname=ns-pair$", pods.output("ns-pair", "second"), re.M)
    assert re.search(rb"^hostname=ns-other$", pods.output("ns-other", "only"), re.M)


def test_server_reachable_on_loopback_from_another_container(pods):
    out = pods.wait_output("loopback", "client", b"READY")
    assert b"got:hi-from-server\n" in out, out
    out = pods.wait_output("loopback-nginx", "client", b"READY")
    assert re.search(rb"<title>.*nginx.*</title>", out, re.I), out


def test_share_process_namespace_pause_is_pid_1(pods):
    out = pods.wait_output("pid-shared", "looker", b"END")
    rows = ps_table(between(out, b"BEGIN", b"END"))
    by_pid = dict(rows)
    assert by_pid.get(1, "").startswith("/pause"), rows
    assert any(args == "sleep 3601" for _, args in rows), rows
    assert any(args.startswith("sh -c") for _, args in rows), rows


def test_without_share_process_namespace_each_container_is_pid_1(pods):
    for container, own, theirs in (("one", "3602", "3603"), ("two", "3603", "3602")):
        out = pods.wait_output("pid-private", container, b"END")
        rows = ps_table(between(out, b"BEGIN", b"END"))
        by_pid = dict(rows)
        assert 1 in by_pid and by_pid[1].startswith("sh -c") and own in by_pid[1], rows
        assert not any(a.startswith("/pause") for _, a in rows), rows
        assert not any(theirs in a for _, a in rows), rows


def test_host_namespaces_are_the_hosts(pods, cluster):
    out = pods.wait_output("host-ns", "main", b"READY")
    links = ns_links(out)
    for kind in ("net", "ipc", "pid", "uts"):
        assert links[kind] == os.readlink(f"/proc/self/ns/{kind}"), (kind, links)
    # hostPID: a host process (this test) is visible.
    assert b"test-pid-visible\n" in out, out
    # hostIPC: the host's SysV shared memory segment is visible.
    shm = between(out, b"SHM-BEGIN", b"SHM-END") or b""
    ids = [int(line.split()[1]) for line in shm.decode().splitlines()[1:] if line.split()]
    assert pods.shmid in ids, shm
    # hostNetwork: a port listening on the host's loopback answers.
    assert f"port:{pods.host_port.token}\n".encode() in out, out
    # hostname is the node's; the pod IP is the node IP.
    assert f"hostname={socket.gethostname()}\n".encode() in out, out
    got = pods.wait_running("host-ns")
    node = json.loads(cluster.kubectl("get", "node", cluster.node, "-o", "json").stdout)
    internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal and got["status"]["podIP"] == internal[0], (got["status"], internal)
    assert got["status"]["hostIP"] == internal[0]
    assert [i["ip"] for i in got["status"]["podIPs"]][:1] == internal[:1]
    # The host-network /etc/hosts: the host's file copied, then the aliases.
    with open("/etc/hosts", "rb") as f:
        node_hosts = f.read()
    expected = HOSTS_HEADER_HOST_NETWORK + node_hosts + alias_section(TWO_ALIASES)
    assert between(out, b"HOSTS-BEGIN", b"HOSTS-END") == expected


def test_etc_hosts_byte_exact_with_host_aliases(pods):
    out = pods.wait_output("hosts-exact", "cat", b"READY")
    got = pods.wait_running("hosts-exact")
    ip = got["status"]["podIP"]
    assert ip and got["status"]["podIPs"][0]["ip"] == ip
    expected = expected_hosts(ip, "hosts-exact", TWO_ALIASES)
    assert expected.endswith(b"\n\n# Entries added by HostAliases.\n"
                             b"127.0.0.1\tfoo.local\tbar.local\n"
                             b"10.1.2.3\tfoo.remote\tbar.remote\n")
    assert between(out, b"HOSTS-BEGIN", b"HOSTS-END") == expected


def test_etc_hosts_rewritten_when_the_container_restarts(pods):
    marker = pods.restart_marker.encode()
    first = pods.wait_output("hosts-restart", "edit", b"AFTER-END", restart=0)
    # The edit worked inside the first container.
    assert marker + b"\n" in between(first, b"AFTER-BEGIN", b"AFTER-END"), first

    def restarted():
        got = pods.get("hosts-restart")
        statuses = (got.get("status") or {}).get("containerStatuses") or []
        return got if statuses and statuses[0]["restartCount"] >= 1 else None
    got = pods.wait(restarted, 60)
    second = pods.wait_output("hosts-restart", "edit", b"HOSTS-END", restart=1, timeout=30)
    ip = got["status"]["podIP"]
    expected = expected_hosts(ip, "hosts-restart", TWO_ALIASES)
    assert between(first, b"HOSTS-BEGIN", b"HOSTS-END") == expected
    fresh = between(second, b"HOSTS-BEGIN", b"HOSTS-END")
    assert marker not in fresh, fresh
    assert fresh == expected


def test_empty_dir_shared_between_containers(pods):
    out = pods.wait_output("empty-dir", "reader", b"READY")
    assert b"disk:disk-payload\n" in out, out
    assert b"mem:mem-payload\n" in out, out
    mount = re.search(rb"^mount:(.*)$", out, re.M).group(1).decode()
    fields = mount.split()
    assert len(fields) >= 4 and fields[2] == "tmpfs", mount
    # sizeLimit 64Mi -> a 64 MiB tmpfs.
    assert "size=65536k" in fields[3].split(","), mount


def test_host_path_directory_or_create_and_sub_path(pods):
    whole = pods.wait_output("host-path", "whole", b"READY")
    sub = pods.wait_output("host-path", "sub", b"READY")
    assert os.path.isdir(pods.hostpath)
    assert os.stat(pods.hostpath).st_mode & 0o777 == 0o755
    with open(os.path.join(pods.hostpath, "whole-file")) as f:
        assert f.read() == "from-whole\n"
    # subPath of the hostPath volume: created on the host, written through the subPath mount.
    with open(os.path.join(pods.hostpath, "nested", "from-sub")) as f:
        assert f.read() == "from-sub\n"
    assert b"sub-seen:from-sub\n" in whole, whole
    # the subPath mount shows only the sub-directory.
    assert re.search(rb"^entries:from-sub $", sub, re.M), sub
    # subPath of an emptyDir (nested path, created on demand).
    assert b"scratch-seen:from-sub\n" in whole, whole
