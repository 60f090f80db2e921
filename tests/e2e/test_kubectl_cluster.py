"""The real kubectl: namespaces (lifecycle), nodes, leases and events.

One server per module; names are unique per test.
"""

from __future__ import annotations

import json
import re

import pytest
from builders import make_node

from kubectl_util import get_json, is_gone, jsonpath, new_namespace, pod_manifest, unique, \
    wait_until

pytestmark = pytest.mark.e2e


def _create_json(server, obj: dict, *args: str):
    return server.kubectl("create", *args, "-f", "-", input=json.dumps(obj))


def _node(name: str, ready: str = "True", **spec) -> dict:
    """A worker Node as an agent reports it (4 cpu, 8Gi, 110 pods; address, node info)."""
    return (make_node(name).labels(**{"node-role.kubernetes.io/worker": ""}).set_spec(**spec)
            .ready(ready, reason="KubeletReady", message="kubelet is posting ready status",
                   lastHeartbeatTime="2025-01-01T00:00:00Z",
                   lastTransitionTime="2025-01-01T00:00:00Z")
            .set_status(addresses=[{"type": "InternalIP", "address": "10.9.8.7"},
                                   {"type": "Hostname", "address": name}],
                        nodeInfo={"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12",
                                  "kernelVersion": "6.1.0",
                                  "containerRuntimeVersion": "podling://0.1",
                                  "operatingSystem": "linux", "architecture": "amd64",
                                  "machineID": "", "systemUUID": "", "bootID": "",
                                  "kubeProxyVersion": ""})
            .build())


# -- namespaces -----------------------------------------------------------------------------

def test_create_namespace_imperatively(shared_server):
    """`kubectl create namespace NAME` (kubectl sends this one as protobuf)."""
    name = unique("imp")
    result = shared_server.kubectl("create", "namespace", name, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"namespace/{name} created"
    assert jsonpath(shared_server, "namespace", name, path="{.status.phase}") == "Active"


def test_namespace_listing(shared_server):
    name = new_namespace(shared_server, "lst")
    lines = shared_server.kubectl("get", "namespaces").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    for builtin in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert rows[builtin] == "Active"
    assert rows[name] == "Active"
    assert shared_server.kubectl("get", "ns", name, "-o", "name").stdout.strip() == \
        f"namespace/{name}"


def test_delete_namespace_removes_its_pods_then_itself(shared_server):
    srv = shared_server
    ns = new_namespace(srv, "del")
    for name in ("p1", "p2"):
        srv.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest(name))
    out = srv.kubectl("delete", "namespace", ns, "--timeout=15s", timeout=30).stdout
    assert out.strip() == f'namespace "{ns}" deleted'
    wait_until(lambda: is_gone(srv, "namespace", ns), message="the namespace to go away")
    everywhere = srv.kubectl("get", "pods", "-A", "-o", "name",
                             "--field-selector", f"metadata.namespace={ns}").stdout
    assert everywhere == ""


def test_terminating_namespace_refuses_new_pods(shared_server):
    srv = shared_server
    ns = new_namespace(srv, "term")
    # A pod bound to a node that never answers keeps the namespace in Terminating.
    srv.kubectl("create", "-n", ns, "-f", "-",
                input=pod_manifest("stuck", spec_extra={"nodeName": "gone-node"}))
    srv.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest("loose"))
    srv.kubectl("delete", "namespace", ns, "--wait=false")

    assert jsonpath(srv, "namespace", ns, path="{.status.phase}") == "Terminating"
    assert jsonpath(srv, "namespace", ns, path="{.metadata.deletionTimestamp}") != ""
    row = srv.kubectl("get", "namespace", ns).stdout.splitlines()[1].split()
    assert row[:2] == [ns, "Terminating"]
    wait_until(lambda: is_gone(srv, "-n", ns, "pod", "loose"),
               message="the unscheduled pod to be deleted")
    assert jsonpath(srv, "-n", ns, "pod", "stuck", path="{.metadata.deletionTimestamp}") != ""

    refused = srv.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest("late"),
                          check=False)
    assert refused.returncode != 0
    # What the real NamespaceLifecycle admission answers:
    assert "Forbidden" in refused.stderr, refused.stderr
    assert f"unable to create new content in namespace {ns} because it is being terminated" \
        in refused.stderr, refused.stderr

    srv.kubectl("delete", "-n", ns, "pod", "stuck", "--grace-period=0", "--force")
    wait_until(lambda: is_gone(srv, "namespace", ns), message="the namespace to go away")


def test_pod_in_missing_namespace_is_not_found(shared_server):
    ns = unique("missing")
    result = shared_server.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest("p"),
                                   check=False)
    assert result.returncode != 0
    assert f'Error from server (NotFound): error when creating "STDIN": namespaces "{ns}" ' \
        "not found" in result.stderr, result.stderr
    result = shared_server.kubectl("run", "-n", ns, "r", "--image=nginx:1.27", check=False)
    assert result.returncode != 0 and f'namespaces "{ns}" not found' in result.stderr


