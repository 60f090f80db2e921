"""Authorization of service accounts without RBAC (nothing but discovery; RBAC's part is in
test_rbac_authorizer.py) and of nodes asking for their pods' tokens."""

from __future__ import annotations

import pytest

from podling.apiserver import authz
from podling.apiserver.auth import User
from podling.apiserver.nodeauth import node_user

SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
BOUND = User("system:serviceaccount:default:default", SA_GROUPS,
             extra=(("authentication.kubernetes.io/pod-name", ("web",)),))
UNBOUND = User("system:serviceaccount:default:default", SA_GROUPS)
N1 = node_user("n1")


def attrs(verb: str, resource: str, *, ns: str | None = "default", name: str | None = None,
          sub: str | None = None, group: str = "") -> authz.Attributes:
    return authz.Attributes(verb=verb, resource=resource, group=group, namespace=ns, name=name,
                            subresource=sub)


@pytest.mark.parametrize("attributes", [
    attrs("get", "pods", name="web"), attrs("list", "pods"), attrs("list", "secrets"),
    attrs("get", "serviceaccounts", name="default"),
])
def test_service_account_without_rbac_gets_no_resource(attributes) -> None:
    assert not BOUND.allows(attributes)
    assert authz.needs_object(BOUND, attributes) is False


def test_service_account_reads_discovery() -> None:
    for path in ("/api", "/apis", "/version", "/openapi/v3", "/apis/coordination.k8s.io"):
        assert UNBOUND.allows({"nonResourceAttributes": {"path": path, "verb": "get"}})
    assert not UNBOUND.allows({"nonResourceAttributes": {"path": "/api", "verb": "post"}})


def test_forbidden_message_for_a_service_account() -> None:
    error = authz.forbidden(BOUND, attrs("list", "secrets"))
    assert error.message == ('secrets is forbidden: User "system:serviceaccount:default:default" '
                             'cannot list resource "secrets" in API group "" in the namespace '
                             '"default"')


RUNS_AS_BUILDER = {"items": [{"spec": {"nodeName": "n1", "serviceAccountName": "builder"}}]}
ELSEWHERE = {"items": [{"spec": {"nodeName": "n2", "serviceAccountName": "builder"}}]}


@pytest.mark.parametrize("attributes, obj, allowed", [
    (attrs("create", "serviceaccounts", name="builder", sub="token"), RUNS_AS_BUILDER, True),
    (attrs("get", "serviceaccounts", name="builder"), RUNS_AS_BUILDER, True),
    (attrs("create", "serviceaccounts", name="default", sub="token"), RUNS_AS_BUILDER, False),
    (attrs("create", "serviceaccounts", name="builder", sub="token"), ELSEWHERE, False),
    (attrs("get", "serviceaccounts", name="builder"), ELSEWHERE, False),
    (attrs("update", "serviceaccounts", name="builder"), RUNS_AS_BUILDER, False),
    (attrs("delete", "serviceaccounts", name="builder"), RUNS_AS_BUILDER, False),
    (attrs("create", "serviceaccounts"), RUNS_AS_BUILDER, False),
    (attrs("list", "serviceaccounts"), RUNS_AS_BUILDER, False),
])
def test_node_tokens_only_for_its_pods_accounts(attributes, obj, allowed) -> None:
    assert authz.allowed(N1, attributes, obj) is allowed


def test_node_token_requests_ask_for_the_nodes_pods() -> None:
    assert authz.needs_object(N1, attrs("create", "serviceaccounts", name="b", sub="token"))
    assert authz.needs_object(N1, attrs("get", "serviceaccounts", name="b"))
    assert not authz.needs_object(N1, attrs("create", "serviceaccounts"))


@pytest.mark.parametrize("attributes, reason", [
    (attrs("create", "serviceaccounts", name="b", sub="token"),
     ": no relationship found between node 'n1' and this object"),
    (attrs("delete", "serviceaccounts", name="b"),
     ": can only create tokens for individual service accounts"),
    (attrs("get", "serviceaccounts", name="b"),
     ": no relationship found between node 'n1' and this object"),
])
def test_node_reasons_for_service_accounts(attributes, reason) -> None:
    assert authz.forbidden(N1, attributes, authz.decide(N1, attributes)[1]).message.endswith(
        reason)
