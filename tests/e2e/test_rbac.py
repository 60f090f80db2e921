"""RBAC with the real kubectl: users from `podling token create` and `podling kubeconfig`,
Roles, ClusterRoles and bindings, the aggregated admin / edit / view, escalation checks,
impersonation and `kubectl auth can-i` (API only, no agent: pods stay Pending, and every
refusal here comes before a node would be asked).

One server per module; names are unique per test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kubectl_util import get_json, new_namespace, unique, wait_until
from podling_e2e import REPO

pytestmark = pytest.mark.e2e

RBAC = "rbac.authorization.k8s.io"


def podling(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "podling", *args, "--data-dir",
                             server.data_dir], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def as_user(server, kubeconfig: str, *args: str, check: bool = False
            ) -> subprocess.CompletedProcess:
    return server.kubectl("--kubeconfig", kubeconfig, *args, check=check)


def new_user(server, tmp_path, name: str, *groups: str) -> str:
    """A user token made with `podling token create`; returns its kubeconfig's path."""
    path = str(tmp_path / f"{name}.kubeconfig")
    group_flags = [flag for group in groups for flag in ("--group", group)]
    token = podling(server, "token", "create", name, *group_flags, "--write-kubeconfig",
                    path).stdout.strip()
    assert len(token) == 23 and token[6] == "."
    return path


def pod(server, ns: str, name: str) -> None:
    server.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}}))


def forbidden(user: str, verb: str, resource: str, ns: str, name: str = "",
              subresource: str = "") -> str:
    what = f'{resource} "{name}"' if name else resource
    full = f"{resource}/{subresource}" if subresource else resource
    return (f'Error from server (Forbidden): {what} is forbidden: User "{user}" cannot {verb} '
            f'resource "{full}" in API group "" in the namespace "{ns}"')


def test_a_viewer_in_one_namespace(shared_server, tmp_path) -> None:
    mine, other = new_namespace(shared_server, "view"), new_namespace(shared_server, "other")
    pod(shared_server, mine, "web")
    pod(shared_server, other, "db")
    user = unique("alice")
    alice = new_user(shared_server, tmp_path, user, "dev")
    shared_server.kubectl("create", "rolebinding", "viewers", "-n", mine, "--clusterrole=view",
                          f"--user={user}")
    whoami = as_user(shared_server, alice, "auth", "whoami").stdout.split()
    assert whoami[whoami.index("Username") + 1] == user
    listed = as_user(shared_server, alice, "get", "pods", "-n", mine, "-o", "name", check=True)
    assert listed.stdout.split() == ["pod/web"]
    elsewhere = as_user(shared_server, alice, "get", "pods", "-n", other)
    assert elsewhere.stderr.strip() == forbidden(user, "list", "pods", other)
    execed = as_user(shared_server, alice, "exec", "-n", mine, "web", "--", "true")
    assert execed.stderr.strip() == forbidden(user, "create", "pods", mine, "web", "exec")
    deleted = as_user(shared_server, alice, "delete", "pod", "web", "-n", mine)
    assert deleted.stderr.strip() == forbidden(user, "delete", "pods", mine, "web")
    assert as_user(shared_server, alice, "get", "namespace", mine, "-o", "name",
                   check=True).stdout.strip() == f"namespace/{mine}"
    assert as_user(shared_server, alice, "get", "namespace", other).stderr.strip() == \
        forbidden(user, "get", "namespaces", other, other)
    for args, answer in ((("get", "pods", "-n", mine), "yes"),
                         (("get", "pods", "-n", other), "no"),
                         (("create", "pods/exec", "-n", mine), "no"),
                         (("list", "secrets", "-n", mine), "no"),
                         (("list", "nodes"), "no")):
        assert as_user(shared_server, alice, "auth", "can-i", *args).stdout.strip() == answer
        assert shared_server.kubectl("auth", "can-i", *args, f"--as={user}",
                                     check=False).stdout.strip() == answer