# -- nodes and leases -----------------------------------------------------------------------

def test_get_nodes_shows_ready_status(shared_server):
    srv = shared_server
    ready, not_ready, cordoned = unique("n-ready"), unique("n-down"), unique("n-cordon")
    assert _create_json(srv, _node(ready)).stdout.strip() == f"node/{ready} created"
    _create_json(srv, _node(not_ready, ready="False"))
    _create_json(srv, _node(cordoned, unschedulable=True))

    lines = srv.kubectl("get", "nodes").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[ready][1:3] == ["Ready", "worker"] and rows[ready][4] == "v1.32.0"
    assert rows[not_ready][1] == "NotReady"
    assert rows[cordoned][1] == "Ready,SchedulingDisabled"

    wide = srv.kubectl("get", "node", ready, "-o", "wide").stdout.splitlines()
    assert re.split(r"\s{2,}", wide[0].strip()) == [
        "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
        "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    cells = re.split(r"\s{2,}", wide[1].strip())
    assert cells[5:] == ["10.9.8.7", "<none>", "Debian GNU/Linux 12", "6.1.0", "podling://0.1"]

    # Status given at creation is kept (as a kubelet registering itself relies on).
    node = get_json(srv, "node", ready)
    assert node["status"]["conditions"][0]["type"] == "Ready"
    assert node["status"]["capacity"]["cpu"] == "4"

    described = srv.kubectl("describe", "node", ready).stdout
    assert re.search(rf"^Name:\s+{ready}$", described, re.M), described
    assert re.search(r"^\s+Ready\s+True\s", described, re.M), described
    for name in (ready, not_ready, cordoned):
        srv.kubectl("delete", "node", name)


def test_leases_in_kube_node_lease(shared_server):
    srv = shared_server
    name = unique("lease-node")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                      "renewTime": "2025-01-01T00:00:00.000000Z"}}
    assert _create_json(srv, lease).stdout.strip() == \
        f"lease.coordination.k8s.io/{name} created"
    lines = srv.kubectl("get", "leases", "-n", "kube-node-lease").stdout.splitlines()
    assert lines[0].split() == ["NAME", "HOLDER", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[name][1] == name
    assert jsonpath(srv, "lease", name, "-n", "kube-node-lease",
                    path="{.spec.leaseDurationSeconds}") == "40"
    srv.kubectl("delete", "lease", name, "-n", "kube-node-lease")
    assert is_gone(srv, "lease", name, "-n", "kube-node-lease")


# -- events ---------------------------------------------------------------------------------

def _event(ns: str, name: str, pod: dict, reason: str, message: str,
           type_: str = "Warning") -> dict:
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns,
                           "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"],
                           "fieldPath": "spec.containers{main}"},
        "reason": reason, "message": message, "type": type_,
        "source": {"component": "e2e-test"},
        "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:00:00Z",
        "count": 1,
    }


def test_events_get_describe_and_field_selector(shared_server):
    srv = shared_server
    ns = new_namespace(srv, "ev")
    for name in ("ev-pod", "ev-other"):
        srv.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest(name))
    pod, other = get_json(srv, "-n", ns, "pod", "ev-pod"), get_json(srv, "-n", ns, "pod",
                                                                     "ev-other")
    out = _create_json(srv, _event(ns, "ev-pod.1", pod, "BackOffPulling",
                                   "pulling image failed hard")).stdout
    assert out.strip() == "event/ev-pod.1 created"
    _create_json(srv, _event(ns, "ev-other.1", other, "Noticed", "something else",
                             type_="Normal"))

    lines = srv.kubectl("get", "events", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [line for line in lines[1:]]
    mine = next(line for line in rows if "BackOffPulling" in line)
    assert re.search(r"\sWarning\s+BackOffPulling\s+pod/ev-pod\s+pulling image failed hard$",
                     mine), mine
    assert any(re.search(r"\sNormal\s+Noticed\s+pod/ev-other\s+something else$", line)
               for line in rows), rows

    selected = srv.kubectl("get", "events", "-n", ns, "--field-selector",
                           "involvedObject.name=ev-pod", "-o", "name").stdout.split()
    assert selected == ["event/ev-pod.1"]
    selected = srv.kubectl("get", "ev", "-n", ns, "--field-selector",
                           "involvedObject.kind=Pod,reason=Noticed", "-o", "name").stdout.split()
    assert selected == ["event/ev-other.1"]

    described = srv.kubectl("describe", "-n", ns, "pod", "ev-pod").stdout
    events = described[described.index("Events:"):]
    assert re.search(r"Warning\s+BackOffPulling\s+.*e2e-test\s+pulling image failed hard",
                     events), events
    assert "Noticed" not in events
