"""ServiceAccounts, their tokens and the ServiceAccount admission with the real kubectl and
the Python client (API only, no agent: pods stay Pending, which is all admission needs).

One server per module; names are unique per test.
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from kubernetes import client

from kubectl_util import get_json, new_namespace, unique, wait_until
from podling_e2e import start_server

from podling.apiserver.satokens import ISSUER, Ref, TokenSigner, claims

pytestmark = pytest.mark.e2e

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
UNAUTHORIZED = "error: You must be logged in to the server (Unauthorized)"


def sa_forbidden(ns: str, verb: str, resource: str, name: str = "default") -> str:
    return (f'Error from server (Forbidden): {resource} is forbidden: User '
            f'"system:serviceaccount:{ns}:{name}" cannot {verb} resource "{resource}" in API '
            f'group "" in the namespace "{ns}"')


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def pod_json(name: str, ns: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name,
                                                                       "namespace": ns},
                       "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec}})


def default_account(server, ns: str) -> dict:
    wait_until(lambda: server.kubectl("get", "sa", "default", "-n", ns, check=False)
               .returncode == 0, message=f"the default ServiceAccount of {ns}")
    return get_json(server, "sa", "default", "-n", ns)


def let_default_get(server, ns: str, pod: str) -> None:
    """RBAC: the namespace's default ServiceAccount may get ``pod`` and nothing else."""
    server.kubectl("create", "role", "get-" + pod, "-n", ns, "--verb=get", "--resource=pods",
                   "--resource-name=" + pod)
    server.kubectl("create", "rolebinding", "get-" + pod, "-n", ns, "--role=get-" + pod,
                   f"--serviceaccount={ns}:default")


# --- the controllers --------------------------------------------------------------------------

def test_new_namespace_gets_default_account_and_root_ca(shared_server) -> None:
    ns = new_namespace(shared_server, "sa")
    account = default_account(shared_server, ns)
    out = shared_server.kubectl("get", "sa", "-n", ns).stdout.splitlines()
    assert out[0].split() == ["NAME", "SECRETS", "AGE"]
    assert out[1].split()[:2] == ["default", "0"]
    described = shared_server.kubectl("describe", "sa", "default", "-n", ns).stdout
    assert f"Namespace:           {ns}" in described and "Tokens:              <none>" in described
    with open(shared_server.ca_file) as f:
        ca = f.read()
    cm = wait_until(lambda: shared_server.kubectl("get", "cm", "kube-root-ca.crt", "-n", ns,
                                                  "-o", "json", check=False).stdout)
    cm = json.loads(str(cm))
    assert cm["data"] == {"ca.crt": ca}
    assert cm["metadata"]["annotations"]["kubernetes.io/description"].startswith(
        "Contains a CA bundle that can be used to verify the kube-apiserver")
    # deleted or changed: put back
    shared_server.kubectl("delete", "sa", "default", "-n", ns)
    wait_until(lambda: default_account(shared_server, ns)["metadata"]["uid"] !=
               account["metadata"]["uid"], message="a new default ServiceAccount")
    shared_server.kubectl("patch", "cm", "kube-root-ca.crt", "-n", ns, "--type=merge", "-p",
                          '{"data": {"ca.crt": "tampered"}}')
    wait_until(lambda: get_json(shared_server, "cm", "kube-root-ca.crt", "-n", ns)["data"]
               == {"ca.crt": ca}, message="the CA restored")


def test_create_and_describe_serviceaccount(shared_server) -> None:
    name = unique("builder")
    assert shared_server.kubectl("create", "serviceaccount", name).stdout.strip() == \
        f"serviceaccount/{name} created"
    account = get_json(shared_server, "sa", name)
    assert "generateName" not in account["metadata"]
    described = shared_server.kubectl("describe", "sa", name).stdout
    assert f"Name:                {name}" in described
    bad = shared_server.kubectl("create", "sa", "Bad_Name", check=False)
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in \
        bad.stderr


