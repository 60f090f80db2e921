"""ServiceAccounts in the registry, the ServiceAccount admission of pods, and TokenRequest
with the authentication of its tokens, over HTTP against an in-process server."""

from __future__ import annotations

import time

import pytest
from builders import make_pod

from podling.api import tables
from podling.api.errors import ApiError
from podling.api.resources import PODS, ROLE_BINDINGS, ROLES, SECRETS, SERVICE_ACCOUNTS
from podling.apiserver.nodeauth import node_user
from podling.apiserver.registry.serviceaccounts import ServiceAccountAdmission
from podling.apiserver.registry.strategies import registry_stores
from podling.apiserver.satokens import ISSUER, Ref, TokenSigner, claims
from podling.apiserver.server import RunningServer, ServerConfig, start
from podling.apiserver.tokenrequest import TokenRequests
from podling.client import ApiClient, ClientConfig
from podling.storage.memory import MemoryStore

SA_BODY = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}


def sa(name: str = "default", **fields: object) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}, **fields}


# -- registry and admission ----------------------------------------------------------------

async def test_secret_references_keep_only_their_names(stores: dict) -> None:
    created = await stores["serviceaccounts"].create("default", sa(secrets=[
        {"name": "s1", "namespace": "x", "uid": "u", "kind": "Secret"}]))
    assert created["secrets"] == [{"name": "s1"}]
    row = tables.table("serviceaccounts", [created], now=tables.parse_time(
        created["metadata"]["creationTimestamp"]))
    assert [c["name"] for c in row["columnDefinitions"]] == ["Name", "Secrets", "Age"]
    assert row["rows"][0]["cells"][:2] == ["default", 1]