def test_a_service_account_with_a_role(shared_server) -> None:
    ns = new_namespace(shared_server, "sarole")
    pod(shared_server, ns, "web")
    pod(shared_server, ns, "db")
    wait_until(lambda: shared_server.kubectl("get", "sa", "default", "-n", ns,
                                             check=False).returncode == 0,
               message="the default ServiceAccount")
    shared_server.kubectl("create", "role", "web-reader", "-n", ns, "--verb=get",
                          "--resource=pods", "--resource-name=web")
    shared_server.kubectl("create", "rolebinding", "web-reader", "-n", ns, "--role=web-reader",
                          f"--serviceaccount={ns}:default")
    token = shared_server.kubectl("create", "token", "default", "-n", ns).stdout.strip()
    account = f"system:serviceaccount:{ns}:default"
    assert shared_server.kubectl("--token", token, "get", "pod", "web", "-n", ns, "-o",
                                 "name").stdout.strip() == "pod/web"
    other = shared_server.kubectl("--token", token, "get", "pod", "db", "-n", ns, check=False)
    assert other.stderr.strip() == forbidden(account, "get", "pods", ns, "db")
    listed = shared_server.kubectl("--token", token, "get", "pods", "-n", ns, check=False)
    assert listed.stderr.strip() == forbidden(account, "list", "pods", ns)
    for args, answer in ((("get", "pod/web"), "yes"), (("get", "pod/db"), "no"),
                         (("list", "pods"), "no"), (("delete", "pod/web"), "no")):
        assert shared_server.kubectl("--token", token, "auth", "can-i", *args, "-n", ns,
                                     check=False).stdout.strip() == answer


def test_escalation_is_refused(shared_server, tmp_path) -> None:
    ns = new_namespace(shared_server, "esc")
    user = unique("ann")
    ann = new_user(shared_server, tmp_path, user)
    shared_server.kubectl("create", "rolebinding", "admins", "-n", ns, "--clusterrole=admin",
                          f"--user={user}")
    role = as_user(shared_server, ann, "create", "role", "nodes", "-n", ns, "--verb=get,list",
                   "--resource=nodes")
    assert role.stderr.strip() == (
        f'Error from server (Forbidden): roles.{RBAC} "nodes" is forbidden: user "{user}" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}')
    everything = as_user(shared_server, ann, "create", "rolebinding", "all", "-n", ns,
                         "--clusterrole=cluster-admin", "--user=bob")
    assert everything.stderr.strip().endswith(
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}')
    as_user(shared_server, ann, "create", "rolebinding", "editors", "-n", ns,
            "--clusterrole=edit", "--user=bob", check=True)
    missing = as_user(shared_server, ann, "create", "rolebinding", "x", "-n", ns,
                      "--role=missing", "--user=bob")
    assert missing.stderr.strip() == (
        f'error: failed to create rolebinding: roles.{RBAC} "missing" not found')
    assert shared_server.kubectl("auth", "can-i", "create", "pods", "-n", ns,
                                 "--as=bob").stdout.strip() == "yes"


