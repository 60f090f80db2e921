"""The audit policy: Kubernetes' rule matching (first match wins) and its load errors."""

from __future__ import annotations

import pytest

from podling.api import auditpolicy
from podling.api.auditpolicy import PolicyError, Request


def policy(*rules: dict, **top: object) -> auditpolicy.Policy:
    return auditpolicy.load({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                             "rules": list(rules), **top}, "p.yaml")


def pods(verb: str = "get", *, sub: str = "", name: str = "web", ns: str = "default",
         user: str | None = "alice", groups: tuple[str, ...] = ("dev",)) -> Request:
    return Request(user, groups, verb, "/api/v1/…", resource="pods", subresource=sub,
                   namespace=ns, name=name)


def level(p: auditpolicy.Policy, request: Request) -> str:
    return p.decide(request).level


def test_first_matching_rule_decides_and_no_match_is_none() -> None:
    p = policy({"level": "None", "users": ["system:kube-proxy"]},
               {"level": "RequestResponse", "userGroups": ["dev"], "verbs": ["create"]},
               {"level": "Metadata", "namespaces": ["default"]})
    assert level(p, pods("create")) == "RequestResponse"
    assert level(p, pods("get")) == "Metadata"
    assert level(p, pods("get", ns="other")) == "None"
    assert level(p, pods("create", user=None, groups=())) == "Metadata"  # a 401: no user
    assert level(p, pods("get", user="system:kube-proxy")) == "None"


@pytest.mark.parametrize("wanted, sub, matches", [
    ("pods", "", True), ("pods", "log", False), ("pods/log", "log", True),
    ("pods/log", "", False), ("*/log", "log", True), ("*/log", "", False),
    ("pods/*", "", True), ("pods/*", "exec", True), ("*", "status", True),
])
def test_resources_and_subresources(wanted: str, sub: str, matches: bool) -> None:
    p = policy({"level": "Request", "resources": [{"group": "", "resources": [wanted]}]})
    assert (level(p, pods(sub=sub)) == "Request") is matches


def test_groups_resource_names_and_non_resource_urls() -> None:
    p = policy({"level": "Request", "resources": [{"group": "apps"}]},
               {"level": "Metadata", "resources": [{"resources": ["pods"],
                                                    "resourceNames": ["web"]}]},
               {"level": "RequestResponse", "nonResourceURLs": ["/healthz*", "/version"]})
    assert level(p, Request("a", (), "get", "/x", resource="deployments", group="apps")) == \
        "Request"
    assert level(p, pods(name="web")) == "Metadata"
    assert level(p, pods(name="db")) == "None"
    for path, wanted in (("/healthz", "RequestResponse"), ("/healthz/etcd", "RequestResponse"),
                         ("/version", "RequestResponse"), ("/versions", "None")):
        assert level(p, Request("a", (), "get", path)) == wanted
    assert level(policy({"level": "Metadata", "namespaces": [""]}),
                 Request("a", (), "get", "/x", resource="nodes")) == "Metadata"


def test_omitted_stages_add_up_and_managed_fields() -> None:
    p = policy({"level": "Metadata", "omitStages": ["ResponseStarted"],
                "omitManagedFields": False}, omitStages=["RequestReceived"],
               omitManagedFields=True)
    decision = p.decide(pods())
    assert decision.omit_stages == {"RequestReceived", "ResponseStarted"}
    assert decision.omit_managed_fields is False


@pytest.mark.parametrize("rule, message", [
    ({}, "rules[0].level: Required value"),
    ({"level": "Loud"}, 'rules[0].level: Unsupported value: "Loud": supported values: "None", '
                        '"Metadata", "Request", "RequestResponse"'),
    ({"level": "None", "omitStages": ["Later"]}, 'rules[0].omitStages[0]: Invalid value: '
     '"Later": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic'),
    ({"level": "None", "nonResourceURLs": ["healthz"]}, 'rules[0].nonResourceURLs[0]: Invalid '
     """value: "healthz": non-resource URL rules must begin with a '/' character"""),
    ({"level": "None", "nonResourceURLs": ["/a*/b"]}, 'rules[0].nonResourceURLs[0]: Invalid '
     """value: "/a*/b": non-resource URL wildcards '*' must be the final character of the """
     "rule"),
    ({"level": "None", "nonResourceURLs": ["/healthz"], "namespaces": ["a"]},
     'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: rules cannot apply to '
     "both regular resources and non-resource URLs"),
    ({"level": "None", "resources": [{"resourceNames": ["x"]}]},
     'rules[0].resources.resourceNames: Invalid value: []string{"x"}: using resourceNames '
     "requires at least one resource"),
])
def test_bad_rules_are_refused_with_kubernetes_messages(rule: dict, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        policy(rule)
    assert str(refused.value) == f"{message}: from file p.yaml"


def test_bad_documents_and_files(tmp_path) -> None:
    with pytest.raises(PolicyError, match="^loaded illegal policy with 0 rules: from file p.yaml$"):
        policy()
    with pytest.raises(PolicyError, match="^unknown group version field"):
        auditpolicy.load({"kind": "Policy", "rules": [{"level": "None"}]}, "p.yaml")
    missing = tmp_path / "none.yaml"
    with pytest.raises(PolicyError, match=f'^failed to read file path "{missing}": no such file'):
        auditpolicy.load_file(str(missing))
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(PolicyError, match=f"^failed decoding: .*: from file {broken}$"):
        auditpolicy.load_file(str(broken))
