"""Pod lifecycle on the real agent: restart policies, CrashLoopBackOff, image pull failures,
postStart / preStop hooks, the grace period, and a clean host after every deletion.

Everything is observed from outside the containers: `kubectl get pod -o json`, the STATUS
column of `kubectl get pod`, events, the CRI log files under the pod directory and files the
containers write into a hostPath directory owned by the test (it survives the pod's deletion,
unlike an emptyDir). Times inside containers come from /proc/uptime (the host's clock; no time
namespace), so they can be compared with each other.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import threading
import time

import pytest
from builders import make_pod
from kubectl_util import LineReader


# -- helpers --------------------------------------------------------------------------------------


def pod_json(cluster, name: str) -> dict | None:
    result = cluster.kubectl("get", "pod", name, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return json.loads(result.stdout)


def cstatus(pod: dict | None, name: str = "c") -> dict:
    for s in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if s["name"] == name:
            return s
    return {}


def waiting_reason(pod: dict | None, name: str = "c") -> str:
    return ((cstatus(pod, name).get("state") or {}).get("waiting") or {}).get("reason", "")


def status_column(cluster, name: str) -> str:
    """The STATUS column of `kubectl get pod` (NAME READY STATUS RESTARTS AGE)."""
    fields = cluster.kubectl("get", "pod", name, "--no-headers").stdout.split()
    return fields[2]


def events(cluster, name: str) -> list[dict]:
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                          "-o", "json").stdout
    return json.loads(out)["items"]


def find_events(evs: list[dict], reason: str, *, type_: str | None = None,
                message: str | None = None, prefix: str | None = None) -> list[dict]:
    found = []
    for e in evs:
        if e.get("reason") != reason or (type_ and e.get("type") != type_):
            continue
        msg = e.get("message", "")
        if message is not None and msg != message:
            continue
        if prefix is not None and not msg.startswith(prefix):
            continue
        found.append(e)
    return found


def describe_events(evs: list[dict]) -> str:
    return "\n".join(f"  {e.get('type')} {e.get('reason')} x{e.get('count')}: {e.get('message')}"
                     for e in evs)


def runtime_root(cluster) -> str:
    return os.path.join(cluster.run_dir, "runtime")


def pod_runtime_ids(cluster, uid: str) -> tuple[set[str], set[str]]:
    """(sandbox ids, container ids) the runtime store holds for the pod ``uid``."""
    root = runtime_root(cluster)
    found: tuple[set[str], set[str]] = (set(), set())
    for bucket, kind, fname in ((0, "sandboxes", "sandbox.json"),
                                (1, "containers", "container.json")):
        for path in glob.glob(os.path.join(root, kind, "*", fname)):
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            if uid in text:
                found[bucket].add(os.path.basename(os.path.dirname(path)))
    return found


def pod_dir(cluster, uid: str) -> str:
    return os.path.join(cluster.data_dir, "agent", "pods", uid)


def host_leftovers(cluster, uid: str, sandboxes: set[str], containers: set[str],
                   pod_ip: str = "") -> list[str]:
    """What the pod ``uid`` left on the host (empty when it is all gone)."""
    problems = []
    ids = sandboxes | containers
    runc = set(cluster.runc_list()) & ids
    if runc:
        problems.append(f"runc containers {sorted(runc)}")
    netns = [s for s in sandboxes
             if os.path.exists(os.path.join(runtime_root(cluster), "netns", s))]
    if netns:
        problems.append(f"netns {netns}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f
                  if uid in line or any(i in line for i in ids)]
    if mounts:
        problems.append(f"mounts {mounts}")
    if os.path.exists(pod_dir(cluster, uid)):
        problems.append(f"pod dir {pod_dir(cluster, uid)}")
    rootfs = glob.glob(os.path.join(cluster.data_dir, "agent", "rootfs", uid + "-*"))
    if rootfs:
        problems.append(f"rootfs {rootfs}")
    store = [i for i in sandboxes if os.path.exists(
        os.path.join(runtime_root(cluster), "sandboxes", i))]
    store += [i for i in containers if os.path.exists(
        os.path.join(runtime_root(cluster), "containers", i))]
    if store:
        problems.append(f"runtime store entries {store}")
    if pod_ip:
        ipam = glob.glob(os.path.join(cluster.data_dir, "agent", "cni", "ipam", "*", pod_ip))
        if ipam:
            problems.append(f"IP reservation {ipam}")
    for i in ids:
        procs = subprocess.run(["pgrep", "-af", i], capture_output=True, text=True).stdout
        alive = [p for p in procs.splitlines() if "pgrep" not in p]
        if alive:
            problems.append(f"processes {alive[:2]}")
    return problems


def delete_and_check(cluster, name: str, timeout: int = 90) -> float:
    """`kubectl delete pod` (waits for it to be gone), then assert that the pod left no runc
    container, netns, mount, pod dir, rootfs, IP or process behind. Returns the seconds the
    delete took.

    A running pod is removed from the API by the agent's final grace-0 delete, after the
    teardown: nothing may be left when `kubectl delete` returns. A pod in a terminal phase
    is deleted by the API server at once (grace forced to 0, as in Kubernetes) and the agent
    cleans up afterwards: then the host must be clean within a few seconds."""
    pod = pod_json(cluster, name)
    assert pod is not None, f"pod {name} does not exist"
    uid = pod["metadata"]["uid"]
    pod_ip = (pod.get("status") or {}).get("podIP", "")
    terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    sandboxes, containers = pod_runtime_ids(cluster, uid)
    assert sandboxes, f"no sandbox of {name} in the runtime store"
    started = time.monotonic()
    cluster.kubectl("delete", "pod", name, f"--timeout={timeout}s", timeout=timeout + 30)
    took = time.monotonic() - started
    assert pod_json(cluster, name) is None
    if terminal:
        deadline = time.monotonic() + 30
        while host_leftovers(cluster, uid, sandboxes, containers, pod_ip) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
    left = host_leftovers(cluster, uid, sandboxes, containers, pod_ip)
    assert not left, f"pod {name} left behind: {left}"
    return took


def log_text(cluster, uid: str, container: str = "c", restart: int = 0) -> str:
    path = os.path.join(pod_dir(cluster, uid), "logs", container, f"{restart}.log")
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_float(path: str) -> float | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return float(text) if text else None
    except (FileNotFoundError, ValueError):
        return None


class PodWatch:
    """Every version of one pod, from its creation: `kubectl get pods --field-selector
    metadata.name=NAME -w -o json` in the background, started before the pod exists; the
    constructor returns once kubectl's watch request was answered (its ``-v=6`` log line),
    so no version is missed (a short-lived status included)."""

    def __init__(self, cluster, name: str) -> None:
        self.proc = cluster.server.kubectl_popen(
            "get", "pods", "--field-selector", f"metadata.name={name}", "-w", "-o", "json",
            "-v=6")
        LineReader(self.proc, "stderr").wait_for(
            lambda line: "watch=true" in line and " 200 OK" in line, timeout=30,
            what="kubectl's watch request answered")
        self.objects: list[dict] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        chunk: list[str] = []
        for line in self.proc.stdout:
            chunk.append(line)
            if line.rstrip("\n") == "}":
                try:
                    self.objects.append(json.loads("".join(chunk)))
                except ValueError:
                    pass
                chunk = []

    def waiting_reasons(self, container: str = "c") -> list[str]:
        out: list[str] = []
        for obj in list(self.objects):
            reason = waiting_reason(obj, container)
            if reason and (not out or out[-1] != reason):
                out.append(reason)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def busybox_pod(cluster, name: str, script: str, *, policy: str = "Always",
                spec: dict | None = None, container: dict | None = None) -> str:
    """A bare one-container busybox pod running ``sh -c script``, pinned to the node, as
    JSON for ``kubectl apply``; ``spec`` / ``container``: further fields, spelled as in the
    API."""
    return json.dumps(
        make_pod(name, None).bare().node(cluster.node).restart_policy(policy)
        .container("c", command=["sh", "-c", script], imagePullPolicy="IfNotPresent",
                   **(container or {}))
        .set_spec(**(spec or {})).build())


def sh_hook(script: str) -> dict:
    """A lifecycle handler running ``sh -c script``."""
    return {"exec": {"command": ["sh", "-c", script]}}


def host_dir(path: str) -> dict:
    """Pod spec fields: a hostPath volume ``hp`` of ``path`` (see HP_MOUNT)."""
    return {"volumes": [{"name": "hp", "hostPath": {"path": path, "type": "DirectoryOrCreate"}}]}


HP_MOUNT = {"volumeMounts": [{"name": "hp", "mountPath": "/hp"}]}


# -- restartPolicy matrix -------------------------------------------------------------------------

MATRIX = [
    # policy, exit code, expected phase, restarts?, terminated reason
    ("Always", 0, "Running", True, "Completed"),
    ("Always", 1, "Running", True, "Error"),
    ("OnFailure", 0, "Succeeded", False, "Completed"),
    ("OnFailure", 1, "Running", True, "Error"),
    ("Never", 0, "Succeeded", False, "Completed"),
    ("Never", 1, "Failed", False, "Error"),
]


def matrix_name(policy: str, code: int) -> str:
    return f"lc-rp-{policy.lower()}-{code}"


@pytest.fixture(scope="module")
def matrix_pods(cluster):
    """All six restartPolicy × exit-code pods, created at once (they run in parallel)."""
    for policy, code, *_ in MATRIX:
        cluster.apply(busybox_pod(cluster, matrix_name(policy, code), f"exit {code}",
                                  policy=policy))
    return cluster


@pytest.mark.parametrize("policy,code,phase,restarts,reason", MATRIX,
                         ids=[f"{p}-exit{c}" for p, c, *_ in MATRIX])
def test_restart_policy_matrix(matrix_pods, wait, policy, code, phase, restarts, reason):
    cluster = matrix_pods
    name = matrix_name(policy, code)
    if restarts:
        # The container is restarted, then held in CrashLoopBackOff; the pod stays Running.
        pod = wait(lambda: (lambda p: p if waiting_reason(p) == "CrashLoopBackOff"
                            and cstatus(p).get("restartCount", 0) >= 1 else None)(
                                pod_json(cluster, name)),
                   90, message=f"{name} never reached CrashLoopBackOff")
        assert pod["status"]["phase"] == phase
        st = cstatus(pod)
        last = st["lastState"]["terminated"]
        assert last["exitCode"] == code and last["reason"] == reason, st
        assert st["ready"] is False
        wait(lambda: status_column(cluster, name) == "CrashLoopBackOff", 60,
             message=f"STATUS column of {name} never showed CrashLoopBackOff")
    else:
        pod = wait(lambda: (lambda p: p if (p or {}).get("status", {}).get("phase") == phase
                            else None)(pod_json(cluster, name)),
                   90, message=f"{name} never reached phase {phase}")
        st = cstatus(pod)
        term = st["state"]["terminated"]
        assert term["exitCode"] == code and term["reason"] == reason, st
        assert term["containerID"] == st["containerID"]
        assert st["restartCount"] == 0 and st["ready"] is False
        assert status_column(cluster, name) == reason
        evs = events(cluster, name)
        assert len(find_events(evs, "Started")) == 1 and \
            find_events(evs, "Started")[0]["count"] == 1, describe_events(evs)
        # A terminal phase is final: nothing is restarted and the phase stays.
        pod = pod_json(cluster, name)
        assert pod["status"]["phase"] == phase and cstatus(pod)["restartCount"] == 0
    delete_and_check(cluster, name)


# -- CrashLoopBackOff -----------------------------------------------------------------------------


def test_crash_loop_back_off_reported(cluster, wait):
    name = "lc-crashloop"
    cluster.apply(busybox_pod(cluster, name, "echo crashing; exit 3"))
    uid = wait(lambda: (pod_json(cluster, name) or {}).get("metadata", {}).get("uid"), 10)
    want = f"pod={name}_default({uid})"

    first = wait(lambda: (lambda p: p if waiting_reason(p) == "CrashLoopBackOff" else None)(
        pod_json(cluster, name)), 60, message="no CrashLoopBackOff")
    st = cstatus(first)
    assert st["state"]["waiting"]["message"] == \
        f"back-off 10s restarting failed container=c {want}", st
    assert st["lastState"]["terminated"]["exitCode"] == 3
    assert st["lastState"]["terminated"]["reason"] == "Error"
    assert first["status"]["phase"] == "Running"
    assert "crashing" in log_text(cluster, uid, "c", 0)

    # The back-off doubles: the next wait is 20 s.
    second = wait(lambda: (lambda p: p if "back-off 20s" in (
        (cstatus(p).get("state") or {}).get("waiting") or {}).get("message", "") else None)(
        pod_json(cluster, name)), 60, message="the back-off did not double to 20s")
    assert cstatus(second)["restartCount"] >= 2
    assert cstatus(second)["state"]["waiting"]["message"] == \
        f"back-off 20s restarting failed container=c {want}"
    assert status_column(cluster, name) == "CrashLoopBackOff"

    evs = events(cluster, name)
    assert find_events(evs, "Started", type_="Normal", message="Started container c")
    assert find_events(evs, "Started")[0]["count"] >= 2, describe_events(evs)  # aggregated
    delete_and_check(cluster, name)
    backoff = find_events(evs, "BackOff", type_="Warning",
                          prefix="Back-off restarting failed container")
    assert backoff, "no BackOff event for the crash loop:\n" + describe_events(evs)
    assert backoff[0]["message"] in (
        f"Back-off restarting failed container c in pod {name}_default({uid})",
        "Back-off restarting failed container"), backoff[0]["message"]


# -- images ---------------------------------------------------------------------------------------


def test_image_pull_policy_never_absent_image(cluster, wait):
    name = "lc-neverpull"
    image = "busybox-never:1"
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {cluster.node}
  containers:
  - name: c
    image: {image}
    imagePullPolicy: Never
""")
    pod = wait(lambda: (lambda p: p if waiting_reason(p) == "ErrImageNeverPull" else None)(
        pod_json(cluster, name)), 60, message="no ErrImageNeverPull")
    message = f'Container image "{image}" is not present with pull policy of Never'
    assert cstatus(pod)["state"]["waiting"]["message"] == message
    assert pod["status"]["phase"] == "Pending"
    assert status_column(cluster, name) == "ErrImageNeverPull"
    evs = events(cluster, name)
    assert find_events(evs, "ErrImageNeverPull", type_="Warning", message=message), \
        describe_events(evs)
    assert not find_events(evs, "Pulling"), describe_events(evs)
    delete_and_check(cluster, name)
    # The kubelet records every EnsureImageExists failure as Failed "Error: <reason>"
    # (kuberuntime_container.go startContainer).
    assert find_events(evs, "Failed", type_="Warning", message="Error: ErrImageNeverPull"), \
        describe_events(evs)


