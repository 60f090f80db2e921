"""RBAC's rule matching, subject matching and covering (podling.api.rbac)."""

from __future__ import annotations

import pytest

from podling.api import rbac
from podling.api.rbac import Request

PODS_READ = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


@pytest.mark.parametrize("rule, request_, allowed", [
    (PODS_READ, Request("get", resource="pods", name="web"), True),
    (PODS_READ, Request("list", resource="pods"), True),
    (PODS_READ, Request("delete", resource="pods", name="web"), False),
    (PODS_READ, Request("get", group="apps", resource="pods"), False),
    (PODS_READ, Request("get", resource="pods", subresource="log", name="web"), False),
    ({**PODS_READ, "resources": ["pods/log"]},
     Request("get", resource="pods", subresource="log", name="web"), True),
    ({**PODS_READ, "resources": ["*/log"]},
     Request("get", resource="nodes", subresource="log"), True),
    ({**PODS_READ, "resources": ["*/log"]}, Request("get", resource="log"), False),
    ({**PODS_READ, "resources": ["*"]}, Request("get", resource="pods", subresource="exec"),
     True),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
     Request("escalate", group="rbac.authorization.k8s.io", resource="roles"), True),
    ({**PODS_READ, "resourceNames": ["web"]}, Request("get", resource="pods", name="web"), True),
    ({**PODS_READ, "resourceNames": ["web"]}, Request("get", resource="pods", name="db"), False),
    ({**PODS_READ, "resourceNames": ["web"]}, Request("list", resource="pods"), False),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, Request("get", path="/healthz"), True),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
     Request("get", path="/healthz/etcd"), False),
    ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, Request("get", path="/apis/x/v1"),
     True),
    ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, Request("get", path="/apis"), False),
    ({"nonResourceURLs": ["*"], "verbs": ["*"]}, Request("post", path="/anything"), True),
    (PODS_READ, Request("get", path="/api"), False),
    ({"nonResourceURLs": ["*"], "verbs": ["*"]}, Request("get", resource="pods"), False),
    ({"verbs": "get", "resources": 7}, Request("get", resource="pods"), False),  # garbage
])
def test_rule_allows(rule, request_, allowed) -> None:
    assert rbac.rule_allows(rule, request_) is allowed


def binding(namespace: str | None, *subjects: dict) -> dict:
    meta = {"name": "b", **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "subjects": list(subjects)}


USER = {"kind": "User", "name": "alice"}
GROUP = {"kind": "Group", "name": "dev"}
ACCOUNT = {"kind": "ServiceAccount", "name": "builder"}


@pytest.mark.parametrize("b, user, groups, applies", [
    (binding("ns", USER), "alice", (), True),
    (binding("ns", USER), "bob", ("alice",), False),
    (binding(None, GROUP), "bob", ("dev", "system:authenticated"), True),
    (binding(None, GROUP), "dev", (), False),
    (binding("ns", ACCOUNT), "system:serviceaccount:ns:builder", (), True),
    (binding("ns", ACCOUNT), "system:serviceaccount:other:builder", (), False),
    (binding("ns", {**ACCOUNT, "namespace": "other"}), "system:serviceaccount:other:builder",
     (), True),
    (binding(None, ACCOUNT), "system:serviceaccount::builder", (), False),
    (binding("ns", {"kind": "Robot", "name": "alice"}), "alice", (), False),
    (binding("ns"), "alice", (), False),
])
def test_binding_applies(b, user, groups, applies) -> None:
    assert rbac.binding_applies(b, user, groups) is applies


def test_uncovered_pieces_and_their_compact_form() -> None:
    owner = [PODS_READ, {"apiGroups": ["*"], "resources": ["*/log"], "verbs": ["get"]},
             {"nonResourceURLs": ["/api/*"], "verbs": ["get"]}]
    wanted = [{"apiGroups": [""], "resources": ["pods", "secrets"],
               "verbs": ["get", "delete", "list"]},
              {"apiGroups": ["apps"], "resources": ["deployments/log"], "verbs": ["get"]},
              {"nonResourceURLs": ["/api/v1", "/metrics"], "verbs": ["get"]}]
    missing = rbac.merge_verbs(rbac.uncovered(owner, wanted))
    assert sorted(rbac.compact(rule) for rule in missing) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "list"]}',
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
    ]


def test_resource_names_cover_only_themselves() -> None:
    named = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}
    assert rbac.uncovered([named], [named]) == []
    assert rbac.uncovered([named], [{**named, "resourceNames": ["a", "b"]}]) == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["b"]}]
    assert rbac.uncovered([named], [{**named, "resourceNames": []}]) != []
    assert rbac.uncovered([{**named, "resourceNames": []}], [named]) == []


def test_default_binding_fills_api_groups() -> None:
    obj = {"roleRef": {"kind": "ClusterRole", "name": "view"},
           "subjects": [{"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "b",
                                                         "namespace": "n"}]}
    rbac.default_binding(obj)
    assert obj["roleRef"]["apiGroup"] == rbac.GROUP
    assert obj["subjects"][0]["apiGroup"] == rbac.GROUP
    assert "apiGroup" not in obj["subjects"][1]
