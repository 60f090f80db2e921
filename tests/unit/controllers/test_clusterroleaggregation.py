"""The rules an aggregating ClusterRole gathers."""

from __future__ import annotations

from podling.controllers.clusterroleaggregation import aggregated_rules


def cluster_role(name: str, labels: dict, *rules: dict, selectors: list | None = None) -> dict:
    role = {"metadata": {"name": name, "labels": labels}, "rules": list(rules)}
    if selectors is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return role


A = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
B = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
C = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}


def test_matching_roles_in_name_order_each_rule_once() -> None:
    agg = cluster_role("agg", {"x": "1"}, selectors=[{"matchLabels": {"to": "agg"}},
                                                    {"matchExpressions": [
                                                        {"key": "extra", "operator": "Exists"}]}])
    roles = [agg, cluster_role("zz", {"to": "agg"}, C, A),
             cluster_role("aa", {"to": "agg"}, A, B),
             cluster_role("mm", {"extra": ""}, B),
             cluster_role("other", {"to": "else"}, {"verbs": ["*"]})]
    assert aggregated_rules(agg, roles) == [A, B, C]


def test_a_role_never_gathers_itself_and_bad_selectors_match_nothing() -> None:
    agg = cluster_role("agg", {"to": "agg"}, A, selectors=[{"matchLabels": {"to": "agg"}}])
    assert aggregated_rules(agg, [agg]) == []
    bad = cluster_role("bad", {}, selectors=[{"matchExpressions": [
        {"key": "to", "operator": "Sideways"}]}])
    assert aggregated_rules(bad, [cluster_role("x", {"to": "a"}, A)]) == []