# --- tokens -----------------------------------------------------------------------------------

def test_token_reads_discovery_and_nothing_else(shared_server) -> None:
    ns = new_namespace(shared_server, "tok")
    account = default_account(shared_server, ns)
    token = shared_server.kubectl("create", "token", "default", "-n", ns).stdout.strip()
    payload = claims_of(token)
    assert payload["sub"] == f"system:serviceaccount:{ns}:default"
    assert (payload["iss"], payload["aud"]) == (ISSUER, [ISSUER])
    assert payload["exp"] - payload["iat"] == 3600
    assert payload["kubernetes.io"]["serviceaccount"] == {"name": "default",
                                                         "uid": account["metadata"]["uid"]}
    whoami = json.loads(shared_server.kubectl("--token", token, "auth", "whoami", "-o",
                                              "json").stdout)["status"]["userInfo"]
    assert (whoami["username"], whoami["uid"], whoami["groups"]) == (
        f"system:serviceaccount:{ns}:default", account["metadata"]["uid"],
        ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"])
    assert whoami["extra"]["authentication.kubernetes.io/credential-id"] == \
        [f"JTI={payload['jti']}"]
    api = json.loads(shared_server.kubectl("--token", token, "get", "--raw", "/api").stdout)
    assert api["kind"] == "APIVersions"
    shared_server.kubectl("--token", token, "get", "--raw", "/apis")
    shared_server.kubectl("--token", token, "get", "--raw", "/version")
    refused = shared_server.kubectl("--token", token, "get", "secrets", "-n", ns, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == sa_forbidden(ns, "list", "secrets")
    can_i = shared_server.kubectl("--token", token, "auth", "can-i", "list", "secrets", "-n", ns,
                                  check=False)
    assert can_i.stdout.strip() == "no"
    # the account deleted: the token is worth nothing
    shared_server.kubectl("delete", "sa", "default", "-n", ns)
    gone = shared_server.kubectl("--token", token, "get", "--raw", "/api", check=False)
    assert gone.stderr.strip() == UNAUTHORIZED


def test_expired_garbled_and_foreign_tokens_are_unauthorized(shared_server, tmp_path) -> None:
    ns = new_namespace(shared_server, "bad")
    uid = default_account(shared_server, ns)["metadata"]["uid"]
    own = TokenSigner.load_or_create(os.path.join(shared_server.data_dir, "server"))
    ref = Ref("default", uid)
    expired = own.sign(claims(ns, ref, audiences=[ISSUER], expiration_seconds=600,
                              now=time.time() - 700))
    foreign = TokenSigner.load_or_create(str(tmp_path)).sign(
        claims(ns, ref, audiences=[ISSUER], expiration_seconds=600))
    other_audience = own.sign(claims(ns, ref, audiences=["vault"], expiration_seconds=600))
    valid = own.sign(claims(ns, ref, audiences=[ISSUER], expiration_seconds=600))
    shared_server.kubectl("--token", valid, "get", "--raw", "/api")
    for token in (expired, foreign, other_audience, valid[:-6] + "AAAAAA", "garbled"):
        result = shared_server.kubectl("--token", token, "get", "--raw", "/api", check=False)
        assert result.stderr.strip() == UNAUTHORIZED, token


def test_token_request_limits(shared_server) -> None:
    short = shared_server.kubectl("create", "token", "default", "--duration=1m", check=False)
    assert short.stderr.strip() == (
        'error: failed to create token: TokenRequest.authentication.k8s.io "" is invalid: '
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 "
        "minutes")
    missing = shared_server.kubectl("create", "token", "nobody", check=False)
    assert missing.stderr.strip() == \
        'error: failed to create token: serviceaccounts "nobody" not found'
    token = shared_server.kubectl("create", "token", "default", "--duration=2h",
                                  "--audience=vault").stdout.strip()
    payload = claims_of(token)
    assert (payload["aud"], payload["exp"] - payload["iat"]) == (["vault"], 7200)
    # a token for another audience does not log in here
    result = shared_server.kubectl("--token", token, "get", "--raw", "/api", check=False)
    assert result.stderr.strip() == UNAUTHORIZED


def test_pod_bound_token_with_a_role_gets_its_pod_until_the_pod_is_gone(shared_server) -> None:
    ns = new_namespace(shared_server, "bound")
    default_account(shared_server, ns)
    shared_server.kubectl("create", "-f", "-", input=pod_json("web", ns))
    shared_server.kubectl("create", "-f", "-", input=pod_json("other", ns))
    let_default_get(shared_server, ns, "web")
    uid = get_json(shared_server, "pod", "web", "-n", ns)["metadata"]["uid"]
    token = shared_server.kubectl("create", "token", "default", "-n", ns,
                                  "--bound-object-kind=Pod", "--bound-object-name=web",
                                  f"--bound-object-uid={uid}").stdout.strip()
    assert claims_of(token)["kubernetes.io"]["pod"] == {"name": "web", "uid": uid}
    extra = json.loads(shared_server.kubectl("--token", token, "auth", "whoami", "-o", "json")
                       .stdout)["status"]["userInfo"]["extra"]
    assert (extra["authentication.kubernetes.io/pod-name"],
            extra["authentication.kubernetes.io/pod-uid"]) == (["web"], [uid])
    mine = shared_server.kubectl("--token", token, "get", "pod", "web", "-n", ns, "-o", "name")
    assert mine.stdout.strip() == "pod/web"
    other = shared_server.kubectl("--token", token, "get", "pod", "other", "-n", ns,
                                  check=False)
    assert other.stderr.strip() == (
        f'Error from server (Forbidden): pods "other" is forbidden: User '
        f'"system:serviceaccount:{ns}:default" cannot get resource "pods" in API group "" in '
        f'the namespace "{ns}"')
    assert shared_server.kubectl("--token", token, "auth", "can-i", "get", "pod/web", "-n",
                                 ns).stdout.strip() == "yes"
    stale = shared_server.kubectl("create", "token", "default", "-n", ns,
                                  "--bound-object-kind=Pod", "--bound-object-name=web",
                                  "--bound-object-uid=stale", check=False)
    assert stale.stderr.strip() == (
        'error: failed to create token: Operation cannot be fulfilled on Pod "web": the UID in '
        "the bound object reference (stale) does not match the UID in record. The object might "
        "have been deleted and then recreated")
    shared_server.kubectl("delete", "pod", "web", "-n", ns, "--grace-period=0", "--force")
    result = shared_server.kubectl("--token", token, "get", "--raw", "/api", check=False)
    assert result.stderr.strip() == UNAUTHORIZED


# --- admission --------------------------------------------------------------------------------

def test_pod_gets_the_projected_token_volume(shared_server) -> None:
    ns = new_namespace(shared_server, "adm")
    default_account(shared_server, ns)
    spec = {"initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"},
                           {"name": "b", "image": "busybox", "volumeMounts": [
                               {"name": "own", "mountPath": MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}
    shared_server.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
        "spec": spec}))
    pod = get_json(shared_server, "pod", "p", "-n", ns)["spec"]
    assert (pod["serviceAccountName"], pod["serviceAccount"]) == ("default", "default")
    volume = pod["volumes"][1]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                              "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    ours = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert pod["initContainers"][0]["volumeMounts"] == [ours]
    assert pod["containers"][0]["volumeMounts"] == [ours]
    assert pod["containers"][1]["volumeMounts"] == [{"name": "own", "mountPath": MOUNT_PATH}]


def test_automount_false_on_pod_or_account_mounts_nothing(shared_server) -> None:
    ns = new_namespace(shared_server, "noauto")
    default_account(shared_server, ns)
    shared_server.kubectl("create", "-f", "-", input=pod_json(
        "p", ns, automountServiceAccountToken=False))
    shared_server.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "quiet", "namespace": ns}, "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "registry"}]}))
    shared_server.kubectl("create", "-f", "-", input=pod_json("q", ns, serviceAccountName="quiet"))
    shared_server.kubectl("create", "-f", "-", input=pod_json(
        "r", ns, serviceAccountName="quiet", automountServiceAccountToken=True))
    for name in ("p", "q"):
        spec = get_json(shared_server, "pod", name, "-n", ns)["spec"]
        assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0], name
    q = get_json(shared_server, "pod", "q", "-n", ns)["spec"]
    assert q["imagePullSecrets"] == [{"name": "registry"}]
    r = get_json(shared_server, "pod", "r", "-n", ns)["spec"]  # the pod's true wins
    assert r["volumes"][0]["name"].startswith("kube-api-access-")


