"""Pod spec fields with Kubernetes' behaviour, through the real kubectl: a negative grace
period, a non-root termination message, log timestamps, activeDeadlineSeconds, and the
pod GC of pods bound to a node that does not exist."""

from __future__ import annotations

import datetime as dt
import json
import re

from manifests import busybox, pod

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def _apply(cluster, manifest: dict) -> None:
    cluster.apply(json.dumps(manifest))


def _get(cluster, name: str) -> dict | None:
    result = cluster.kubectl("get", "pod", name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _jsonpath(cluster, name: str, path: str) -> str:
    return cluster.kubectl("get", "pod", name, "-o", f"jsonpath={path}").stdout


def _delete(cluster, *names: str) -> None:
    cluster.kubectl("delete", "pod", *names, "--ignore-not-found", "--timeout=60s")


def test_a_negative_grace_period_is_stored_as_1(cluster):
    manifest = pod("neg-grace", cluster.node, [busybox("c", "sleep 3600")])
    manifest["spec"]["terminationGracePeriodSeconds"] = -1
    _apply(cluster, manifest)
    assert _jsonpath(cluster, "neg-grace", "{.spec.terminationGracePeriodSeconds}") == "1"
    _delete(cluster, "neg-grace")


def test_a_non_root_container_writes_its_termination_message(cluster, wait):
    manifest = pod("term-nonroot", cluster.node, [busybox(
        "c", "echo -n bye from 1000 > /dev/termination-log; exit 1",
        securityContext={"runAsUser": 1000, "runAsGroup": 1000})], restartPolicy="Never")
    _apply(cluster, manifest)
    path = "{.status.containerStatuses[0].state.terminated.message}"
    assert wait(lambda: _jsonpath(cluster, "term-nonroot", path), timeout=60) == \
        "bye from 1000"
    _delete(cluster, "term-nonroot")


def test_logs_timestamps_are_rfc3339_nano_in_utc_and_since_time_filters(cluster, wait):
    _apply(cluster, pod("log-stamps", cluster.node,
                        [busybox("c", "echo one; echo two; sleep 3600")]))
    wait(lambda: cluster.kubectl("logs", "log-stamps", check=False).stdout == "one\ntwo\n",
         timeout=60)
    lines = cluster.kubectl("logs", "log-stamps", "--timestamps").stdout.splitlines()
    assert len(lines) == 2, lines
    for line, text in zip(lines, ("one", "two")):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z " + text, line), line
    first = lines[0].split(" ")[0]
    assert cluster.kubectl("logs", "log-stamps", f"--since-time={first}").stdout == \
        "one\ntwo\n"
    # another offset (kubectl sends it in UTC, whole seconds): 2 s after the lines
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1, seconds=2)).strftime(
        "%Y-%m-%dT%H:%M:%S+01:00")
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert cluster.kubectl("logs", "log-stamps", f"--since-time={future}").stdout == ""
    assert cluster.kubectl("logs", "log-stamps", f"--since-time={later}").stdout == ""
    _delete(cluster, "log-stamps")


def _deadline_events(cluster, name: str) -> list[dict]:
    events = json.loads(cluster.kubectl("get", "events", "-o", "json").stdout)["items"]
    return [e for e in events if e["involvedObject"].get("name") == name
            and e.get("reason") == "DeadlineExceeded"]


def test_active_deadline_seconds_fails_the_pod_with_deadline_exceeded(cluster, wait):
    _apply(cluster, pod("deadline", cluster.node, [busybox("c", "sleep 3600")],
                        activeDeadlineSeconds=5))
    failed = wait(lambda: (p := _get(cluster, "deadline")) and
                  p["status"].get("phase") == "Failed" and p, timeout=60)
    status = failed["status"]
    assert (status["reason"], status["message"]) == ("DeadlineExceeded", DEADLINE_MESSAGE)
    state = wait(lambda: (p := _get(cluster, "deadline")) and
                 p["status"]["containerStatuses"][0]["state"].get("terminated"), timeout=30)
    assert state["exitCode"] in (137, 143)
    [event] = wait(lambda: _deadline_events(cluster, "deadline"), timeout=30)[:1]
    assert (event["type"], event["message"]) == ("Normal", DEADLINE_MESSAGE)
    _delete(cluster, "deadline")


def test_a_pod_bound_to_a_missing_node_is_garbage_collected(cluster, wait):
    _apply(cluster, pod("orphan", f"{cluster.node}-missing", [busybox("c", "sleep 3600")]))
    assert _get(cluster, "orphan") is not None
    # Kubernetes' PodGC: a 40 s quarantine, checked every 20 s
    wait(lambda: _get(cluster, "orphan") is None, timeout=120, interval=1.0)


def _states(cluster, name: str) -> dict:
    got = _get(cluster, name) or {}
    status = got.get("status") or {}
    return {"phase": status.get("phase"),
            **{s["name"]: next(iter(s["state"]), "") for s in
               (status.get("initContainerStatuses") or [])
               + (status.get("containerStatuses") or [])}}


def test_a_sidecar_runs_beside_the_app_and_lets_the_pod_succeed(cluster, wait):
    manifest = pod("sidecar", cluster.node, [busybox(
        "app", "for i in 1 2 3 4 5; do echo line $i >> /shared/log; sleep 1; done")],
        restartPolicy="Never", volumes=[{"name": "shared", "emptyDir": {}}])
    mount = [{"name": "shared", "mountPath": "/shared"}]
    manifest["spec"]["containers"][0]["volumeMounts"] = mount
    manifest["spec"]["initContainers"] = [busybox(
        "tail", "touch /shared/log; tail -f /shared/log", restartPolicy="Always",
        volumeMounts=mount)]
    _apply(cluster, manifest)
    both = wait(lambda: (s := _states(cluster, "sidecar")) and s.get("app") == "running"
                and s, timeout=60)
    assert both["tail"] == "running" and both["phase"] == "Running"
    wait(lambda: "line 2" in cluster.kubectl("logs", "sidecar", "-c", "tail",
                                              check=False).stdout, timeout=30)
    done = wait(lambda: (s := _states(cluster, "sidecar")) and
                s["phase"] in ("Succeeded", "Failed") and s, timeout=60)
    assert done["phase"] == "Succeeded", done
    assert done["app"] == "terminated" and done["tail"] == "terminated"
    assert "line 5" in cluster.kubectl("logs", "sidecar", "-c", "tail").stdout
    _delete(cluster, "sidecar")
