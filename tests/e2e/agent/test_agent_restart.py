"""Crash safety: `kill -9` of the server (which runs the local agent) with pods running, then
a new server on the same data dir with the same flags.

Running containers must be untouched (same runc containers, same PIDs, restart counts
unchanged, no Started/Killing events), nothing duplicated, a container that exited while the
agent was down is reported with its real exit code (and restarted per its restartPolicy), and
pods deleted right after the restart are torn down completely. The module has its own cluster
(module-scoped fixture of conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from builders import make_pod

from test_pod_lifecycle import (HP_MOUNT, cstatus, events, find_events, host_leftovers,
                                host_dir, pod_json, pod_runtime_ids)

N = 10
SLEEPER = 'trap "exit 0" TERM; while true; do sleep 0.5; done'


def runc_state(cluster, cid: str) -> dict:
    out = subprocess.run(["runc", "--root", os.path.join(cluster.run_dir, "runtime", "runc"),
                          "state", cid], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def conmon_count(cid: str) -> int:
    """How many conmon processes monitor the container ``cid``."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"conmon" and cid.encode() in argv:
            count += 1
    return count


def pod_manifest(cluster, name: str, script: str, policy: str = "Always",
                 hp: str = "") -> str:
    """A bare busybox pod labelled app=rs running ``sh -c script`` on the node (grace 5 s),
    as JSON; with ``hp``, that host directory is mounted at /hp."""
    pod = (make_pod(name, None).bare().labels(app="rs").node(cluster.node)
           .restart_policy(policy).grace(5)
           .container("c", command=["sh", "-c", script], imagePullPolicy="IfNotPresent",
                      **(HP_MOUNT if hp else {})))
    if hp:
        pod.set_spec(**host_dir(hp))
    return json.dumps(pod.build())


@pytest.fixture(scope="module")
def restart_cluster(cluster):
    """The module's cluster; its server is replaced by the test, so stop the replacement
    (after deleting the pods through it) before conftest's teardown purges the node."""
    original = cluster.server
    yield cluster
    if cluster.server is not original:
        cluster.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=60s",
                        check=False, timeout=90)
        cluster.server.kill()
        cluster.server = original


def snapshot(cluster, names: list[str]) -> dict[str, dict]:
    """Per pod: uid, IP, containerID, restartCount, startedAt and its runtime ids."""
    snap = {}
    for name in names:
        pod = pod_json(cluster, name)
        st = cstatus(pod)
        sandboxes, containers = pod_runtime_ids(cluster, pod["metadata"]["uid"])
        snap[name] = {"uid": pod["metadata"]["uid"], "ip": pod["status"].get("podIP", ""),
                      "containerID": st.get("containerID"),
                      "restartCount": st.get("restartCount"),
                      "startedAt": (st.get("state") or {}).get("running", {}).get("startedAt"),
                      "sandboxes": sandboxes, "containers": containers}
    return snap


