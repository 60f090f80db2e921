"""Validation of Roles, ClusterRoles and their bindings: Kubernetes' fields and messages."""

from __future__ import annotations

import pytest

from podling.api.validation import rbac as v

G = "rbac.authorization.k8s.io"


def messages(causes) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


def role(*rules: dict, name: str = "r") -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}, "rules": list(rules)}


@pytest.mark.parametrize("rule, expected", [
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, []),
    ({"apiGroups": [""], "resources": ["pods"]},
     ["rules[0].verbs: Required value: verbs must contain at least one value"]),
    ({"verbs": ["get"]},
     ["rules[0].apiGroups: Required value: resource rules must supply at least one api group",
      "rules[0].resources: Required value: resource rules must supply at least one resource"]),
    ({"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]},
     ['rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply '
      'to non-resource URLs',
      'rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both '
      'regular resources and non-resource URLs']),
])
def test_role_rules(rule, expected) -> None:
    assert messages(v.validate_role(role(rule))) == expected


def test_cluster_roles_may_name_urls_and_aggregate() -> None:
    ok = {"metadata": {"name": "c"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}
    assert v.validate_cluster_role(ok) == []
    empty = {**ok, "aggregationRule": {"clusterRoleSelectors": []}}
    assert messages(v.validate_cluster_role(empty)) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector "
        "required if aggregationRule is non-nil"]


@pytest.mark.parametrize("name, expected", [
    ("system:view", []), ("..", ["metadata.name: Invalid value: \"..\": may not be '..'"]),
    ("a/b%c", ["metadata.name: Invalid value: \"a/b%c\": may not contain '/'",
               "metadata.name: Invalid value: \"a/b%c\": may not contain '%'"]),
])
def test_names_are_path_segments(name, expected) -> None:
    assert messages(v.validate_role(role(name=name))) == expected


def binding(ref: dict, *subjects: dict, namespaced: bool = True) -> dict:
    meta = {"name": "b", **({"namespace": "ns"} if namespaced else {})}
    return {"metadata": meta, "roleRef": ref, "subjects": list(subjects)}


REF = {"apiGroup": G, "kind": "ClusterRole", "name": "view"}


@pytest.mark.parametrize("obj, validate, expected", [
    (binding(REF, {"kind": "ServiceAccount", "name": "default"}), v.validate_role_binding, []),
    (binding(REF, {"kind": "ServiceAccount", "name": "default"}, namespaced=False),
     v.validate_cluster_role_binding, ["subjects[0].namespace: Required value"]),
    (binding({**REF, "kind": "Role"}, namespaced=False), v.validate_cluster_role_binding,
     ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']),
    (binding({"apiGroup": "x", "kind": "Thing", "name": ""}), v.validate_role_binding,
     [f'roleRef.apiGroup: Unsupported value: "x": supported values: "{G}"',
      'roleRef.kind: Unsupported value: "Thing": supported values: "Role", "ClusterRole"',
      "roleRef.name: Required value"]),
    (binding(REF, {"kind": "User", "name": "u", "apiGroup": ""},
             {"kind": "Robot", "name": "r"}, {"kind": "ServiceAccount", "name": "A_B",
                                              "apiGroup": G}, {"kind": "Group"}),
     v.validate_role_binding,
     [f'subjects[0].apiGroup: Unsupported value: "": supported values: "{G}"',
      'subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
      '"User", "Group"',
      'subjects[2].name: Invalid value: "A_B": a lowercase RFC 1123 subdomain must consist of '
      "lower case alphanumeric characters, '-' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      'subjects[2].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported '
      'values: ""',
      "subjects[3].name: Required value",
      f'subjects[3].apiGroup: Unsupported value: "": supported values: "{G}"']),
])
def test_bindings(obj, validate, expected) -> None:
    assert messages(validate(obj)) == expected


def test_the_role_ref_cannot_change() -> None:
    old = {**binding(REF), "metadata": {"name": "b", "namespace": "ns", "resourceVersion": "1"}}
    new = {**old, "roleRef": {**REF, "name": "edit"}}
    assert messages(v.validate_update(new, old, v.validate_role_binding)) == [
        f'roleRef: Invalid value: rbac.RoleRef{{APIGroup:"{G}", Kind:"ClusterRole", '
        'Name:"edit"}: cannot change roleRef']
    assert v.validate_update(old, old, v.validate_role_binding) == []
