"""The per-pod stage timeline (``GET /debug/pods/timeline``) of a pod applied with kubectl:
every stage from the API create to Ready is there, in an order that holds whatever the
agent overlaps; only admins may read it."""

from __future__ import annotations

import json

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def test_stage_timeline_of_an_applied_pod(cluster):
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: timeline-web}}
spec:
  containers:
  - name: web
    image: nginx
  - name: side
    image: busybox
    command: {json.dumps(SLEEPER)}
""")  # no nodeName: the scheduler places it
    cluster.kubectl("wait", "--for=condition=Ready", "pod/timeline-web", "--timeout=60s")
    uid = cluster.kubectl("get", "pod", "timeline-web", "-o", "jsonpath={.metadata.uid}").stdout
    body = json.loads(cluster.kubectl(
        "get", "--raw", "/debug/pods/timeline?namespace=default&name=timeline-web").stdout)
    assert body["kind"] == "PodTimelineList"
    [item] = body["items"]
    assert (item["uid"], item["namespace"], item["base"]) == (uid, "default", "api.created")
    stages = item["stages"]
    expected = {"api.created", "scheduler.received", "scheduler.decided", "scheduler.bound",
                "agent.received", "agent.sync", "agent.admitted", "volumes.ready",
                "sandbox.created", "sandbox.started", "network.ready", "status.running",
                "status.ready"} | {f"container.{c}.{s}" for c in ("web", "side")
                                   for s in ("image", "created", "started")}
    assert expected <= set(stages), sorted(set(expected) - set(stages))
    assert list(stages.values()) == sorted(stages.values())  # listed in time order
    assert stages["api.created"] == 0.0

    def before(*names: str) -> None:
        times = [stages[n] for n in names]
        assert times == sorted(times), list(zip(names, times))
    before("api.created", "scheduler.received", "scheduler.decided", "scheduler.bound",
           "agent.received", "agent.sync", "agent.admitted", "sandbox.created",
           "sandbox.started")
    before("agent.admitted", "volumes.ready")
    for c in ("web", "side"):
        before("agent.admitted", f"container.{c}.image")
        before("sandbox.started", f"container.{c}.created", f"container.{c}.started",
               "status.running", "status.ready")
        before("volumes.ready", f"container.{c}.created")
    before("container.web.started", "container.side.started")  # started in spec order
    before("network.ready", "status.running")
    cluster.kubectl("delete", "pod", "timeline-web", "--timeout=60s")


def test_stage_timeline_is_for_admins_only(cluster, wait):
    def create_token():
        made = cluster.kubectl("create", "token", "default", check=False)
        return made.returncode == 0 and made.stdout.strip()
    token = wait(create_token, message="a token of the default service account")
    refused = cluster.kubectl("--token", token, "get", "--raw", "/debug/pods/timeline",
                              check=False)
    assert refused.returncode != 0
    assert 'cannot get path "/debug/pods/timeline"' in refused.stderr, refused.stderr
    assert "system:serviceaccount:default:default" in refused.stderr
