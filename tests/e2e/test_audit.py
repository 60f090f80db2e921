"""The audit log (--audit-policy-file, --audit-log-path) with the real kubectl: the events of
a request at each stage, the policy's levels and rules, the authorization decision, Pod
Security's audit level, users and impersonation, 401s, and the Audit-Id header.

One server per module, API only (pods stay Pending: nothing here needs them to run).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request

import pytest

from kubectl_util import new_namespace, unique, wait_until
from podling_e2e import REPO, start_server

pytestmark = pytest.mark.e2e

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/version", "/openapi*", "/api", "/apis*", "/api/v1"]
- level: None
  userGroups: ["system:nodes"]
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
- level: Request
  resources: [{group: "", resources: ["secrets"]}]
  omitStages: [RequestReceived]
- level: Metadata
"""


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    policy = base / "policy.yaml"
    policy.write_text(POLICY)
    log = base / "logs" / "audit.log"
    server = start_server(str(base / "data"), str(base / "home"), "--audit-policy-file",
                          str(policy), "--audit-log-path", str(log))
    yield server, str(log)
    server.kill()


def events(log: str, **match: str) -> list[dict]:
    """The log's events whose objectRef (or top-level key) has every ``match`` value."""
    with open(log) as f:
        found = [json.loads(line) for line in f]
    return [e for e in found if all((e.get("objectRef") or {}).get(k, e.get(k)) == v
                                    for k, v in match.items())]


def test_a_create_is_recorded_at_its_stages_with_its_decision(audited) -> None:
    server, log = audited
    ns = new_namespace(server, "aud")
    server.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=k=v")
    [complete] = wait_until(lambda: events(log, namespace=ns, name="cfg"),
                            message="the configmap's ResponseComplete")
    received, complete = events(log, auditID=complete["auditID"])
    assert received["stage"] == "RequestReceived" and complete["stage"] == "ResponseComplete"
    assert received["auditID"] == complete["auditID"]
    assert list(complete)[:7] == ["kind", "apiVersion", "level", "auditID", "stage",
                                  "requestURI", "verb"]
    assert (complete["level"], complete["verb"], complete["user"]["username"]) == (
        "RequestResponse", "create", "admin")
    assert received["objectRef"] == {"resource": "configmaps", "namespace": ns,
                                     "apiVersion": "v1"}
    assert complete["objectRef"] == {**received["objectRef"], "name": "cfg"}
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}
    assert complete["requestObject"]["data"] == {"k": "v"}
    assert complete["responseObject"]["metadata"]["uid"]
    assert complete["annotations"] == {"authorization.k8s.io/decision": "allow",
                                       "authorization.k8s.io/reason": ""}
    assert "annotations" not in received and "responseStatus" not in received
    assert received["stageTimestamp"] == received["requestReceivedTimestamp"]
    assert complete["userAgent"].startswith("kubectl/")
    assert complete["sourceIPs"] == ["127.0.0.1"]


def test_levels_and_omitted_stages_follow_the_policy(audited) -> None:
    server, log = audited
    ns = new_namespace(server, "aud")
    server.kubectl("create", "secret", "generic", "s", "-n", ns, "--from-literal=k=v")
    [secret] = wait_until(lambda: events(log, namespace=ns, resource="secrets"),
                          message="the secret's event")
    assert (secret["stage"], secret["level"]) == ("ResponseComplete", "Request")
    assert "requestObject" in secret and "responseObject" not in secret
    server.kubectl("get", "--raw", "/healthz")
    server.kubectl("get", "serviceaccounts", "-n", ns)
    listed = wait_until(lambda: events(log, namespace=ns, resource="serviceaccounts",
                                       verb="list"), message="the list's events")
    assert {(e["level"], e["stage"]) for e in listed} == {
        ("Metadata", "RequestReceived"), ("Metadata", "ResponseComplete")}
    assert all("responseObject" not in e and "requestObject" not in e for e in listed)
    assert not events(log, requestURI="/healthz")


