"""Sidecars (init containers with restartPolicy Always) on the real agent, seen through the
real kubectl: a sidecar's startup probe holds back the next init container, its readiness
counts in READY and the Ready condition, the app containers are stopped before the sidecars
and the sidecars in reverse order on delete, and an init container with a probe is refused
with Kubernetes' message. (A sidecar tailing the app's file while a Never pod succeeds:
test_pod_spec.py.)
"""

from __future__ import annotations

import json

from manifests import busybox, pod
from podcheck import pod_json, unique

# the trap is set before the ready mark: a test that waits for the mark never signals a shell
# that would still die of SIGTERM's default action
TRAP = ("trap 'echo {name} >> /log/order; exit 0' TERM; touch /log/{name}.ready; "
        "while true; do sleep 0.1; done")




def statuses(cluster, name: str) -> dict[str, dict]:
    status = pod_json(cluster, name).get("status") or {}
    return {s["name"]: s for s in (status.get("initContainerStatuses") or [])
            + (status.get("containerStatuses") or [])}


def columns(cluster, name: str) -> list[str]:
    return cluster.kubectl("get", "pod", name, "--no-headers").stdout.split()


def unhealthy(cluster, name: str, prefix: str) -> int:
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                          "-o", "json").stdout
    return sum(e.get("count", 1) for e in json.loads(out)["items"]
               if e.get("reason") == "Unhealthy" and e.get("message", "").startswith(prefix))


def test_a_sidecar_startup_probe_gates_the_next_init_and_readiness_counts(cluster, wait):
    name = unique("side-gate")
    manifest = pod(name, cluster.node, [busybox("app", "sleep 3600")])
    manifest["spec"]["initContainers"] = [
        busybox("proxy", "sleep 3600", restartPolicy="Always",
                startupProbe={"exec": {"command": ["cat", "/tmp/up"]}, "periodSeconds": 1,
                              "failureThreshold": 120},
                readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]},
                                "periodSeconds": 1, "failureThreshold": 1}),
        busybox("setup", "true")]
    cluster.apply(json.dumps(manifest))
    try:
        wait(lambda: unhealthy(cluster, name, "Startup probe failed: ") >= 3, timeout=90)
        now = statuses(cluster, name)
        assert "running" in now["proxy"]["state"] and now["proxy"]["started"] is False
        assert "waiting" in now["setup"]["state"] and now["setup"]["restartCount"] == 0
        assert columns(cluster, name)[1:3] == ["0/2", "Init:0/2"]
        cluster.kubectl("exec", name, "-c", "proxy", "--", "touch", "/tmp/up")
        wait(lambda: "running" in statuses(cluster, name)["app"]["state"], timeout=60)
        assert statuses(cluster, name)["setup"]["state"]["terminated"]["exitCode"] == 0
        # the app is ready, the sidecar is not: READY 1/2, the pod not Ready
        wait(lambda: columns(cluster, name)[1:3] == ["1/2", "Running"], timeout=30)
        conditions = {c["type"]: c for c in pod_json(cluster, name)["status"]["conditions"]}
        assert conditions["ContainersReady"]["message"] == \
            "containers with unready status: [proxy]"
        cluster.kubectl("exec", name, "-c", "proxy", "--", "touch", "/tmp/ready")
        wait(lambda: columns(cluster, name)[1] == "2/2", timeout=30)
        wait(lambda: {c["type"]: c["status"] for c in
                      pod_json(cluster, name)["status"]["conditions"]}["Ready"] == "True",
             timeout=30)
    finally:
        cluster.kubectl("delete", "pod", name, "--wait=false")


def test_sidecars_stop_after_the_app_in_reverse_order(cluster, wait, tmp_path):
    name = unique("side-order")
    log_dir = tmp_path / "order"
    log_dir.mkdir()
    mount = [{"name": "log", "mountPath": "/log"}]
    manifest = pod(name, cluster.node, [
        busybox("app", TRAP.format(name="app"), volumeMounts=mount)],
        volumes=[{"name": "log", "hostPath": {"path": str(log_dir)}}],
        terminationGracePeriodSeconds=10)
    manifest["spec"]["initContainers"] = [
        busybox(side, TRAP.format(name=side), restartPolicy="Always", volumeMounts=mount)
        for side in ("first", "second")]
    cluster.apply(json.dumps(manifest))
    wait(lambda: all("running" in s["state"] for s in statuses(cluster, name).values())
         and len(statuses(cluster, name)) == 3, timeout=90)
    wait(lambda: all((log_dir / f"{c}.ready").exists() for c in ("app", "first", "second")),
         timeout=30)
    cluster.kubectl("delete", "pod", name, "--wait=true", timeout=90)
    assert (log_dir / "order").read_text().split() == ["app", "second", "first"]


def test_an_init_container_with_a_probe_is_refused(cluster):
    name = unique("init-probe")
    manifest = pod(name, cluster.node, [busybox("app", "sleep 1")])
    manifest["spec"]["initContainers"] = [busybox(
        "setup", "true", livenessProbe={"exec": {"command": ["true"]}})]
    refused = cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert refused.returncode != 0
    assert (f'The Pod "{name}" is invalid: spec.initContainers[0].livenessProbe: Forbidden: '
            "may not be set for init containers without restartPolicy=Always") in refused.stderr
    manifest["spec"]["initContainers"][0]["restartPolicy"] = "Always"  # a sidecar may
    manifest["spec"]["initContainers"][0]["command"] = ["sleep", "3600"]
    cluster.apply(json.dumps(manifest))
    cluster.kubectl("delete", "pod", name, "--wait=false")