def test_kill9_and_restart_keeps_containers(restart_cluster, e2e_start_server, wait, tmp_path):
    cluster = restart_cluster
    hp = str(tmp_path / "hp")
    sleepers = [f"rs-{i}" for i in range(N)]
    docs = [pod_manifest(cluster, name, SLEEPER) for name in sleepers]
    # Two more that exit while the agent is down: one Never (exit 3), one Always (exit 4,
    # then waits again, so it is Running with one restart afterwards).
    docs.append(pod_manifest(cluster, "rs-exit-never", (
        "while [ ! -f /hp/go-never ]; do sleep 0.2; done; exit 3"), policy="Never", hp=hp))
    docs.append(pod_manifest(cluster, "rs-exit-always", (
        "while [ ! -f /hp/go-always ]; do sleep 0.2; done; rm /hp/go-always; exit 4"),
        hp=hp))
    cluster.apply("\n".join(docs))  # a stream of JSON objects, as kubectl reads one
    cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=rs", "--timeout=180s",
                    timeout=200)
    every = sleepers + ["rs-exit-never", "rs-exit-always"]
    before = snapshot(cluster, every)
    runc_before = set(cluster.runc_list())
    for name, s in before.items():
        assert len(s["sandboxes"]) == 1, (name, s)
        assert s["sandboxes"] <= runc_before, (name, s)
        assert s["containerID"].split("://")[-1] in runc_before, (name, s)
    running = {cid for s in before.values() for cid in s["sandboxes"] | s["containers"]
               if runc_state(cluster, cid)["status"] == "running"}
    pids = {cid: runc_state(cluster, cid)["pid"] for cid in running}
    started_events = {n: sum(e["count"] for e in find_events(events(cluster, n), "Started"))
                      for n in sleepers}

    # -- kill -9 the server with its agent ----------------------------------------------------
    assert cluster.server.kill(signal.SIGKILL) == -signal.SIGKILL
    for cid, pid in pids.items():  # the containers do not notice
        state = runc_state(cluster, cid)
        assert state["status"] == "running" and state["pid"] == pid, (cid, state)
    # Two containers exit while nobody watches.
    for flag in ("go-never", "go-always"):
        with open(os.path.join(hp, flag), "w"):
            pass
    exiting = {cid for n in ("rs-exit-never", "rs-exit-always") for cid in
               before[n]["containers"]}
    wait(lambda: all(runc_state(cluster, cid)["status"] == "stopped" for cid in exiting), 30,
         message="the containers did not exit while the agent was down")

    # -- a new server on the same data dir, with the same flags ------------------------------
    old = cluster.server
    cluster.server = e2e_start_server(cluster.data_dir, old.home, *old.extra_args,
                                      with_agent=True, log_path=cluster.log_path)
    # Deletions issued right away, while the new agent is still rebuilding its view.
    deleted = sleepers[:3]
    cluster.kubectl("delete", "pod", *deleted, "--wait=false")
    # A new pod that reaches Ready shows that the new agent is syncing.
    cluster.apply(pod_manifest(cluster, "rs-canary", SLEEPER))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/rs-canary", "--timeout=90s")

    # The deleted pods finish deleting and leave nothing behind.
    for name in deleted:
        wait(lambda: pod_json(cluster, name) is None, 90,
             message=f"{name} deleted after the restart never went away")
        s = before[name]
        left = host_leftovers(cluster, s["uid"], s["sandboxes"], s["containers"], s["ip"])
        assert not left, f"{name} left behind: {left}"

    # Exited while down: reported with the real exit codes.
    pod = wait(lambda: (lambda p: p if p["status"]["phase"] == "Failed" else None)(
        pod_json(cluster, "rs-exit-never")), 60, message="rs-exit-never did not fail")
    term = cstatus(pod)["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error", term
    assert cstatus(pod)["restartCount"] == 0
    assert term["containerID"] == before["rs-exit-never"]["containerID"]

    pod = wait(lambda: (lambda p: p if cstatus(p).get("restartCount") == 1 and
                        cstatus(p).get("ready") else None)(
        pod_json(cluster, "rs-exit-always")), 60,
        message="rs-exit-always was not restarted exactly once")
    last = cstatus(pod)["lastState"]["terminated"]
    assert last["exitCode"] == 4 and last["reason"] == "Error", last
    assert last["containerID"] == before["rs-exit-always"]["containerID"]

    # The running pods are untouched: same containers, same PIDs, same status.
    survivors = sleepers[3:]
    after = snapshot(cluster, survivors)
    for name in survivors:
        pod = pod_json(cluster, name)
        assert pod["status"]["phase"] == "Running", (name, pod["status"])
        st = cstatus(pod)
        assert st["ready"] is True and "running" in st["state"], (name, st)
        for key in ("containerID", "restartCount", "startedAt"):
            assert after[name][key] == before[name][key], (name, key, before[name], after[name])
        assert after[name]["sandboxes"] == before[name]["sandboxes"], name
        assert after[name]["containers"] == before[name]["containers"], name
        for cid in before[name]["sandboxes"] | before[name]["containers"]:
            state = runc_state(cluster, cid)
            assert state["status"] == "running" and state["pid"] == pids[cid], (name, state)
            # one monitor per container; the pause runs without one (runc run --detach)
            monitors = 0 if cid in before[name]["sandboxes"] else 1
            assert conmon_count(cid) == monitors, (name, cid, conmon_count(cid))
        evs = events(cluster, name)
        assert sum(e["count"] for e in find_events(evs, "Started")) == started_events[name], \
            (name, evs)
        assert not find_events(evs, "Killing"), (name, evs)

    # No duplicates: every runc container belongs to a live pod, and each pod has exactly one
    # sandbox and (except the Never pod) one running app container.
    live = survivors + ["rs-exit-never", "rs-exit-always", "rs-canary"]
    now = snapshot(cluster, live)
    runc_now = cluster.runc_list()
    assert len(runc_now) == len(set(runc_now))
    known = set().union(*(now[n]["sandboxes"] | now[n]["containers"] for n in live))
    assert set(runc_now) <= known, f"runc containers of no pod: {set(runc_now) - known}"
    for name in live:
        mine = (now[name]["sandboxes"] | now[name]["containers"]) & set(runc_now)
        up = {cid for cid in mine if runc_state(cluster, cid)["status"] == "running"}
        assert len(now[name]["sandboxes"]) == 1, (name, now[name])
        if name == "rs-exit-never":  # terminal: its sandbox is stopped too
            assert not up, (name, up)
            continue
        assert now[name]["sandboxes"] <= up, (name, now[name], up)
        assert len(up - now[name]["sandboxes"]) == 1, (name, up)

    # Everything deletes cleanly afterwards.
    cluster.kubectl("delete", "pod", *live, "--timeout=120s", timeout=150)
    for name in live:
        assert pod_json(cluster, name) is None
        s = now[name]
        left = host_leftovers(cluster, s["uid"], s["sandboxes"], s["containers"], s["ip"])
        assert not left, f"{name} left behind: {left}"
    assert cluster.runc_list() == []
