"""The RBAC authorizer over real stores (in-memory storage): decisions, reasons, the copy
that follows writes, escalation checks on writes, and the default policy's repair."""

from __future__ import annotations

import pytest

from podling.api import errors
from podling.apiserver import authz
from podling.apiserver.auth import User, current_user
from podling.apiserver.rbac import RbacAuthorizer
from podling.apiserver.rbacdefaults import AUTOUPDATE, ensure_default_policy
from podling.apiserver.registry.strategies import registry_stores
from podling.controllers.clusterroleaggregation import aggregated_rules
from podling.storage.memory import MemoryStore

G = "rbac.authorization.k8s.io"
ALICE = User("alice", ("dev", "system:authenticated"))
BUILDER = User("system:serviceaccount:ci:builder",
               ("system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"))


def attrs(verb: str, resource: str, ns: str | None = "ci", name: str | None = None,
          group: str = "", sub: str | None = None) -> authz.Attributes:
    return authz.Attributes(verb=verb, resource=resource, group=group, namespace=ns,
                            name=name, subresource=sub)


def role(name: str, *rules: dict, ns: str | None = "ci", **extra: object) -> dict:
    kind = "Role" if ns else "ClusterRole"
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": f"{G}/v1", "kind": kind, "metadata": meta, "rules": list(rules),
            **extra}


def binding(name: str, ref_kind: str, ref: str, *subjects: dict, ns: str | None = "ci") -> dict:
    kind = "RoleBinding" if ns else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": f"{G}/v1", "kind": kind, "metadata": meta,
            "roleRef": {"kind": ref_kind, "name": ref}, "subjects": list(subjects)}


PODS_READ = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
USER = {"kind": "User", "name": "alice"}


@pytest.fixture
async def rbac():
    storage = MemoryStore()
    authorizer = RbacAuthorizer(storage)
    stores = registry_stores(storage, rbac=authorizer)
    await ensure_default_policy(stores)
    for name in ("view", "edit", "admin"):  # what the aggregation controller does
        roles, _ = await stores["clusterroles"].list(None)
        await stores["clusterroles"].update(None, name, lambda obj: {
            **obj, "rules": aggregated_rules(obj, roles)})
    await authorizer.start()
    authorizer.stores = stores  # type: ignore[attr-defined]
    yield authorizer
    await authorizer.stop()


async def write(rbac: RbacAuthorizer, resource: str, obj: dict, user: User | None = None
                ) -> dict:
    """Create ``obj`` as ``user`` (None: no escalation check) and wait for the copy."""
    token = current_user.set(user)
    try:
        store = rbac.stores[resource]  # type: ignore[attr-defined]
        created = await store.create(obj["metadata"].get("namespace"), obj)
    finally:
        current_user.reset(token)
    await rbac.caught_up(store.storage.revision)
    return created


async def test_bindings_grant_their_roles_rules_in_their_namespace(rbac) -> None:
    assert rbac.decide(ALICE, attrs("list", "pods")) == (False, "")
    await write(rbac, "roles", role("reader", PODS_READ))
    await write(rbac, "rolebindings", binding("r", "Role", "reader", USER))
    assert rbac.decide(ALICE, attrs("list", "pods")) == (
        True, 'RBAC: allowed by RoleBinding "r/ci" of Role "reader" to User "alice"')
    assert not rbac.decide(ALICE, attrs("list", "pods", ns="other"))[0]
    assert not rbac.decide(ALICE, attrs("delete", "pods", name="x"))[0]
    await write(rbac, "rolebindings", binding("v", "ClusterRole", "view",
                                              {"kind": "Group", "name": "dev"}, ns="other"))
    assert rbac.decide(ALICE, attrs("get", "configmaps", ns="other", name="c")) == (
        True, 'RBAC: allowed by RoleBinding "v/other" of ClusterRole "view" to Group "dev"')
    assert not rbac.decide(ALICE, attrs("get", "configmaps", ns="third", name="c"))[0]


async def test_service_account_subjects_default_to_the_bindings_namespace(rbac) -> None:
    await write(rbac, "rolebindings", binding("sa", "ClusterRole", "edit",
                                              {"kind": "ServiceAccount", "name": "builder"}))
    assert rbac.decide(BUILDER, attrs("create", "pods")) == (
        True, 'RBAC: allowed by RoleBinding "sa/ci" of ClusterRole "edit" to '
              'ServiceAccount "builder/ci"')
    assert not rbac.decide(BUILDER, attrs("create", "pods", ns="other"))[0]