def test_impersonation(shared_server, tmp_path) -> None:
    ns = new_namespace(shared_server, "imp")
    user = unique("ivy")
    ivy = new_user(shared_server, tmp_path, user)
    refused = shared_server.kubectl("get", "pods", "-n", ns, "--as=nobody", check=False)
    assert refused.stderr.strip() == forbidden("nobody", "list", "pods", ns)
    as_masters = shared_server.kubectl("get", "pods", "-n", ns, "--as=nobody",
                                       "--as-group=system:masters", check=False)
    assert as_masters.returncode == 0, as_masters.stderr
    not_allowed = as_user(shared_server, ivy, "get", "pods", "-n", ns, "--as=nobody")
    assert not_allowed.stderr.strip() == (
        f'Error from server (Forbidden): users "nobody" is forbidden: User "{user}" cannot '
        'impersonate resource "users" in API group "" at the cluster scope')
    shared_server.kubectl("create", "clusterrole", unique("impersonator"), "--verb=impersonate",
                          "--resource=users", "--resource-name=nobody")
    roles = get_json(shared_server, "clusterroles")["items"]
    name = next(r["metadata"]["name"] for r in roles
                if r["metadata"]["name"].startswith("impersonator-"))
    shared_server.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                          f"--user={user}")
    now_allowed = as_user(shared_server, ivy, "get", "pods", "-n", ns, "--as=nobody")
    assert now_allowed.stderr.strip() == forbidden("nobody", "list", "pods", ns)
    whoami = json.loads(as_user(shared_server, ivy, "auth", "whoami", "--as=nobody", "-o",
                                "json", check=True).stdout)["status"]["userInfo"]
    assert whoami == {"username": "nobody", "groups": ["system:authenticated"]}
    group = as_user(shared_server, ivy, "get", "pods", "-n", ns, "--as=nobody",
                    "--as-group=system:masters")
    assert 'groups "system:masters" is forbidden' in group.stderr