def test_missing_image_err_image_pull_then_back_off(cluster, wait):
    name = "lc-missing-image"
    image = "busybox-nope:1"
    watch = PodWatch(cluster, name)  # before the pod: ErrImagePull may be short-lived
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {cluster.node}
  containers:
  - name: c
    image: {image}
""")
    try:
        wait(lambda: "ImagePullBackOff" in watch.waiting_reasons(), 90,
             message=f"no ImagePullBackOff; waiting reasons seen: {watch.waiting_reasons()}")
        seen = watch.waiting_reasons()
    finally:
        watch.stop()
    assert "ErrImagePull" in seen, seen
    assert seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen
    pod = pod_json(cluster, name)
    assert pod["status"]["phase"] == "Pending"
    assert cstatus(pod)["restartCount"] == 0
    column = status_column(cluster, name)
    assert column in ("ErrImagePull", "ImagePullBackOff"), column

    evs = wait(lambda: (lambda e: e if find_events(e, "BackOff") else None)(
        events(cluster, name)), 30, message="no BackOff event for the image pull")
    assert find_events(evs, "Pulling", type_="Normal", message=f'Pulling image "{image}"')
    assert find_events(evs, "Failed", type_="Warning",
                       prefix=f'Failed to pull image "{image}": '), describe_events(evs)
    assert find_events(evs, "Failed", type_="Warning", message="Error: ErrImagePull"), \
        describe_events(evs)
    assert find_events(evs, "BackOff", type_="Normal",
                       message=f'Back-off pulling image "{image}"'), describe_events(evs)
    assert not find_events(evs, "Started"), describe_events(evs)
    delete_and_check(cluster, name)
    # The kubelet records every EnsureImageExists failure as Failed "Error: <reason>",
    # the back-off included (kuberuntime_container.go startContainer).
    assert find_events(evs, "Failed", type_="Warning", message="Error: ImagePullBackOff"), \
        describe_events(evs)


# -- hooks ----------------------------------------------------------------------------------------


def test_post_start_writes_file_the_entrypoint_reads(cluster, wait):
    name = "lc-poststart"
    script = ("while [ ! -f /tmp/hooked ]; do sleep 0.1; done; "
              "echo \"entrypoint read: $(cat /tmp/hooked)\"; exec sleep 3600")
    cluster.apply(busybox_pod(cluster, name, script, container={
        "lifecycle": {"postStart": sh_hook("echo written-by-poststart > /tmp/hooked")}}))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    pod = pod_json(cluster, name)
    uid = pod["metadata"]["uid"]
    assert cstatus(pod)["restartCount"] == 0
    assert "running" in cstatus(pod)["state"]
    line = wait(lambda: next((ln for ln in log_text(cluster, uid).splitlines()
                              if "entrypoint read:" in ln), None), 30,
                message="the entrypoint never logged the postStart file")
    # CRI log format: <RFC3339Nano> stdout F <text>
    assert re.fullmatch(r"\S+ stdout F entrypoint read: written-by-poststart", line), line
    evs = events(cluster, name)
    assert not find_events(evs, "FailedPostStartHook"), describe_events(evs)
    delete_and_check(cluster, name)


def test_failing_post_start_kills_and_restarts(cluster, wait):
    name = "lc-poststart-fail"
    # killed as any container is, with the pod's grace: sleep as PID 1 ignores SIGTERM
    cluster.apply(busybox_pod(cluster, name, "exec sleep 3600", spec={
        "terminationGracePeriodSeconds": 2}, container={
        "lifecycle": {"postStart": sh_hook("echo hook-out; exit 1")}}))
    pod = wait(lambda: (lambda p: p if cstatus(p).get("restartCount", 0) >= 1 else None)(
        pod_json(cluster, name)), 90, message="the container was not restarted")
    uid = pod["metadata"]["uid"]
    assert pod["status"]["phase"] == "Running"
    evs = wait(lambda: (lambda e: e if find_events(e, "FailedPostStartHook") and
                        find_events(e, "Killing") else None)(events(cluster, name)), 30,
               message="no FailedPostStartHook + Killing events")
    hook = find_events(evs, "FailedPostStartHook", type_="Warning")
    assert hook, describe_events(evs)
    old_format = (f'Exec lifecycle hook ([sh -c echo hook-out; exit 1]) for Container "c" in '
                  f'Pod "{name}_default({uid})" failed - error: command '
                  f"'sh -c echo hook-out; exit 1' exited with 1: ")
    assert hook[0]["message"] == "PostStartHook failed" or \
        hook[0]["message"].startswith(old_format), hook[0]["message"]
    assert find_events(evs, "Killing", type_="Normal", message="FailedPostStartHook"), \
        describe_events(evs)
    st = cstatus(pod)
    assert st["ready"] is False or "running" in st["state"], st
    delete_and_check(cluster, name)


PRESTOP_SCRIPT = """\
trap 'cut -d " " -f1 /proc/uptime > /hp/term; exit 0' TERM
while true; do sleep 0.2; done
"""


def test_pre_stop_delays_the_stop_signal(cluster, wait, tmp_path):
    name = "lc-prestop"
    hp = str(tmp_path / "hp")
    cluster.apply(busybox_pod(
        cluster, name, PRESTOP_SCRIPT,
        spec={"terminationGracePeriodSeconds": 30, **host_dir(hp)},
        container={**HP_MOUNT, "lifecycle": {
            "preStop": sh_hook('cut -d " " -f1 /proc/uptime > /hp/prestop; sleep 5')}}))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    took = delete_and_check(cluster, name)
    prestop = read_float(os.path.join(hp, "prestop"))
    term = read_float(os.path.join(hp, "term"))
    assert prestop is not None, "the preStop hook did not run"
    assert term is not None, "the container never got SIGTERM"
    # The stop signal comes after the hook's 5 s (uptime has 10 ms resolution).
    assert term - prestop >= 4.95, (prestop, term)
    assert term - prestop < 25, (prestop, term)  # generous: it is not held for the grace
    assert took < 28, f"deletion took {took:.1f}s although the container exits on SIGTERM"
    evs = events(cluster, name)
    assert find_events(evs, "Killing", type_="Normal", message="Stopping container c"), \
        describe_events(evs)
    assert not find_events(evs, "FailedPreStopHook"), describe_events(evs)


IGNORE_TERM_SCRIPT = """\
trap 'cut -d " " -f1 /proc/uptime > /hp/term' TERM
while true; do cut -d " " -f1 /proc/uptime > /hp/alive.tmp; mv /hp/alive.tmp /hp/alive; sleep 0.2; done
"""


def test_container_ignoring_sigterm_is_killed_after_grace(cluster, wait, tmp_path):
    name = "lc-ignore-term"
    hp = str(tmp_path / "hp")
    cluster.apply(busybox_pod(cluster, name, IGNORE_TERM_SCRIPT,
                              spec={"terminationGracePeriodSeconds": 3, **host_dir(hp)},
                              container=HP_MOUNT))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    wait(lambda: read_float(os.path.join(hp, "alive")), 30, message="container never wrote")
    took = delete_and_check(cluster, name, timeout=60)
    term = read_float(os.path.join(hp, "term"))
    alive = read_float(os.path.join(hp, "alive"))
    assert term is not None, "the container never got SIGTERM"
    # It kept running after SIGTERM (trapped and ignored) until SIGKILL at the grace's end.
    assert alive is not None and alive - term >= 2.0, (term, alive)
    assert took >= 3.0, f"deletion took {took:.1f}s, less than the 3 s grace period"
    assert took < 20, f"deletion took {took:.1f}s with a 3 s grace period"