async def test_a_deleted_binding_stops_granting_at_once(rbac) -> None:
    await write(rbac, "clusterrolebindings",
                binding("all", "ClusterRole", "cluster-admin", USER, ns=None))
    assert rbac.decide(ALICE, attrs("delete", "nodes", ns=None, name="n1")) == (
        True, 'RBAC: allowed by ClusterRoleBinding "all" of ClusterRole "cluster-admin" to '
              'User "alice"')
    store = rbac.stores["clusterrolebindings"]
    await store.delete(None, "all")
    await rbac.caught_up(store.storage.revision)
    assert not rbac.decide(ALICE, attrs("delete", "nodes", ns=None, name="n1"))[0]


async def test_a_watch_of_one_object_by_name_matches_resource_names(rbac) -> None:
    await write(rbac, "roles", role("web", {**PODS_READ, "verbs": ["watch"],
                                            "resourceNames": ["web"]}))
    await write(rbac, "rolebindings", binding("w", "Role", "web", USER))
    one = authz.Attributes(verb="watch", resource="pods", namespace="ci",
                           field_selector="metadata.name=web")
    assert rbac.decide(ALICE, one)[0]
    assert not rbac.decide(ALICE, attrs("watch", "pods"))[0]
    other = authz.Attributes(verb="watch", resource="pods", namespace="ci",
                             field_selector="metadata.name=db")
    assert not rbac.decide(ALICE, other)[0]


async def test_missing_roles_are_the_reason(rbac) -> None:
    await write(rbac, "rolebindings", binding("a", "Role", "gone", USER))
    await write(rbac, "rolebindings", binding("b", "Role", "gone", USER))
    assert rbac.decide(ALICE, attrs("list", "pods")) == (
        False, f'RBAC: role.{G} "gone" not found')
    await write(rbac, "clusterrolebindings", binding("c", "ClusterRole", "lost", USER, ns=None))
    assert rbac.decide(ALICE, attrs("list", "pods")) == (
        False, f'RBAC: [clusterrole.{G} "lost" not found, role.{G} "gone" not found]')
    message = authz.forbidden(ALICE, attrs("list", "pods"),
                              authz.decide(ALICE, attrs("list", "pods"), rbac=rbac)[1]).message
    assert message.endswith(f'in the namespace "ci": RBAC: [clusterrole.{G} "lost" not found, '
                            f'role.{G} "gone" not found]')


async def test_defaults_give_every_user_discovery_and_nothing_else(rbac) -> None:
    nobody = User("nobody", ("system:authenticated",))
    for path in ("/api", "/apis/apps/v1", "/version", "/openapi/v3", "/healthz"):
        assert authz.allowed(nobody, authz.Attributes("get", "", path=path), rbac=rbac)
    assert not authz.allowed(nobody, authz.Attributes("get", "", path="/debug/pods/timeline"),
                             rbac=rbac)
    assert authz.allowed(nobody, attrs("create", "selfsubjectaccessreviews", ns=None,
                                       group="authorization.k8s.io"), rbac=rbac)
    assert not authz.allowed(nobody, attrs("get", "namespaces", ns=None, name="ci"), rbac=rbac)


async def test_rules_for_lists_what_applies_and_what_is_missing(rbac) -> None:
    await write(rbac, "roles", role("reader", PODS_READ))
    await write(rbac, "rolebindings", binding("r", "Role", "reader", USER))
    await write(rbac, "rolebindings", binding("x", "Role", "gone", USER))
    rules, problems = rbac.rules_for(ALICE, "ci")
    assert PODS_READ in rules
    assert [str(p) for p in problems] == [f'role.{G} "gone" not found']
    assert PODS_READ not in rbac.rules_for(ALICE, "other")[0]


# --- escalation checks ------------------------------------------------------------------


async def refused(rbac, resource: str, obj: dict, user: User) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as caught:
        await write(rbac, resource, obj, user)
    return caught.value


async def test_a_role_with_rules_the_writer_lacks_is_refused(rbac) -> None:
    await write(rbac, "rolebindings", binding("a", "ClusterRole", "admin", USER))
    wanted = role("nodes", {"apiGroups": [""], "resources": ["nodes", "pods"],
                            "verbs": ["get", "delete", "escalate"]})
    error = await refused(rbac, "roles", wanted, ALICE)
    assert (error.code, error.message) == (403, (
        f'roles.{G} "nodes" is forbidden: user "alice" (groups=["dev" "system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "delete" "escalate"]}\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["escalate"]}'))
    await write(rbac, "roles", role("pods", PODS_READ), ALICE)  # held: fine
    urls = role("urls", {"nonResourceURLs": ["/metrics", "/api/v1"], "verbs": ["get"]}, ns=None)
    error = await refused(rbac, "clusterroles", urls, ALICE)
    assert error.message.endswith('not currently held:\n{NonResourceURLs:["/metrics"], '
                                  'Verbs:["get"]}')