def test_aggregation_extends_the_default_roles(shared_server, tmp_path) -> None:
    def rules(role: str) -> list:
        return get_json(shared_server, "clusterrole", role).get("rules") or []
    wait_until(lambda: rules("admin") and rules("edit") and rules("view"),
               message="the aggregated admin, edit and view")
    assert rules("view") == rules("system:aggregate-to-view")
    assert all(rule in rules("edit") for rule in rules("view"))
    assert all(rule in rules("admin") for rule in rules("edit"))
    ns = new_namespace(shared_server, "agg")
    user = unique("vic")
    vic = new_user(shared_server, tmp_path, user)
    shared_server.kubectl("create", "rolebinding", "v", "-n", ns, "--clusterrole=view",
                          f"--user={user}")
    assert as_user(shared_server, vic, "auth", "can-i", "list", "leases.coordination.k8s.io",
                   "-n", ns).stdout.strip() == "no"
    extension = unique("view-leases")
    shared_server.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
        "metadata": {"name": extension, "labels": {f"{RBAC}/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                   "verbs": ["get", "list", "watch"]}]}))
    wait_until(lambda: as_user(shared_server, vic, "auth", "can-i", "list",
                               "leases.coordination.k8s.io", "-n", ns).stdout.strip() == "yes",
               message="view to gather the new role's rules")
    shared_server.kubectl("delete", "clusterrole", extension)
    wait_until(lambda: as_user(shared_server, vic, "auth", "can-i", "list",
                               "leases.coordination.k8s.io", "-n", ns).stdout.strip() == "no",
               message="view to drop the deleted role's rules")


def test_a_binding_to_a_missing_role_says_so(shared_server, tmp_path) -> None:
    ns = new_namespace(shared_server, "gone")
    user = unique("gil")
    gil = new_user(shared_server, tmp_path, user)
    shared_server.kubectl("create", "rolebinding", "r", "-n", ns, "--role=gone",
                          f"--user={user}")
    refused = as_user(shared_server, gil, "get", "pods", "-n", ns)
    assert refused.stderr.strip() == (forbidden(user, "list", "pods", ns) +
                                      f': RBAC: role.{RBAC} "gone" not found')


def test_tokens_are_revoked_and_expire(shared_server, tmp_path) -> None:
    user = unique("tom")
    path = new_user(shared_server, tmp_path, user)
    assert as_user(shared_server, path, "auth", "whoami").returncode == 0
    token_id = next(line.split()[0] for line in podling(shared_server, "token", "list")
                    .stdout.splitlines() if f" {user} " in f" {line} ")
    assert podling(shared_server, "token", "delete", token_id).stdout.strip() == \
        f"token {token_id} deleted"
    revoked = as_user(shared_server, path, "auth", "whoami")
    assert revoked.stderr.strip() == \
        "error: You must be logged in to the server (Unauthorized)"
    short = str(tmp_path / "short.kubeconfig")
    podling(shared_server, "token", "create", user, "--ttl", "1s", "--write-kubeconfig", short)
    wait_until(lambda: as_user(shared_server, short, "auth", "whoami").returncode == 1,
               timeout=10, message="the token to expire")
    again = podling(shared_server, "token", "delete", token_id, check=False)
    assert (again.returncode, again.stderr.strip()) == (
        1, f"podling token delete: token '{token_id}' not found")


def test_a_user_from_a_client_certificate(shared_server, tmp_path) -> None:
    ns = new_namespace(shared_server, "cert")
    user = unique("carol")
    path = str(tmp_path / "carol.kubeconfig")
    podling(shared_server, "kubeconfig", user, "--group", "ops,audit", "-o", path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    whoami = json.loads(as_user(shared_server, path, "auth", "whoami", "-o", "json",
                                check=True).stdout)["status"]["userInfo"]
    assert whoami == {"username": user, "groups": ["ops", "audit", "system:authenticated"]}
    assert as_user(shared_server, path, "get", "pods", "-n", ns).stderr.strip() == \
        forbidden(user, "list", "pods", ns)
    shared_server.kubectl("create", "rolebinding", "ops", "-n", ns, "--clusterrole=view",
                          "--group=ops")
    assert as_user(shared_server, path, "get", "pods", "-n", ns).returncode == 0


def test_tables_and_can_i_list(shared_server, tmp_path) -> None:
    ns = new_namespace(shared_server, "tbl")
    shared_server.kubectl("create", "rolebinding", "mixed", "-n", ns, "--clusterrole=view",
                          "--user=u1", "--user=u2", "--group=g1",
                          f"--serviceaccount={ns}:default")
    lines = shared_server.kubectl("get", "rolebinding", "mixed", "-n", ns, "-o", "wide"
                                  ).stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    cells = lines[1].split()
    assert cells[:2] == ["mixed", "ClusterRole/view"]
    assert cells[3:] == ["u1,", "u2", "g1", f"{ns}/default"]
    header = shared_server.kubectl("get", "clusterroles", "view").stdout.split("\n")[0]
    assert header.split() == ["NAME", "CREATED", "AT"]
    user = unique("lee")
    lee = new_user(shared_server, tmp_path, user)
    listed = as_user(shared_server, lee, "auth", "can-i", "--list", "-n", ns,
                     check=True).stdout.splitlines()
    assert listed[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names",
                                 "Verbs"]
    assert any(line.split() == ["selfsubjectrulesreviews.authorization.k8s.io", "[]", "[]",
                                "[create]"] for line in listed)
    assert not any(line.startswith("pods ") for line in listed)


def test_bad_rbac_objects_are_refused(shared_server) -> None:
    ns = new_namespace(shared_server, "bad")
    bad_ref = shared_server.kubectl("create", "-f", "-", check=False, input=json.dumps({
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": unique("crb")},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "x"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]}))
    assert 'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"' in \
        bad_ref.stderr
    assert "subjects[0].namespace: Required value" in bad_ref.stderr
    urls = shared_server.kubectl("create", "-f", "-", check=False, input=json.dumps({
        "apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "r", "namespace": ns},
        "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}))
    assert ('rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules '
            'cannot apply to non-resource URLs') in urls.stderr
    shared_server.kubectl("create", "rolebinding", "fixed", "-n", ns, "--clusterrole=view",
                          "--user=u")
    changed = shared_server.kubectl("patch", "rolebinding", "fixed", "-n", ns, "--type=merge",
                                    "-p", '{"roleRef":{"name":"edit"}}', check=False)
    assert changed.stderr.strip() == (
        f'The RoleBinding "fixed" is invalid: roleRef: Invalid value: rbac.RoleRef{{APIGroup:'
        f'"{RBAC}", Kind:"ClusterRole", Name:"edit"}}: cannot change roleRef')


def access_review(server, review: dict, kubeconfig: str = "") -> subprocess.CompletedProcess:
    """`kubectl create -f - -o json` of a (Local)SubjectAccessReview, as admin or a user."""
    prefix = ("--kubeconfig", kubeconfig) if kubeconfig else ()
    return server.kubectl(*prefix, "create", "-f", "-", "-o", "json", check=False,
                          input=json.dumps({"apiVersion": "authorization.k8s.io/v1", **review}))


def test_subject_access_reviews_ask_about_other_users(shared_server, tmp_path) -> None:
    mine, other = new_namespace(shared_server, "sar"), new_namespace(shared_server, "sar")
    user = unique("sam")
    sam = new_user(shared_server, tmp_path, user)
    shared_server.kubectl("create", "rolebinding", "viewers", "-n", mine, "--clusterrole=view",
                          f"--user={user}")
    shared_server.kubectl("create", "rolebinding", "admins", "-n", other,
                          "--clusterrole=admin", f"--user={user}")

    def asks(kind: str, ns: str, verb: str, *, by: str = "", **spec) -> dict:
        meta = {"metadata": {"namespace": ns}} if kind.startswith("Local") else {}
        answer = access_review(shared_server, {"kind": kind, **meta, "spec": {
            "user": user, "resourceAttributes": {"namespace": ns, "verb": verb,
                                                 "resource": "pods"}, **spec}}, by)
        assert answer.returncode == 0, answer.stderr
        return json.loads(answer.stdout)["status"]

    assert asks("SubjectAccessReview", mine, "list") == {"allowed": True, "reason": (
        f'RBAC: allowed by RoleBinding "viewers/{mine}" of ClusterRole "view" to User '
        f'"{user}"')}
    assert asks("SubjectAccessReview", mine, "delete") == {"allowed": False}
    assert asks("SubjectAccessReview", other, "delete")["allowed"] is True
    # the groups are the review's own: system:masters makes anyone an admin
    assert asks("SubjectAccessReview", "default", "delete", groups=["system:masters"])[
        "allowed"] is True
    assert asks("LocalSubjectAccessReview", mine, "get")["allowed"] is True
    # a namespace's admin may ask there (the default admin role), a viewer may not
    assert asks("LocalSubjectAccessReview", other, "delete", by=sam)["allowed"] is True
    refused = access_review(shared_server, {"kind": "LocalSubjectAccessReview", "metadata": {
        "namespace": mine}, "spec": {"user": "x", "resourceAttributes": {"namespace": mine}}},
        sam)
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": '
        'localsubjectaccessreviews.authorization.k8s.io is forbidden: User "' + user +
        '" cannot create resource "localsubjectaccessreviews" in API group '
        f'"authorization.k8s.io" in the namespace "{mine}"')


def test_bad_subject_access_reviews_are_refused(shared_server) -> None:
    ns = new_namespace(shared_server, "sarbad")
    nobody = access_review(shared_server, {"kind": "SubjectAccessReview", "spec": {
        "resourceAttributes": {"verb": "get", "resource": "pods"}}})
    assert nobody.stderr.strip() == (
        'The SubjectAccessReview "" is invalid: spec.user: Invalid value: "": at least one '
        'of user or group must be specified')
    local = access_review(shared_server, {"kind": "LocalSubjectAccessReview", "metadata": {
        "namespace": ns}, "spec": {"user": "a", "nonResourceAttributes": {"path": "/x",
                                                                          "verb": "get"}}})
    assert local.stderr.strip() == (
        'The LocalSubjectAccessReview "" is invalid: spec.nonResourceAttributes: Invalid '
        'value: "{\\"path\\":\\"/x\\",\\"verb\\":\\"get\\"}": disallowed on this kind of '
        'request')
    elsewhere = access_review(shared_server, {"kind": "LocalSubjectAccessReview", "metadata": {
        "namespace": ns}, "spec": {"user": "a", "resourceAttributes": {"namespace": "other"}}})
    assert 'spec.resourceAttributes.namespace: Invalid value: "other": must match ' \
        'metadata.namespace' in elsewhere.stderr
