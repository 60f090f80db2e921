"""Container probes on the real agent, seen through the real kubectl: an httpGet liveness probe
restarts nginx, an exec readiness probe flips the READY column, a startup probe holds back
liveness, tcpSocket and grpc probes pass and fail; with Kubernetes' Killing and Unhealthy events.

Every probe runs each second (periodSeconds 1); the tests wait on conditions with timeouts.
"""

from __future__ import annotations

import os

from manifests import busybox, pod
from podcheck import (apply, cstatus, delete_pods, event_count, events, has_event, pod_json,
                      ready_column, running, unique)

NGINX_WITH_HEALTHZ = ("echo ok > /usr/share/nginx/html/healthz.html && "
                      "exec nginx -g 'daemon off;'")












def test_http_liveness_failure_restarts_nginx(cluster, wait) -> None:
    name = unique("live-http")
    apply(cluster, pod(name, cluster.node, [{
        "name": "web", "image": "nginx", "command": ["sh", "-c", NGINX_WITH_HEALTHZ],
        "livenessProbe": {"httpGet": {"path": "/healthz.html", "port": 80},
                          "periodSeconds": 1, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/healthz.html", "port": 80},
                           "periodSeconds": 1}}]))
    try:
        wait(lambda: ready_column(cluster, name) == "1/1", timeout=90)  # the page is served
        first = cstatus(cluster, name)["containerID"]
        assert cstatus(cluster, name)["restartCount"] == 0
        cluster.kubectl("exec", name, "--", "rm", "/usr/share/nginx/html/healthz.html")
        wait(lambda: cstatus(cluster, name).get("restartCount") == 1 and
             running(cluster, name), timeout=60)
        after = cstatus(cluster, name)
        assert after["containerID"] != first
        assert after["lastState"]["terminated"]["containerID"] == first
        wait(lambda: has_event(cluster, name, "Normal", "Killing",
                               "Container web failed liveness probe, will be restarted"),
             timeout=20)
        assert ("Warning", "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 404") \
            in events(cluster, name)
        # the restarted container wrote its page again: it stays alive
        wait(lambda: ready_column(cluster, name) == "1/1", timeout=30)
    finally:
        delete_pods(cluster, name)


def test_readiness_follows_a_file(cluster, wait) -> None:
    name = unique("ready-exec")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600", readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]},
                                           "periodSeconds": 1, "failureThreshold": 1})]))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        wait(lambda: has_event(cluster, name, "Warning", "Unhealthy",
                               "Readiness probe failed: cat: can't open '/tmp/ready'"),
             timeout=30)
        assert ready_column(cluster, name) == "0/1"
        conditions = {c["type"]: c for c in pod_json(cluster, name)["status"]["conditions"]}
        assert conditions["Ready"]["status"] == "False"
        assert conditions["ContainersReady"]["message"] == \
            "containers with unready status: [c]"
        cluster.kubectl("exec", name, "--", "touch", "/tmp/ready")
        wait(lambda: ready_column(cluster, name) == "1/1", timeout=30)
        status = cstatus(cluster, name)
        assert status["ready"] is True and status["started"] is True
        cluster.kubectl("exec", name, "--", "rm", "/tmp/ready")
        wait(lambda: ready_column(cluster, name) == "0/1", timeout=30)
        assert cstatus(cluster, name)["restartCount"] == 0
    finally:
        delete_pods(cluster, name)


def test_startup_probe_holds_back_liveness(cluster, wait) -> None:
    name = unique("startup")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600",
        startupProbe={"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1,
                      "failureThreshold": 120},
        livenessProbe={"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1,
                       "failureThreshold": 1})]))
    try:
        wait(lambda: event_count(cluster, name, "Unhealthy", "Startup probe failed: ") >= 3,
             timeout=90)
        status = cstatus(cluster, name)
        # the liveness probe (which would fail) has not run: no restart, not started
        assert status["restartCount"] == 0 and status["started"] is False
        assert status["ready"] is False
        assert not has_event(cluster, name, "Warning", "Unhealthy", "Liveness probe")
        cluster.kubectl("exec", name, "--", "touch", "/tmp/started")
        wait(lambda: (cstatus(cluster, name).get("restartCount") or 0) >= 1, timeout=30)
        wait(lambda: has_event(cluster, name, "Normal", "Killing",
                               "Container c failed liveness probe, will be restarted"),
             timeout=20)
        assert has_event(cluster, name, "Warning", "Unhealthy",
                         "Liveness probe failed: cat: can't open '/tmp/alive'")
    finally:
        delete_pods(cluster, name)


