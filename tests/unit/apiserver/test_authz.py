"""The authorizer as a table: user × verb × resource × object → allowed, and its messages."""

from __future__ import annotations

import pytest

from podling.apiserver import authz
from podling.apiserver.auth import ADMIN, User
from podling.apiserver.nodeauth import BOOTSTRAP_USER, node_user
from podling.api import errors

N1 = node_user("n1")
OTHER = User("alice", ("system:authenticated",))
POD_N1 = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}}
POD_N2 = {"metadata": {"name": "q"}, "spec": {"nodeName": "n2"}}
POD_PENDING = {"metadata": {"name": "r"}, "spec": {}}


def attrs(verb: str, resource: str, *, ns: str | None = None, name: str | None = None,
          sub: str | None = None, group: str = "", fields: str = "") -> authz.Attributes:
    return authz.Attributes(verb=verb, resource=resource, group=group, namespace=ns,
                            name=name, subresource=sub, field_selector=fields)


LEASE = dict(group="coordination.k8s.io", ns="kube-node-lease")
CASES = [
    # user, attributes, object, allowed
    (ADMIN, attrs("delete", "pods", ns="default", name="x"), None, True),
    (ADMIN, attrs("create", "secrets", ns="default"), None, True),
    (OTHER, attrs("get", "pods", ns="default", name="x"), None, False),
    (BOOTSTRAP_USER, attrs("list", "nodes"), None, False),
    # pods: lists only by this node
    (N1, attrs("list", "pods", fields="spec.nodeName=n1"), None, True),
    (N1, attrs("watch", "pods", fields="spec.nodeName=n1"), None, True),
    (N1, attrs("watch", "pods", fields="spec.host=n1"), None, True),
    (N1, attrs("list", "pods", ns="default", fields="spec.nodeName=n1,status.phase!=Failed"),
     None, True),
    (N1, attrs("list", "pods"), None, False),
    (N1, attrs("list", "pods", fields="spec.nodeName=n2"), None, False),
    (N1, attrs("list", "pods", fields="spec.nodeName!=n1"), None, False),
    (N1, attrs("list", "pods", fields="spec.nodeName=n1=x"), None, False),
    (N1, attrs("deletecollection", "pods", ns="default", fields="spec.nodeName=n1"), None,
     False),
    # pods by name: only those bound to this node
    (N1, attrs("get", "pods", ns="default", name="p"), POD_N1, True),
    (N1, attrs("get", "pods", ns="default", name="q"), POD_N2, False),
    (N1, attrs("get", "pods", ns="default", name="r"), POD_PENDING, False),
    (N1, attrs("get", "pods", ns="default", name="p"), None, False),
    (N1, attrs("delete", "pods", ns="default", name="p"), POD_N1, True),
    (N1, attrs("delete", "pods", ns="default", name="q"), POD_N2, False),
    (N1, attrs("patch", "pods", ns="default", name="p", sub="status"), POD_N1, True),
    (N1, attrs("update", "pods", ns="default", name="p", sub="status"), POD_N1, True),
    (N1, attrs("patch", "pods", ns="default", name="q", sub="status"), POD_N2, False),
    (N1, attrs("patch", "pods", ns="default", name="p"), POD_N1, False),
    (N1, attrs("update", "pods", ns="default", name="p"), POD_N1, False),
    (N1, attrs("create", "pods", ns="default"), None, False),
    (N1, attrs("create", "pods", ns="default", name="p", sub="binding"), POD_N1, False),
    (N1, attrs("get", "pods", ns="default", name="p", sub="log"), POD_N1, False),
    (N1, attrs("create", "pods", ns="default", name="p", sub="eviction"), POD_N1, True),
    (N1, attrs("patch", "pods", ns="default", name="p", sub="ephemeralcontainers"), POD_N1,
     False),
    (N1, attrs("get", "pods", ns="default", name="p", sub="ephemeralcontainers"), POD_N1,
     False),
    (ADMIN, attrs("patch", "pods", ns="default", name="p", sub="ephemeralcontainers"), None,
     True),
    # events
    (N1, attrs("create", "events", ns="default"), None, True),
    (N1, attrs("patch", "events", ns="kube-system", name="e"), None, True),
    (N1, attrs("list", "events"), None, True),
    (N1, attrs("delete", "events", ns="default", name="e"), None, False),
    # nodes: read all, write only its own
    (N1, attrs("get", "nodes", name="n2"), None, True),
    (N1, attrs("list", "nodes"), None, True),
    (N1, attrs("watch", "nodes"), None, True),
    (N1, attrs("create", "nodes"), None, True),
    (N1, attrs("patch", "nodes", name="n1"), None, True),
    (N1, attrs("update", "nodes", name="n1"), None, True),
    (N1, attrs("patch", "nodes", name="n1", sub="status"), None, True),
    (N1, attrs("get", "nodes", name="n1", sub="status"), None, True),
    (N1, attrs("patch", "nodes", name="n2"), None, False),
    (N1, attrs("patch", "nodes", name="n2", sub="status"), None, False),
    (N1, attrs("delete", "nodes", name="n1"), None, False),
    (N1, attrs("delete", "nodes", name="n2"), None, False),
    # leases: its own in kube-node-lease
    (N1, attrs("get", "leases", name="n1", **LEASE), None, True),
    (N1, attrs("create", "leases", **LEASE), None, True),
    (N1, attrs("update", "leases", name="n1", **LEASE), None, True),
    (N1, attrs("patch", "leases", name="n1", **LEASE), None, True),
    (N1, attrs("watch", "leases", fields="metadata.name=n1", **LEASE), None, True),
    (N1, attrs("get", "leases", name="n2", **LEASE), None, False),
    (N1, attrs("update", "leases", name="n2", **LEASE), None, False),
    (N1, attrs("list", "leases", **LEASE), None, False),
    (N1, attrs("get", "leases", name="n1", group="coordination.k8s.io", ns="default"), None,
     False),
    # everything else
    (N1, attrs("get", "secrets", ns="default", name="s"), None, False),
    (N1, attrs("list", "namespaces"), None, False),
    (N1, attrs("create", "namespaces"), None, False),
]


