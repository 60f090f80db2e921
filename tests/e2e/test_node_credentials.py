"""Node credentials through the REST API of a real `podling server` (no agents needed).

Two nodes join with the join token (the exchange at /podling/v1/nodetokens) and then use
their node tokens directly: each may read the pods bound to it, write their status and its
own Node and Lease — not the other node's. ``kubectl auth can-i`` with a node kubeconfig
answers the same way.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml
from builders import make_node, make_pod

from podling.util import jointoken

pytestmark = pytest.mark.e2e
A, B = "node-a", "node-b"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


class Http:
    """Minimal HTTPS JSON calls with one bearer token."""

    def __init__(self, server, token: str) -> None:
        self.url, self.token = server.url, token
        self.tls = ssl.create_default_context(cafile=server.ca_file)

    def __call__(self, method: str, path: str, body: Any = None,
                 content_type: str = "application/json") -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type,
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


MERGE = "application/merge-patch+json"


def _join(server, node: str) -> Http:
    with open(os.path.join(server.data_dir, "server", "node-token")) as f:
        join = jointoken.parse(f.read())
    assert join is not None
    code, issued = Http(server, join.secret)("POST", "/podling/v1/nodetokens",
                                              {"nodeName": node})
    assert code == 201, issued
    return Http(server, issued["token"])


def _lease(name: str) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}}


@pytest.fixture(scope="module")
def cluster(shared_server):
    """Two joined nodes, each with its Node and Lease, and one pod bound to each."""
    admin = Http(shared_server, shared_server.token)
    a, b = _join(shared_server, A), _join(shared_server, B)
    for http, name in ((a, A), (b, B)):
        assert http("POST", "/api/v1/nodes", make_node(name).bare().build())[0] == 201
        assert http("POST", LEASES, _lease(name))[0] == 201
        assert admin("POST", "/api/v1/namespaces/default/pods",
                     make_pod(f"pod-{name}", None).bare().node(name).build())[0] == 201
    return shared_server, a, b


def test_join_token_file(shared_server) -> None:
    path = os.path.join(shared_server.data_dir, "server", "node-token")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert open(path).read().startswith("K10")


def test_node_writes_only_its_own_node(cluster) -> None:
    _, a, _ = cluster
    assert a("PATCH", f"/api/v1/nodes/{A}", {"metadata": {"labels": {"x": "1"}}}, MERGE)[0] \
        == 200
    assert a("PATCH", f"/api/v1/nodes/{A}/status", {"status": {"phase": "Running"}},
             MERGE)[0] == 200
    code, status = a("PATCH", f"/api/v1/nodes/{B}", {"metadata": {"labels": {"x": "1"}}}, MERGE)
    assert code == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (f'nodes "{B}" is forbidden: User "system:node:{A}" cannot '
                                 'patch resource "nodes" in API group "" at the cluster scope')
    assert a("PATCH", f"/api/v1/nodes/{B}/status", {"status": {}}, MERGE)[0] == 403
    assert a("DELETE", f"/api/v1/nodes/{B}")[0] == 403
    code, status = a("POST", "/api/v1/nodes", make_node("node-c").bare().build())
    assert code == 403 and "is not allowed to modify node" in status["message"]
    assert a("GET", f"/api/v1/nodes/{B}")[0] == 200  # reads of nodes are allowed
    assert a("GET", "/api/v1/nodes")[0] == 200


def test_node_renews_only_its_own_lease(cluster) -> None:
    _, a, _ = cluster
    code, lease = a("GET", f"{LEASES}/{A}")
    assert code == 200
    lease["spec"]["renewTime"] = "2025-01-01T00:00:00.000000Z"
    assert a("PUT", f"{LEASES}/{A}", lease)[0] == 200
    assert a("GET", f"{LEASES}/{B}")[0] == 403
    code, status = a("PATCH", f"{LEASES}/{B}", {"spec": {"holderIdentity": A}}, MERGE)
    assert code == 403
    assert status["message"].startswith(f'leases.coordination.k8s.io "{B}" is forbidden: User '
                                        f'"system:node:{A}" cannot patch resource "leases"')
    assert a("POST", LEASES, _lease("node-c"))[0] == 403


def test_node_reads_only_pods_bound_to_it(cluster) -> None:
    _, a, _ = cluster
    code, pods = a("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{A}")
    assert code == 200
    assert [p["metadata"]["name"] for p in pods["items"]] == [f"pod-{A}"]
    assert a("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{B}")[0] == 403
    assert a("GET", "/api/v1/pods")[0] == 403
    assert a("GET", f"/api/v1/namespaces/default/pods/pod-{A}")[0] == 200
    code, status = a("GET", f"/api/v1/namespaces/default/pods/pod-{B}")
    assert code == 403
    assert status["message"] == (f'pods "pod-{B}" is forbidden: User "system:node:{A}" cannot '
                                 'get resource "pods" in API group "" in the namespace '
                                 '"default"')
    assert a("GET", "/api/v1/namespaces/default/pods/absent")[0] == 404
    sneaky = make_pod("sneaky", None).bare().node(A).build()
    assert a("POST", "/api/v1/namespaces/default/pods", sneaky)[0] == 403
    assert a("GET", "/api/v1/namespaces")[0] == 403


def test_node_writes_status_of_its_pods_only(cluster) -> None:
    _, a, b = cluster
    patch = {"status": {"phase": "Pending", "message": "seen by the node"}}
    assert a("PATCH", f"/api/v1/namespaces/default/pods/pod-{A}/status", patch, MERGE)[0] == 200
    assert a("PATCH", f"/api/v1/namespaces/default/pods/pod-{B}/status", patch, MERGE)[0] == 403
    assert a("PATCH", f"/api/v1/namespaces/default/pods/pod-{A}",
             {"metadata": {"labels": {"x": "1"}}}, MERGE)[0] == 403
    code, status = a("DELETE", f"/api/v1/namespaces/default/pods/pod-{B}")
    assert code == 403
    assert status["message"] == (f'pods "pod-{B}" is forbidden: User "system:node:{A}" cannot '
                                 'delete resource "pods" in API group "" in the namespace '
                                 '"default"')
    assert b("GET", f"/api/v1/namespaces/default/pods/pod-{B}")[0] == 200


def test_node_records_events(cluster) -> None:
    _, a, _ = cluster
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e.1"},
             "involvedObject": {"kind": "Node", "name": A}, "reason": "Starting",
             "message": "Starting kubelet.", "type": "Normal", "source": {"component": "kubelet"}}
    assert a("POST", "/api/v1/namespaces/default/events", event)[0] == 201
    assert a("DELETE", "/api/v1/namespaces/default/events/e.1")[0] == 403


def test_node_reads_only_the_secrets_and_configmaps_of_its_pods(cluster) -> None:
    server, a, b = cluster
    admin = Http(server, server.token)
    ns = "/api/v1/namespaces/default"
    assert admin("POST", f"{ns}/secrets", {"metadata": {"name": f"sec-{A}"},
                                           "stringData": {"k": "v"}})[0] == 201
    assert admin("POST", f"{ns}/configmaps", {"metadata": {"name": f"cm-{A}"},
                                              "data": {"k": "v"}})[0] == 201
    pod = make_pod(f"uses-{A}", None).bare().node(A).build()
    pod["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": f"sec-{A}"}},
                              {"name": "c", "configMap": {"name": f"cm-{A}"}}]
    assert admin("POST", f"{ns}/pods", pod)[0] == 201
    assert a("GET", f"{ns}/secrets/sec-{A}")[0] == 200
    assert a("GET", f"{ns}/configmaps/cm-{A}")[0] == 200
    assert a("GET", f"{ns}/secrets?fieldSelector=metadata.name%3Dsec-{A}")[0] == 200
    assert a("GET", f"{ns}/secrets")[0] == 403
    code, status = b("GET", f"{ns}/secrets/sec-{A}")
    assert code == 403 and status["message"] == (
        f'secrets "sec-{A}" is forbidden: User "system:node:{B}" cannot get resource "secrets" '
        f'in API group "" in the namespace "default": no relationship found between node '
        f"'{B}' and this object")
    answer = _node_kubectl(server, a, "auth", "can-i", "get", f"secrets/sec-{A}")
    assert answer.stdout.strip() == "yes", answer.stderr
    assert _node_kubectl(server, b, "auth", "can-i", "get", f"secrets/sec-{A}").stdout.strip() \
        == f"no - no relationship found between node '{B}' and this object"


def _node_kubectl(server, http: Http, *args: str) -> subprocess.CompletedProcess:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "node",
              "clusters": [{"name": "c", "cluster": {"server": server.url,
                                                     "certificate-authority": server.ca_file}}],
              "users": [{"name": "node", "user": {"token": http.token}}],
              "contexts": [{"name": "node", "context": {"cluster": "c", "user": "node",
                                                        "namespace": "default"}}]}
    path = os.path.join(server.home, f"node-{http.token[:8]}.kubeconfig")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    env = dict(os.environ, HOME=server.home, KUBECONFIG=path)
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize("args, answer", [
    (("patch", f"nodes/{A}"), "yes"),
    (("patch", f"nodes/{A}", "--subresource=status"), "yes"),
    (("patch", f"nodes/{B}"), "no"),
    (("update", f"leases/{A}", "-n", "kube-node-lease"), "yes"),
    (("update", f"leases/{B}", "-n", "kube-node-lease"), "no"),
    (("get", f"pods/pod-{A}"), "yes"),
    (("get", f"pods/pod-{B}"), "no"),
    (("delete", f"pods/pod-{B}"), "no"),
    (("patch", f"pods/pod-{A}", "--subresource=status"), "yes"),
    (("list", "pods"), "no"),
    (("create", "events"), "yes"),
    (("list", "nodes"), "yes"),
    (("create", "secrets"), "no - can only read resources of this type"),
])
def test_kubectl_auth_can_i_as_a_node(cluster, args: tuple[str, ...], answer: str) -> None:
    server, a, _ = cluster
    result = _node_kubectl(server, a, "auth", "can-i", *args)
    assert result.stdout.strip() == answer, result.stderr
    assert result.returncode == (0 if answer == "yes" else 1)


def test_kubectl_get_pods_as_a_node_is_forbidden(cluster) -> None:
    server, a, _ = cluster
    result = _node_kubectl(server, a, "get", "pods")
    assert result.returncode != 0
    assert (f'Error from server (Forbidden): pods is forbidden: User "system:node:{A}" cannot '
            'list resource "pods" in API group "" in the namespace "default"') in result.stderr


def test_node_creates_tokens_only_bound_to_its_pods(cluster) -> None:
    """A node's TokenRequests (what the agent posts for projected tokens): only for the
    ServiceAccount of a pod bound to it, bound to that pod with its uid."""
    server, a, b = cluster
    admin = Http(server, server.token)
    ns = "/api/v1/namespaces/default"
    _, pod = admin("GET", f"{ns}/pods/pod-{A}")
    account = pod["spec"]["serviceAccountName"]
    assert account == "default"
    ref = {"apiVersion": "v1", "kind": "Pod", "name": f"pod-{A}", "uid": pod["metadata"]["uid"]}

    def token(http: Http, bound: dict | None) -> tuple[int, dict]:
        spec = {"expirationSeconds": 3607, **({"boundObjectRef": bound} if bound else {})}
        return http("POST", f"{ns}/serviceaccounts/{account}/token",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": spec})

    code, answer = token(a, ref)
    assert code == 201, answer
    as_pod = Http(server, answer["status"]["token"])
    assert as_pod("GET", "/api")[0] == 200  # it authenticates; RBAC grants it nothing more
    assert as_pod("GET", f"{ns}/pods/pod-{A}")[0] == 403
    assert a("GET", f"{ns}/serviceaccounts/{account}")[0] == 200
    for http, bound, message in [
        (a, None, "node requested token not bound to a pod"),
        (a, {**ref, "uid": ""}, "node requested token with a pod binding without a uid"),
    ]:
        code, status = token(http, bound)
        assert (code, status["message"]) == (
            403, f'serviceaccounts "{account}" is forbidden: {message}')
    # B's own pod runs as "default" too, so the authorizer lets B ask; NodeRestriction refuses
    code, status = token(b, ref)
    assert code == 403
    assert status["message"] == (
        f'serviceaccounts "{account}" is forbidden: node requested token bound to a pod '
        "scheduled on a different node")
    assert admin("POST", f"{ns}/serviceaccounts", {"metadata": {"name": "lonely"}})[0] == 201
    code, status = a("POST", f"{ns}/serviceaccounts/lonely/token", {"spec": {}})
    assert (code, status["message"]) == (403, (
        f'serviceaccounts "lonely" is forbidden: User "system:node:{A}" cannot create resource '
        f'"serviceaccounts/token" in API group "" in the namespace "default": no relationship '
        f"found between node '{A}' and this object"))
