"""Termination messages reach the container status, from the file or from the logs."""

import json


def _terminated(cluster, name):
    pod = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)
    statuses = pod["status"].get("containerStatuses") or []
    return statuses and statuses[0]["state"].get("terminated")


def test_message_from_file_and_fallback_to_logs(cluster, wait):
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: term-file}}
spec:
  nodeName: {cluster.node}
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo -n goodbye > /dev/termination-log; exit 2"]
---
apiVersion: v1
kind: Pod
metadata: {{name: term-logs}}
spec:
  nodeName: {cluster.node}
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo something broke; exit 3"]
""")
    from_file = wait(lambda: _terminated(cluster, "term-file"), timeout=60)
    assert (from_file["exitCode"], from_file["reason"], from_file["message"]) == \
        (2, "Error", "goodbye")
    from_logs = wait(lambda: _terminated(cluster, "term-logs"), timeout=60)
    assert (from_logs["exitCode"], from_logs["message"]) == (3, "something broke\n")
    cluster.kubectl("delete", "pod", "term-file", "term-logs", "--timeout=60s")
