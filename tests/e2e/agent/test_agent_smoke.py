"""The local agent runs a pod from an unmodified manifest and deletes it cleanly."""

import json


def test_nginx_pod_runs_and_is_deleted(cluster, wait):
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: smoke-web}}
spec:
  nodeName: {cluster.node}
  containers:
  - name: web
    image: nginx
""")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/smoke-web", "--timeout=60s")
    pod = json.loads(cluster.kubectl("get", "pod", "smoke-web", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Running"
    import ipaddress
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(cluster.cidr)
    events = cluster.kubectl("get", "events", "--field-selector",
                             "involvedObject.name=smoke-web").stdout
    for reason in ("Pulling", "Pulled", "Created", "Started"):
        assert reason in events
    cluster.kubectl("delete", "pod", "smoke-web", "--timeout=60s")
    assert cluster.runc_list() == []