def test_pod_security_audit_level_and_refusals_are_annotated(audited, tmp_path) -> None:
    server, log = audited
    ns = new_namespace(server, "aud")
    server.kubectl("label", "ns", ns, "pod-security.kubernetes.io/audit=restricted")
    server.kubectl("run", "web", "-n", ns, "--image=busybox", "--", "sleep", "1")
    [created] = wait_until(lambda: [e for e in events(log, namespace=ns, resource="pods",
                                                      stage="ResponseComplete")
                                    if e["verb"] == "create"], message="the pod's event")
    assert created["annotations"] == {
        "authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "",
        "pod-security.kubernetes.io/audit-violations": (
            'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
            '(container "web" must set securityContext.allowPrivilegeEscalation=false), '
            'unrestricted capabilities (container "web" must set '
            'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
            'container "web" must set securityContext.runAsNonRoot=true), seccompProfile '
            '(pod or container "web" must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")'),
        "pod-security.kubernetes.io/enforce-policy": "privileged:latest"}
    user = unique("eve")
    kubeconfig = str(tmp_path / "eve.kubeconfig")
    subprocess.run([sys.executable, "-m", "podling", "token", "create", user,
                    "--write-kubeconfig", kubeconfig, "--data-dir", server.data_dir],
                   cwd=REPO, check=True, capture_output=True, timeout=60)
    server.kubectl("--kubeconfig", kubeconfig, "delete", "pod", "web", "-n", ns, check=False)
    [refused] = wait_until(lambda: [e for e in events(log, namespace=ns, resource="pods",
                                                      stage="ResponseComplete")
                                    if e["verb"] == "delete"], message="the refusal's event")
    assert refused["user"]["username"] == user
    assert refused["annotations"] == {"authorization.k8s.io/decision": "forbid",
                                      "authorization.k8s.io/reason": ""}
    assert refused["responseStatus"] == {
        "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": f'pods "web" is forbidden: User "{user}" cannot delete resource "pods" '
                   f'in API group "" in the namespace "{ns}"',
        "details": {"name": "web", "kind": "pods"}}


def test_impersonation_a_watch_and_a_401(audited) -> None:
    server, log = audited
    ns = new_namespace(server, "aud")
    user = unique("ivy")
    server.kubectl("get", "pods", "-n", ns, f"--as={user}", check=False)
    [asked] = wait_until(lambda: [e for e in events(log, namespace=ns, resource="pods",
                                                    stage="ResponseComplete")],
                         message="the impersonated list's event")
    assert asked["user"]["username"] == "admin"
    assert asked["impersonatedUser"] == {"username": user, "groups": ["system:authenticated"]}
    assert list(asked).index("impersonatedUser") == list(asked).index("user") + 1
    server.kubectl("get", "events", "-n", ns, "--watch", "--request-timeout=1s", check=False)
    watched = wait_until(lambda: events(log, namespace=ns, resource="events", verb="watch"),
                         message="the watch's events")
    assert [e["stage"] for e in watched][:2] == ["RequestReceived", "ResponseStarted"]
    assert watched[1]["responseStatus"] == {"metadata": {}, "code": 200}
    denied = server.kubectl("get", "configmaps", "-n", ns, "--token=nobody", check=False)
    assert "Unauthorized" in denied.stderr
    [unknown] = wait_until(lambda: [e for e in events(log, namespace=ns, resource="configmaps")
                                    if e["user"] == {}], message="the 401's event")
    assert unknown["stage"] == "ResponseStarted"
    assert unknown["responseStatus"] == {"metadata": {}, "status": "Failure",
                                         "message": "Unauthorized", "reason": "Unauthorized",
                                         "code": 401}


def test_every_response_carries_its_audit_id(audited) -> None:
    server, log = audited
    context = ssl.create_default_context(cafile=server.ca_file)
    with open(os.path.join(server.data_dir, "server", "admin.token")) as f:
        token = f.read().strip()
    request = urllib.request.Request(server.url + "/api/v1/namespaces/default/configmaps",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Audit-ID": "mine-123"})
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        assert answer.headers["Audit-Id"] == "mine-123"
    assert {e["auditID"] for e in events(log, namespace="default", resource="configmaps",
                                         verb="list")} == {"mine-123"}
    with urllib.request.urlopen(server.url + "/healthz", context=context, timeout=10) as answer:
        assert len(answer.headers["Audit-Id"]) == 36  # a fresh UUID, also when not audited


def test_a_bad_policy_stops_the_server_with_kubernetes_message(tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
    done = subprocess.run([sys.executable, "-m", "podling", "server", "--disable-agent",
                           "--data-dir", str(tmp_path / "data"), "--port", "0",
                           "--audit-policy-file", str(policy), "--audit-log-path",
                           str(tmp_path / "audit.log")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == (
        'podling server: loading audit policy file: rules[0].level: Unsupported value: '
        '"Loud": supported values: "None", "Metadata", "Request", "RequestResponse": from '
        f'file {policy}')
