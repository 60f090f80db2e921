"""Init containers on the real agent, seen through the real kubectl: they run in order before
the app container (a shared emptyDir file shows the order), `kubectl get -w` shows every
STATUS on the way (Init:0/2, Init:1/2, PodInitializing, Running, Completed), a failing init
container backs off in Init:CrashLoopBackOff under restartPolicy Always and fails the pod
(Init:Error) under Never.
"""

from __future__ import annotations

import json
import threading

from manifests import busybox, pod
from podcheck import pod_json, status_column, unique

SHARED = [{"name": "shared", "mountPath": "/shared"}]





class StatusWatch:
    """`kubectl get pod NAME -w --no-headers` in the background: every STATUS it prints."""

    def __init__(self, cluster, name: str) -> None:
        self.seen: list[str] = []
        self.process = cluster.server.kubectl_popen("get", "pod", name, "-w", "--no-headers")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            fields = line.split()
            if len(fields) > 2 and (not self.seen or self.seen[-1] != fields[2]):
                self.seen.append(fields[2])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.thread.join(10)


def ordered_pod(name: str, node: str) -> dict:
    manifest = pod(name, node, [busybox("app", "cat /shared/order; sleep 2",
                                        volumeMounts=SHARED)],
                   restartPolicy="Never", volumes=[{"name": "shared", "emptyDir": {}}])
    manifest["spec"]["initContainers"] = [
        busybox("first", "sleep 2; echo first >> /shared/order", volumeMounts=SHARED),
        busybox("second", "sleep 2; echo second >> /shared/order", volumeMounts=SHARED)]
    return manifest


def test_init_containers_run_in_order_and_kubectl_shows_each_status(cluster, wait) -> None:
    name = unique("init-order")
    cluster.apply(json.dumps(ordered_pod(name, cluster.node)))
    watch = StatusWatch(cluster, name)
    try:
        wait(lambda: status_column(cluster, name) == "Completed", timeout=120)
        wait(lambda: watch.seen and watch.seen[-1] == "Completed", timeout=20)
    finally:
        watch.stop()
    assert cluster.kubectl("logs", name, "-c", "app").stdout == "first\nsecond\n"
    steps = [s for s in watch.seen if s != "Pending"]
    assert steps == ["Init:0/2", "Init:1/2", "PodInitializing", "Running", "Completed"], \
        watch.seen
    inits = pod_json(cluster, name)["status"]["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"]) for s in inits] == [
        ("first", "Completed"), ("second", "Completed")]
    cluster.kubectl("delete", "pod", name, "--wait=false")


def failing_pod(name: str, node: str, policy: str) -> dict:
    manifest = pod(name, node, [busybox("app", "sleep 3600")], restartPolicy=policy)
    manifest["spec"]["initContainers"] = [busybox("ok", "true"), busybox("broken", "exit 3")]
    return manifest


def test_a_failing_init_container_backs_off_under_always(cluster, wait) -> None:
    name = unique("init-crash")
    cluster.apply(json.dumps(failing_pod(name, cluster.node, "Always")))
    try:
        wait(lambda: status_column(cluster, name) == "Init:CrashLoopBackOff", timeout=120)
        status = pod_json(cluster, name)["status"]
        broken = status["initContainerStatuses"][1]
        assert broken["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert broken["lastState"]["terminated"]["exitCode"] == 3
        assert broken["restartCount"] >= 1 and status["phase"] == "Pending"
        assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == \
            "PodInitializing"
        events = cluster.kubectl("get", "events", "--field-selector",
                                 f"involvedObject.name={name}", "-o", "json").stdout
        assert any(e["reason"] == "BackOff" and e["message"].startswith(
            "Back-off restarting failed container broken in pod")
            for e in json.loads(events)["items"])
    finally:
        cluster.kubectl("delete", "pod", name, "--wait=false")


def test_a_failing_init_container_fails_the_pod_under_never(cluster, wait) -> None:
    name = unique("init-never")
    cluster.apply(json.dumps(failing_pod(name, cluster.node, "Never")))
    try:
        wait(lambda: status_column(cluster, name) == "Init:Error", timeout=120)
        status = wait(lambda: (s := pod_json(cluster, name)["status"])
                      .get("phase") == "Failed" and s, timeout=30)
        broken = status["initContainerStatuses"][1]
        assert broken["state"]["terminated"]["exitCode"] == 3
        assert broken["state"]["terminated"]["reason"] == "Error"
        assert broken["restartCount"] == 0
        app = status["containerStatuses"][0]
        assert "running" not in app["state"] and app["restartCount"] == 0
    finally:
        cluster.kubectl("delete", "pod", name, "--wait=false")