def test_a_failing_startup_probe_restarts_the_container(cluster, wait) -> None:
    name = unique("startup-fail")
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600", startupProbe={"exec": {"command": ["false"]}, "periodSeconds": 1,
                                         "failureThreshold": 2})]))
    try:
        wait(lambda: (cstatus(cluster, name).get("restartCount") or 0) >= 1, timeout=90)
        wait(lambda: has_event(cluster, name, "Normal", "Killing",
                               "Container c failed startup probe, will be restarted"),
             timeout=20)
        assert ("Warning", "Unhealthy", "Startup probe failed: ") in events(cluster, name)
    finally:
        delete_pods(cluster, name)


def test_tcp_socket_probes_pass_and_fail(cluster, wait) -> None:
    good, bad = unique("tcp-ok"), unique("tcp-refused")
    for name, port in ((good, 80), (bad, 81)):
        apply(cluster, pod(name, cluster.node, [{
            "name": "web", "image": "nginx",
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1,
                               "failureThreshold": 1}}]))
    try:
        wait(lambda: ready_column(cluster, good) == "1/1", timeout=90)
        wait(lambda: running(cluster, bad), timeout=60)
        ip = pod_json(cluster, bad)["status"]["podIP"]
        wait(lambda: has_event(
            cluster, bad, "Warning", "Unhealthy",
            f"Readiness probe failed: dial tcp {ip}:81: connect: connection refused"),
             timeout=30)
        assert ready_column(cluster, bad) == "0/1"
    finally:
        delete_pods(cluster, good, bad)


def container_netns(cluster, name: str) -> str:
    """The network namespace of the pod's first container (its sandbox's), by the
    container's host PID from conmon's pid file."""
    cid = cstatus(cluster, name)["containerID"].split("://", 1)[1]
    with open(os.path.join(cluster.run_dir, "runtime", "containers", cid, "pid")) as f:
        return f"/proc/{int(f.read().strip())}/ns/net"


def test_grpc_probes_pass_and_fail(cluster, wait) -> None:
    """A pod's grpc probes reach a grpc.health.v1 server that the test runs inside the pod's
    network namespace, on the pod IP as the kubelet probes: SERVING makes it Ready,
    NOT_SERVING unready, and a NOT_SERVING liveness service restarts it. The probes start
    with the server not yet there (the port refuses): they fail until it is."""
    from grpc_health_server import HealthServerThread
    name, port = unique("grpc"), 50051
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600",
        readinessProbe={"grpc": {"port": port}, "periodSeconds": 1, "failureThreshold": 1},
        livenessProbe={"grpc": {"port": port, "service": "live"}, "periodSeconds": 1,
                       "failureThreshold": 2, "initialDelaySeconds": 600})]))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        assert ready_column(cluster, name) == "0/1"
        with HealthServerThread({"": 1, "live": 1}, "0.0.0.0", port=port,
                                netns=container_netns(cluster, name)) as server:
            wait(lambda: ready_column(cluster, name) == "1/1", timeout=30)
            server.set("", 2)
            wait(lambda: ready_column(cluster, name) == "0/1", timeout=30)
            assert has_event(cluster, name, "Warning", "Unhealthy",
                             'Readiness probe failed: service unhealthy (responded with '
                             '"NOT_SERVING")')
            server.set("", 1)
            wait(lambda: ready_column(cluster, name) == "1/1", timeout=30)
            assert cstatus(cluster, name)["restartCount"] == 0
    finally:
        delete_pods(cluster, name)


def test_grpc_liveness_probe_restarts_the_container(cluster, wait) -> None:
    """A NOT_SERVING liveness service restarts the container with the Killing event."""
    from grpc_health_server import HealthServerThread
    name, port = unique("grpc-live"), 50052
    apply(cluster, pod(name, cluster.node, [busybox(
        "c", "sleep 3600",
        livenessProbe={"grpc": {"port": port, "service": "live"}, "periodSeconds": 1,
                       "failureThreshold": 2, "initialDelaySeconds": 3})]))
    try:
        wait(lambda: running(cluster, name), timeout=90)
        with HealthServerThread({"live": 2}, "0.0.0.0", port=port,
                                netns=container_netns(cluster, name)):
            wait(lambda: (cstatus(cluster, name).get("restartCount") or 0) >= 1, timeout=60)
            wait(lambda: has_event(cluster, name, "Normal", "Killing",
                                   "Container c failed liveness probe, will be restarted"),
                 timeout=20)
            assert has_event(cluster, name, "Warning", "Unhealthy",
                             'Liveness probe failed: service unhealthy (responded with '
                             '"NOT_SERVING")')
    finally:
        delete_pods(cluster, name)