def test_pod_with_a_missing_account_is_refused(shared_server) -> None:
    ns = new_namespace(shared_server, "miss")
    default_account(shared_server, ns)
    result = shared_server.kubectl("create", "-f", "-", check=False,
                                   input=pod_json("x", ns, serviceAccountName="ghost"))
    assert result.stderr.strip() == (
        f'Error from server (Forbidden): error when creating "STDIN": pods "x" is forbidden: '
        f'error looking up service account {ns}/ghost: serviceaccount "ghost" not found')
    deprecated = shared_server.kubectl("create", "-f", "-", check=False,
                                       input=pod_json("y", ns, serviceAccount="ghost"))
    assert 'serviceaccount "ghost" not found' in deprecated.stderr


# --- the official Python client ---------------------------------------------------------------

def test_python_client_token_request_and_bound_read(shared_server) -> None:
    ns = new_namespace(shared_server, "py")
    default_account(shared_server, ns)
    with shared_server.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        names = [a.metadata.name for a in core.list_namespaced_service_account(ns).items]
        assert names == ["default"]
        pod = core.create_namespaced_pod(ns, client.V1Pod(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))
        assert pod.spec.service_account_name == "default"
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=1200, bound_object_ref=client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name="web", uid=pod.metadata.uid)))
        answer = core.create_namespaced_service_account_token("default", ns, request)
        assert answer.spec.audiences == [ISSUER]
        assert answer.status.token and answer.status.expiration_timestamp
        with pytest.raises(client.ApiException) as invalid:
            core.create_namespaced_service_account_token("default", ns,
                                                         client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=599)))
        assert invalid.value.status == 422
    let_default_get(shared_server, ns, "web")
    config = client.Configuration()
    config.host, config.ssl_ca_cert = shared_server.url, shared_server.ca_file
    config.api_key = {"authorization": "Bearer " + answer.status.token}
    with client.ApiClient(config) as as_account:
        core = client.CoreV1Api(as_account)
        assert core.read_namespaced_pod("web", ns).metadata.uid == pod.metadata.uid
        with pytest.raises(client.ApiException) as refused:
            core.list_namespaced_secret(ns)
        assert refused.value.status == 403


def test_tokens_and_accounts_survive_a_restart(tmp_path) -> None:
    """The signing key lives in the data dir: a token issued before a restart still works
    after it, and the default ServiceAccount keeps its uid."""
    data, home = str(tmp_path / "data"), str(tmp_path / "home")
    first = start_server(data, home)
    try:
        uid = default_account(first, "default")["metadata"]["uid"]
        token = first.kubectl("create", "token", "default").stdout.strip()
    finally:
        first.kill()
    second = start_server(data, home)
    try:
        assert default_account(second, "default")["metadata"]["uid"] == uid
        whoami = second.kubectl("--token", token, "auth", "whoami", "-o", "json").stdout
        assert json.loads(whoami)["status"]["userInfo"]["username"] == \
            "system:serviceaccount:default:default"
    finally:
        second.kill()