async def test_escalate_and_bind_verbs_lift_the_checks(rbac) -> None:
    await write(rbac, "roles", role("rbac-writer", {"apiGroups": [G], "resources": ["roles"],
                                                   "verbs": ["create", "escalate"]},
                                    {"apiGroups": [G], "resources": ["rolebindings"],
                                     "verbs": ["create"]},
                                    {"apiGroups": [G], "resources": ["clusterroles"],
                                     "verbs": ["bind"], "resourceNames": ["edit"]}))
    await write(rbac, "rolebindings", binding("w", "Role", "rbac-writer", USER))
    await write(rbac, "roles", role("all", {"apiGroups": ["*"], "resources": ["*"],
                                            "verbs": ["*"]}), ALICE)
    await write(rbac, "rolebindings", binding("e", "ClusterRole", "edit", USER), ALICE)
    error = await refused(rbac, "rolebindings", binding("v", "ClusterRole", "cluster-admin",
                                                        USER), ALICE)
    assert error.code == 403 and "not currently held" in error.message


async def test_binding_a_missing_role_without_bind_is_not_found(rbac) -> None:
    await write(rbac, "rolebindings", binding("a", "ClusterRole", "admin", USER))
    error = await refused(rbac, "rolebindings", binding("x", "Role", "nope", USER), ALICE)
    assert (error.code, error.reason, error.message) == (404, "NotFound",
                                                         f'roles.{G} "nope" not found')


async def test_resolution_errors_are_named(rbac) -> None:
    await write(rbac, "rolebindings", binding("a", "Role", "gone", USER))
    error = await refused(rbac, "roles", role("r", PODS_READ), ALICE)
    assert error.message.endswith(f'; resolution errors: [roles.{G} "gone" not found]')


async def test_an_aggregation_rule_needs_cluster_admin(rbac) -> None:
    await write(rbac, "clusterrolebindings", binding("w", "ClusterRole", "admin", USER,
                                                     ns=None))
    aggregating = role("agg", ns=None, aggregationRule={
        "clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]})
    error = await refused(rbac, "clusterroles", aggregating, ALICE)
    assert error.message == (f'clusterroles.{G} "agg" is forbidden: must have cluster-admin '
                             "privileges to use the aggregationRule")
    admin = User("root", ("system:masters",))
    await write(rbac, "clusterroles", aggregating, admin)


async def test_only_garbage_collection_fields_may_change_without_the_rights(rbac) -> None:
    await write(rbac, "roles", role("big", {"apiGroups": ["*"], "resources": ["*"],
                                            "verbs": ["*"]}))
    await write(rbac, "rolebindings", binding("a", "ClusterRole", "admin", USER))
    store = rbac.stores["roles"]

    def with_finalizer(obj: dict) -> dict:
        obj["metadata"]["finalizers"] = ["example.com/keep"]
        return obj

    def with_label(obj: dict) -> dict:
        obj["metadata"]["labels"] = {"a": "b"}
        return obj
    token = current_user.set(ALICE)
    try:
        await store.update("ci", "big", with_finalizer)
        with pytest.raises(errors.ApiError) as caught:
            await store.update("ci", "big", with_label)
    finally:
        current_user.reset(token)
    assert caught.value.code == 403


# --- the default policy -----------------------------------------------------------------


async def test_defaults_are_repaired_unless_autoupdate_is_false(rbac) -> None:
    roles, bindings = rbac.stores["clusterroles"], rbac.stores["clusterrolebindings"]

    def strip_rules(obj: dict) -> dict:
        obj["rules"] = []
        return obj

    def strip_subjects(obj: dict) -> dict:
        obj["subjects"] = []
        return obj
    await roles.update(None, "system:discovery", strip_rules)
    await bindings.update(None, "system:basic-user", strip_subjects)
    await roles.update(None, "system:public-info-viewer", lambda obj: {
        **strip_rules(obj), "metadata": {**obj["metadata"], "annotations": {AUTOUPDATE: "false"}}})
    await ensure_default_policy(rbac.stores)
    assert (await roles.get(None, "system:discovery"))["rules"]
    assert (await bindings.get(None, "system:basic-user"))["subjects"] == [
        {"apiGroup": G, "kind": "Group", "name": "system:authenticated"}]
    assert (await roles.get(None, "system:public-info-viewer"))["rules"] == []