async def test_enforce_mountable_secrets_annotation_warns(stores: dict) -> None:
    strategy = stores["serviceaccounts"].strategy
    created = await stores["serviceaccounts"].create("default", sa(metadata={
        "name": "a", "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}}))
    assert strategy.warnings(created) == [
        "metadata.annotations[kubernetes.io/enforce-mountable-secrets]: deprecated in v1.32+; "
        "prefer separate namespaces to isolate access to mounted secrets"]


@pytest.mark.parametrize("name, message", [
    ("Bad_Name", 'ServiceAccount "Bad_Name" is invalid: metadata.name: Invalid value: '
                 '"Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
                 "alphanumeric characters, '-' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
])
async def test_names_are_dns_subdomains(stores: dict, name: str, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        await stores["serviceaccounts"].create("default", sa(name))
    assert (refused.value.code, refused.value.message) == (422, message)


@pytest.fixture
def admitting() -> dict:
    stores = registry_stores(MemoryStore(), service_account_admission=True)
    admission = stores["pods"].strategy.admission
    assert isinstance(admission, ServiceAccountAdmission)
    admission.retry_interval = lambda: 0.001
    admission.generate = lambda: "xyz12"
    return stores


async def test_admitted_pod_runs_as_default_with_the_token_volume(admitting: dict) -> None:
    await admitting["serviceaccounts"].create("default", sa())
    pod = await admitting["pods"].create("default", make_pod("p").bare().build())
    spec = pod["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")
    assert [v["name"] for v in spec["volumes"]] == ["kube-api-access-xyz12"]
    assert spec["containers"][0]["volumeMounts"] == [{
        "name": "kube-api-access-xyz12", "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]


async def test_deprecated_service_account_field_names_the_account(admitting: dict) -> None:
    await admitting["serviceaccounts"].create("default", sa("builder",
                                                            automountServiceAccountToken=False))
    pod = await admitting["pods"].create("default", make_pod("p").bare().set_spec(
        serviceAccount="builder").build())
    assert (pod["spec"]["serviceAccountName"], pod["spec"]["serviceAccount"]) == \
        ("builder", "builder")
    assert "volumes" not in pod["spec"]  # the account's automount: false


@pytest.mark.parametrize("account", ["nope", "default"])
async def test_missing_account_is_forbidden(admitting: dict, account: str) -> None:
    with pytest.raises(ApiError) as refused:
        await admitting["pods"].create("default", make_pod("x").bare().set_spec(
            serviceAccountName=account).build())
    assert refused.value.code == 403
    assert refused.value.message == (f'pods "x" is forbidden: error looking up service account '
                                     f'default/{account}: serviceaccount "{account}" not found')


async def test_enforced_mountable_secrets_refuse_the_pod(admitting: dict) -> None:
    await admitting["serviceaccounts"].create("default", sa("strict", metadata={
        "name": "strict", "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}}))
    with pytest.raises(ApiError) as refused:
        await admitting["pods"].create("default", make_pod("x").bare().set_spec(
            serviceAccountName="strict").volume("v", secret={"secretName": "s"}).build())
    assert (refused.value.code, refused.value.message) == (403, (
        'pods "x" is forbidden: volume with secret.secretName="s" is not allowed because '
        "service account strict does not reference that secret"))


async def test_dry_run_is_admitted_too(admitting: dict) -> None:
    with pytest.raises(ApiError) as refused:
        await admitting["pods"].create("default", make_pod("x").bare().build(), dry_run=True)
    assert refused.value.code == 403


# -- TokenRequest and authentication over HTTP ----------------------------------------------

@pytest.fixture
async def server(tmp_path):
    """An in-process server with the ServiceAccount admission (no controllers)."""
    running = await start(ServerConfig(data_dir=str(tmp_path / "server"), port=0,
                                       datastore="memory"))
    yield running
    await running.stop()


def as_user(server: RunningServer, token: str) -> ApiClient:
    return ApiClient(ClientConfig(server=server.url, ca_file=server.ca_file, token=token))


async def token_for(api: ApiClient, name: str = "default", **spec: object) -> dict:
    return await api.request("POST", f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
                             body={"apiVersion": "authentication.k8s.io/v1",
                                   "kind": "TokenRequest", "spec": spec})


@pytest.fixture
async def admin(server: RunningServer):
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        await api.create(SERVICE_ACCOUNTS, SA_BODY, "default")
        yield api


async def test_token_authenticates_as_the_service_account(server: RunningServer,
                                                          admin: ApiClient) -> None:
    answer = await token_for(admin)
    assert answer["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600}
    assert answer["metadata"]["name"] == "default"
    async with as_user(server, answer["status"]["token"]) as user:
        assert (await user.request("GET", "/api"))["kind"] == "APIVersions"
        with pytest.raises(ApiError) as refused:
            await user.list(SECRETS, "default")
        assert refused.value.code == 403
        assert refused.value.message == (
            'secrets is forbidden: User "system:serviceaccount:default:default" cannot list '
            'resource "secrets" in API group "" in the namespace "default"')
        await admin.delete(SERVICE_ACCOUNTS, "default", "default")
        with pytest.raises(ApiError) as gone:
            await user.request("GET", "/api")
        assert gone.value.code == 401


async def test_pod_bound_token_reads_its_pod_until_the_pod_goes(
        server: RunningServer, admin: ApiClient) -> None:
    pod = await admin.create(PODS, make_pod("web").bare().build(), "default")
    await admin.create(PODS, make_pod("other").bare().build(), "default")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": pod["metadata"]["uid"]}
    answer = await token_for(admin, boundObjectRef=ref, expirationSeconds=3607)
    rbac = {"apiVersion": "rbac.authorization.k8s.io/v1"}
    await admin.create(ROLES, {**rbac, "kind": "Role", "metadata": {"name": "web-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["web"]}]},
        "default")
    await admin.create(ROLE_BINDINGS, {
        **rbac, "kind": "RoleBinding", "metadata": {"name": "web-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]}, "default")
    expires = tables.parse_time(answer["status"]["expirationTimestamp"])
    assert abs(expires.timestamp() - (time.time() + 3607)) < 5
    async with as_user(server, answer["status"]["token"]) as user:
        assert (await user.get(PODS, "web", "default"))["metadata"]["name"] == "web"
        with pytest.raises(ApiError) as other:
            await user.get(PODS, "other", "default")
        assert other.value.code == 403
        await admin.delete(PODS, "web", "default", grace_period=0)
        with pytest.raises(ApiError) as gone:
            await user.request("GET", "/api")
        assert gone.value.code == 401


@pytest.mark.parametrize("spec, code, message", [
    ({"expirationSeconds": 60}, 422,
     'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: '
     "60: may not specify a duration less than 10 minutes"),
    ({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "missing"}}, 404,
     'pods "missing" not found'),
    ({"boundObjectRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}, 400,
     "cannot bind token to object of type /v1, Kind=ConfigMap"),
])
async def test_bad_token_requests(admin: ApiClient, spec: dict, code: int,
                                  message: str) -> None:
    with pytest.raises(ApiError) as refused:
        await token_for(admin, **spec)
    assert (refused.value.code, refused.value.message) == (code, message)


async def test_token_of_a_missing_account_is_not_found(admin: ApiClient) -> None:
    with pytest.raises(ApiError) as refused:
        await token_for(admin, "nobody")
    assert (refused.value.code, refused.value.message) == (
        404, 'serviceaccounts "nobody" not found')


async def test_expired_and_foreign_tokens_are_401(server: RunningServer,
                                                  admin: ApiClient, tmp_path) -> None:
    account = await admin.get(SERVICE_ACCOUNTS, "default", "default")
    own = TokenSigner.load_or_create(server.config.data_dir + "/server")
    ref = Ref("default", account["metadata"]["uid"])
    expired = own.sign(claims("default", ref, audiences=[ISSUER], expiration_seconds=600,
                              now=time.time() - 700))
    foreign = TokenSigner.load_or_create(str(tmp_path)).sign(
        claims("default", ref, audiences=[ISSUER], expiration_seconds=600))
    valid = own.sign(claims("default", ref, audiences=[ISSUER], expiration_seconds=600))
    async with as_user(server, valid) as user:
        assert await user.request("GET", "/api")
    for token in (expired, foreign, "x.y.z"):
        async with as_user(server, token) as user:
            with pytest.raises(ApiError) as refused:
                await user.request("GET", "/api")
            assert refused.value.code == 401


# -- a node's token requests (NodeRestriction) ----------------------------------------------

async def test_node_gets_tokens_only_for_its_pods(admitting: dict, tmp_path) -> None:
    await admitting["serviceaccounts"].create("default", sa())
    mine = await admitting["pods"].create("default", make_pod("mine").bare().node("n1").build())
    theirs = await admitting["pods"].create("default",
                                            make_pod("theirs").bare().node("n2").build())
    tokens = TokenRequests(admitting, TokenSigner.load_or_create(str(tmp_path)))
    n1 = node_user("n1")

    def request(pod: dict | None, uid: str | None = None) -> dict:
        spec: dict = {}
        if pod is not None:
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod",
                                      "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"] if uid is None else uid}
        return {"spec": spec}

    answer = await tokens.create(n1, "default", "default", request(mine))
    user = await tokens.authenticate(answer["status"]["token"])
    assert user is not None and user.extra_value("authentication.kubernetes.io/node-name") == "n1"
    for body, message in [
        (request(None), "node requested token not bound to a pod"),
        (request(mine, ""), "node requested token with a pod binding without a uid"),
        (request(mine, "stale"), "the UID in the bound object reference (stale) does not "
                                 "match the UID in record. The object might have been deleted "
                                 "and then recreated"),
        (request(theirs), "node requested token bound to a pod scheduled on a different node"),
    ]:
        with pytest.raises(ApiError) as refused:
            await tokens.create(n1, "default", "default", body)
        assert (refused.value.code, refused.value.message) == (
            403, f'serviceaccounts "default" is forbidden: {message}')


@pytest.mark.parametrize("fields", [
    {"secrets": "s1"}, {"secrets": [{"name": 3}]}, {"imagePullSecrets": {"name": "x"}},
    {"automountServiceAccountToken": "yes"},
])
async def test_malformed_service_accounts_are_400(admin: ApiClient, fields: dict) -> None:
    with pytest.raises(ApiError) as refused:
        await admin.create(SERVICE_ACCOUNTS, sa("bad", **fields), "default")
    assert refused.value.code == 400
    assert refused.value.message.startswith(
        'ServiceAccount in version "v1" cannot be handled as a ServiceAccount:')