@pytest.mark.parametrize("user, attributes, obj, expected", CASES)
def test_decision_table(user: User, attributes: authz.Attributes, obj, expected: bool) -> None:
    assert user.allows(attributes, obj) is expected


@pytest.mark.parametrize("attributes, needed", [
    (attrs("get", "pods", ns="default", name="p"), True),
    (attrs("patch", "pods", ns="default", name="p", sub="status"), True),
    (attrs("list", "pods", fields="spec.nodeName=n1"), False),
    (attrs("get", "nodes", name="n1"), False),
])
def test_needs_object_for_nodes_only(attributes: authz.Attributes, needed: bool) -> None:
    assert authz.needs_object(N1, attributes) is needed
    assert authz.needs_object(ADMIN, attributes) is False


def test_non_resource_reads_for_any_authenticated_user() -> None:
    assert N1.allows({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}})
    assert not N1.allows({"nonResourceAttributes": {"path": "/healthz", "verb": "post"}})
    assert not BOOTSTRAP_USER.allows({"nonResourceAttributes": {"path": "/api", "verb": "get"}})


def test_review_attributes_with_field_selector() -> None:
    spec = {"resourceAttributes": {"verb": "list", "resource": "pods",
                                   "fieldSelector": {"rawSelector": "spec.nodeName=n1"}}}
    assert N1.allows(spec)
    assert not N1.allows({"resourceAttributes": {"verb": "list", "resource": "pods"}})


@pytest.mark.parametrize("attributes, message", [
    (attrs("delete", "pods", ns="default", name="x"),
     'pods "x" is forbidden: User "system:node:n1" cannot delete resource "pods" in API group '
     '"" in the namespace "default"'),
    (attrs("patch", "nodes", name="n2", sub="status"),
     'nodes "n2" is forbidden: User "system:node:n1" cannot patch resource "nodes/status" in '
     'API group "" at the cluster scope'),
    (attrs("list", "pods"),
     'pods is forbidden: User "system:node:n1" cannot list resource "pods" in API group "" at '
     'the cluster scope'),
    (attrs("update", "leases", name="n2", **LEASE),
     'leases.coordination.k8s.io "n2" is forbidden: User "system:node:n1" cannot update '
     'resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease"'),
])
def test_forbidden_message(attributes: authz.Attributes, message: str) -> None:
    error = authz.forbidden(N1, attributes)
    assert (error.code, error.reason, error.message) == (403, "Forbidden", message)


def test_create_checks_the_name_in_the_body() -> None:
    authz.check_create(N1, attrs("create", "nodes"), {"metadata": {"name": "n1"}})
    authz.check_create(ADMIN, attrs("create", "nodes"), {"metadata": {"name": "n2"}})
    with pytest.raises(errors.ApiError) as node:
        authz.check_create(N1, attrs("create", "nodes"), {"metadata": {"name": "n2"}})
    assert node.value.message == \
        'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    with pytest.raises(errors.ApiError) as lease:
        authz.check_create(N1, attrs("create", "leases", **LEASE), {"metadata": {"name": "n2"}})
    assert lease.value.code == 403
    assert "can only access node lease with the same name" in lease.value.message


