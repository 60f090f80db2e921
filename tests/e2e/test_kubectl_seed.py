"""`kubectl apply -f examples/seed/` against a freshly started server, then get / -o yaml.

The real kubectl is used throughout; see conftest.py for the fixtures.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

from podling_e2e import REPO
from kubectl_util import pod_manifest, unique

pytestmark = pytest.mark.e2e

SEED = os.path.join(REPO, "examples", "seed")
SEED_PODS = ["aliases", "host-hooks", "pinned-web", "selector-web", "shared-pid"]
WIDE_HEADER = ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
               "READINESS GATES"]


def _columns(line: str) -> list[str]:
    """Split a kubectl table line on runs of 2+ spaces (headers like "NOMINATED NODE")."""
    return re.split(r"\s{2,}", line.strip())


def _get_yaml(server, name: str) -> dict:
    return yaml.safe_load(server.kubectl("get", "pod", name, "-o", "yaml").stdout)


def _container(pod: dict, name: str) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def test_apply_seed_directory_then_get_wide_and_yaml(server):
    out = server.kubectl("apply", "-f", SEED).stdout
    assert sorted(out.split("\n")[:-1]) == sorted(f"pod/{p} created" for p in SEED_PODS), out

    # -- get pods -o wide: the full wide header and one row per pod.
    lines = server.kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert _columns(lines[0]) == WIDE_HEADER, lines[0]
    rows = {cols[0]: cols for cols in map(_columns, lines[1:])}
    assert sorted(rows) == sorted(SEED_PODS)
    for cols in rows.values():
        assert len(cols) == len(WIDE_HEADER), cols
        assert cols[2] == "Pending" and cols[3] == "0", cols
    assert rows["pinned-web"][6] == "172.31.2.11"
    assert rows["selector-web"][6] == "<none>"
    assert rows["shared-pid"][1:3] == ["0/2", "Pending"]
    assert rows["aliases"][1] == "0/1"

    # -- -o yaml round-trips the manifest fields ...
    aliases = _get_yaml(server, "aliases")
    assert aliases["spec"]["hostAliases"] == [
        {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
        {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]
    assert aliases["spec"]["restartPolicy"] == "Never"  # explicit value kept
    assert _container(aliases, "cat-hosts")["command"] == ["cat", "/etc/hosts"]

    shared = _get_yaml(server, "shared-pid")
    assert shared["spec"]["shareProcessNamespace"] is True
    shell = _container(shared, "shell")
    assert shell["stdin"] is True and shell["tty"] is True

    selector = _get_yaml(server, "selector-web")
    assert selector["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "172.31.2.12"}
    assert selector["metadata"]["labels"] == {"app": "selector-web"}
    assert _container(selector, "web")["ports"] == [{"containerPort": 80, "protocol": "TCP"}]

    hooks = _get_yaml(server, "host-hooks")
    spec = hooks["spec"]
    assert (spec["hostNetwork"], spec["hostPID"], spec["hostIPC"]) == (True, True, True)
    assert spec["terminationGracePeriodSeconds"] == 10
    lifecycle = _container(hooks, "main")["lifecycle"]
    assert lifecycle["postStart"]["exec"]["command"] == [
        "sh", "-c", "echo started > /tmp/poststart"]
    assert lifecycle["preStop"]["exec"]["command"] == ["sh", "-c", "sleep 2"]

    # -- ... plus the defaults the API server fills in.
    pinned = _get_yaml(server, "pinned-web")
    assert pinned["spec"]["nodeName"] == "172.31.2.11"
    for pod in (pinned, shared, selector, hooks):
        spec = pod["spec"]
        assert spec["restartPolicy"] == "Always"
        assert spec["dnsPolicy"] == "ClusterFirst"
        assert spec["schedulerName"] == "default-scheduler"
        assert isinstance(spec["terminationGracePeriodSeconds"], int)
        for container in spec["containers"]:
            # every seed image is untagged, which means :latest -> Always
            assert container["imagePullPolicy"] == "Always", container
            assert container["terminationMessagePath"] == "/dev/termination-log"
            assert container["terminationMessagePolicy"] == "File"
        assert pod["status"]["phase"] == "Pending"
        assert pod["status"]["qosClass"] == "BestEffort"
        meta = pod["metadata"]
        assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"]), meta
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"]), meta
        assert meta["resourceVersion"].isdigit()
        assert meta["namespace"] == "default"
        assert "kubectl.kubernetes.io/last-applied-configuration" in meta["annotations"]
    assert pinned["spec"]["terminationGracePeriodSeconds"] == 30
    uids = {p["metadata"]["uid"] for p in (pinned, shared, selector, hooks, aliases)}
    assert len(uids) == 5


def test_image_pull_policy_defaults_by_tag(server):
    """Tagged non-latest image -> IfNotPresent; `:latest` or no tag -> Always."""
    cases = {"nginx:1.27": "IfNotPresent", "nginx:latest": "Always", "nginx": "Always",
             "nginx@sha256:" + "a" * 64: "IfNotPresent"}
    names = {}
    for image in cases:
        names[image] = unique("pull")
        server.kubectl("create", "-f", "-", input=pod_manifest(names[image], image=image))
    for image, policy in cases.items():
        got = server.kubectl("get", "pod", names[image], "-o",
                             "jsonpath={.spec.containers[0].imagePullPolicy}").stdout
        assert got == policy, (image, got)