# --- secrets and configmaps: only what a pod bound to the node refers to -----------------

USES = {"spec": {"nodeName": "n1", "imagePullSecrets": [{"name": "pull"}],
                 "containers": [{"name": "c", "env": [
                     {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                     {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-c"}}}],
                     "envFrom": [{"configMapRef": {"name": "from-c"}}]}],
                 "volumes": [{"name": "v", "secret": {"secretName": "vol-s"}},
                             {"name": "w", "configMap": {"name": "vol-c"}},
                             {"name": "p", "projected": {"sources": [
                                 {"secret": {"name": "proj-s"}},
                                 {"configMap": {"name": "proj-c"}}]}}]}}
ELSEWHERE = {"spec": {"nodeName": "n2", "volumes": [{"name": "v", "secret": {"secretName": "x"}}]}}
MINE = {"items": [USES]}


@pytest.mark.parametrize("attributes, obj, allowed", [
    (attrs("get", "secrets", ns="default", name="pull"), MINE, True),
    (attrs("get", "secrets", ns="default", name="env-s"), MINE, True),
    (attrs("get", "secrets", ns="default", name="vol-s"), MINE, True),
    (attrs("get", "secrets", ns="default", name="proj-s"), MINE, True),
    (attrs("watch", "secrets", ns="default", fields="metadata.name=vol-s"), MINE, True),
    (attrs("list", "secrets", ns="default", fields="metadata.name=vol-s"), MINE, True),
    (attrs("get", "configmaps", ns="default", name="env-c"), MINE, True),
    (attrs("get", "configmaps", ns="default", name="from-c"), MINE, True),
    (attrs("get", "configmaps", ns="default", name="vol-c"), MINE, True),
    (attrs("get", "configmaps", ns="default", name="proj-c"), MINE, True),
    (attrs("get", "configmaps", ns="default", name="vol-s"), MINE, False),
    (attrs("get", "secrets", ns="default", name="other"), MINE, False),
    (attrs("get", "secrets", ns="default", name="x"), {"items": [ELSEWHERE]}, False),
    (attrs("get", "secrets", ns="default", name="vol-s"), None, False),
    (attrs("list", "secrets", ns="default"), MINE, False),
    (attrs("list", "secrets"), MINE, False),
    (attrs("update", "secrets", ns="default", name="vol-s"), MINE, False),
    (attrs("delete", "configmaps", ns="default", name="vol-c"), MINE, False),
])
def test_node_reads_only_referenced_secrets_and_configmaps(attributes, obj, allowed) -> None:
    assert authz.allowed(N1, attributes, obj) is allowed


def test_node_lookup_is_asked_for_named_reads_only() -> None:
    assert authz.needs_object(N1, attrs("get", "secrets", ns="d", name="s"))
    assert authz.needs_object(N1, attrs("watch", "configmaps", ns="d", fields="metadata.name=c"))
    assert not authz.needs_object(N1, attrs("list", "secrets", ns="d"))
    assert not authz.needs_object(N1, attrs("create", "secrets", ns="d"))
    assert not authz.needs_object(ADMIN, attrs("get", "secrets", ns="d", name="s"))


@pytest.mark.parametrize("attributes, message", [
    (attrs("get", "secrets", ns="default", name="s"),
     'secrets "s" is forbidden: User "system:node:n1" cannot get resource "secrets" in API '
     'group "" in the namespace "default": no relationship found between node \'n1\' and this '
     'object'),
    (attrs("create", "secrets", ns="default"),
     'secrets is forbidden: User "system:node:n1" cannot create resource "secrets" in API '
     'group "" in the namespace "default": can only read resources of this type'),
    (attrs("list", "configmaps", ns="default"),
     'configmaps is forbidden: User "system:node:n1" cannot list resource "configmaps" in API '
     'group "" in the namespace "default": No Object name found'),
    (attrs("list", "configmaps"),
     'configmaps is forbidden: User "system:node:n1" cannot list resource "configmaps" in API '
     'group "" at the cluster scope: can only read namespaced object of this type'),
])
def test_node_secret_denials_carry_the_node_authorizers_reason(attributes, message) -> None:
    assert authz.forbidden(N1, attributes, authz.decide(N1, attributes)[1]).message == message


def test_debug_paths_for_admins_only() -> None:
    review = {"nonResourceAttributes": {"path": "/debug/pods/timeline", "verb": "get"}}
    assert ADMIN.allows(review)
    assert not N1.allows(review) and not OTHER.allows(review)
