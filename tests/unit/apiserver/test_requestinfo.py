"""requestinfo.parse: URL × method → (resource, namespace, name, subresource, verb), or 404/405."""

from __future__ import annotations

import pytest

from podling.api.errors import ApiError
from podling.apiserver import requestinfo

# (method, path, query) → (resource, namespace, name, subresource, verb)
RESOLVED = [
    ("GET", "/api/v1/namespaces", {}, ("namespaces", None, None, None, "list")),
    ("GET", "/api/v1/namespaces/ns1", {}, ("namespaces", None, "ns1", None, "get")),
    ("PUT", "/api/v1/namespaces/ns1", {}, ("namespaces", None, "ns1", None, "update")),
    ("DELETE", "/api/v1/namespaces/ns1", {}, ("namespaces", None, "ns1", None, "delete")),
    ("GET", "/api/v1/namespaces/ns1/status", {}, ("namespaces", None, "ns1", "status", "get")),
    ("PUT", "/api/v1/namespaces/ns1/status", {},
     ("namespaces", None, "ns1", "status", "update")),
    ("PUT", "/api/v1/namespaces/ns1/finalize", {},
     ("namespaces", None, "ns1", "finalize", "update")),
    ("POST", "/api/v1/namespaces", {}, ("namespaces", None, None, None, "create")),
    ("GET", "/api/v1/namespaces/default/pods", {}, ("pods", "default", None, None, "list")),
    ("POST", "/api/v1/namespaces/default/pods", {}, ("pods", "default", None, None, "create")),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, ("pods", "default", "web", None, "get")),
    ("PUT", "/api/v1/namespaces/default/pods/web", {},
     ("pods", "default", "web", None, "update")),
    ("PATCH", "/api/v1/namespaces/default/pods/web", {},
     ("pods", "default", "web", None, "patch")),
    ("DELETE", "/api/v1/namespaces/default/pods/web", {},
     ("pods", "default", "web", None, "delete")),
    ("DELETE", "/api/v1/namespaces/default/pods", {},
     ("pods", "default", None, None, "deletecollection")),
    ("GET", "/api/v1/namespaces/default/pods/web/status", {},
     ("pods", "default", "web", "status", "get")),
    ("PATCH", "/api/v1/namespaces/default/pods/web/status", {},
     ("pods", "default", "web", "status", "patch")),
    ("POST", "/api/v1/namespaces/default/pods/web/binding", {},
     ("pods", "default", "web", "binding", "create")),
    ("POST", "/api/v1/namespaces/default/bindings", {},
     ("bindings", "default", None, None, "create")),
    ("GET", "/api/v1/pods", {}, ("pods", None, None, None, "list")),
    ("GET", "/api/v1/pods", {"watch": "true"}, ("pods", None, None, None, "watch")),
    ("GET", "/api/v1/watch/pods", {}, ("pods", None, None, None, "watch")),
    ("GET", "/api/v1/watch/namespaces/default/pods", {},
     ("pods", "default", None, None, "watch")),
    ("GET", "/api/v1/watch/namespaces/default/pods/web", {},
     ("pods", "default", "web", None, "watch")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"},
     ("pods", "default", None, None, "watch")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"},
     ("pods", "default", None, None, "watch")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "false"},
     ("pods", "default", None, None, "list")),
    ("GET", "/api/v1/nodes", {}, ("nodes", None, None, None, "list")),
    ("GET", "/api/v1/nodes/n1", {}, ("nodes", None, "n1", None, "get")),
    ("PUT", "/api/v1/nodes/n1/status", {}, ("nodes", None, "n1", "status", "update")),
    ("GET", "/api/v1/watch/namespaces", {}, ("namespaces", None, None, None, "watch")),
    ("GET", "/api/v1/namespaces/default/events", {}, ("events", "default", None, None, "list")),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {},
     ("leases", "kube-node-lease", "n1", None, "get")),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {},
     ("leases", "kube-node-lease", "n1", None, "update")),
    ("GET", "/apis/coordination.k8s.io/v1/leases", {}, ("leases", None, None, None, "list")),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {},
     ("selfsubjectaccessreviews", None, None, None, "create")),
    # a trailing slash is the same resource
    ("GET", "/api/v1/namespaces/default/pods/", {}, ("pods", "default", None, None, "list")),
]


@pytest.mark.parametrize("method,path,query,expected", RESOLVED,
                         ids=[f"{m} {p}{'?' + str(q) if q else ''}" for m, p, q, _ in RESOLVED])
def test_resolves(method: str, path: str, query: dict[str, str],
                  expected: tuple[str, str | None, str | None, str | None, str]) -> None:
    info = requestinfo.parse(method, path, query)
    assert (info.resource.name, info.namespace, info.name, info.subresource,
            info.verb) == expected


def test_group_and_version_come_from_the_path() -> None:
    info = requestinfo.parse(
        "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {})
    assert (info.resource.group, info.resource.version, info.resource.kind) == \
        ("coordination.k8s.io", "v1", "Lease")


NOT_FOUND = [
    ("GET", "/"),
    ("GET", "/api"),
    ("GET", "/apis/coordination.k8s.io"),
    ("GET", "/api/v2/pods"),
    ("GET", "/api/v1/deployments"),
    ("GET", "/apis/apps/v1/namespaces/default/deployments"),
    ("GET", "/apis/coordination.k8s.io/v1/pods"),  # right name, wrong group
    ("GET", "/api/v1/leases"),  # right name, wrong group
    ("GET", "/api/v1/namespaces/default/widgets"),
    ("GET", "/api/v1/namespaces/default/pods/web/proxy"),  # unknown subresource
    ("GET", "/api/v1/nodes/n1/binding"),  # a subresource of another resource
    ("GET", "/api/v1/namespaces/ns1/frobnicate"),
    ("GET", "/api/v1/namespaces/default/pods/web/status/extra"),
    # cluster-scoped resources under a namespace
    ("GET", "/api/v1/namespaces/default/nodes"),
    ("GET", "/api/v1/namespaces/default/nodes/n1"),
    ("GET", "/api/v1/namespaces/default/namespaces/ns1"),
    ("POST", "/apis/authorization.k8s.io/v1/namespaces/default/selfsubjectaccessreviews"),
    # a namespaced object can only be addressed inside its namespace
    ("GET", "/api/v1/pods/web"),
]


@pytest.mark.parametrize("method,path", NOT_FOUND, ids=[p for _, p in NOT_FOUND])
def test_unknown_paths_are_404(method: str, path: str) -> None:
    with pytest.raises(ApiError) as caught:
        requestinfo.parse(method, path, {})
    assert (caught.value.code, caught.value.reason) == (404, "NotFound")
    assert caught.value.status()["message"] == "the server could not find the requested resource"


METHOD_NOT_ALLOWED = [
    ("DELETE", "/api/v1/namespaces"),  # namespaces have no deletecollection
    ("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
    ("GET", "/api/v1/namespaces/default/bindings"),
    ("OPTIONS", "/api/v1/namespaces/default/pods"),
    # subresources serve only their own verbs
    ("GET", "/api/v1/namespaces/ns1/finalize"),
    ("GET", "/api/v1/namespaces/default/pods/web/binding"),
    # at the all-namespaces path Kubernetes serves only list and watch
    ("POST", "/api/v1/pods"),
    ("DELETE", "/api/v1/pods"),
]


@pytest.mark.parametrize("method,path", METHOD_NOT_ALLOWED,
                         ids=[f"{m} {p}" for m, p in METHOD_NOT_ALLOWED])
def test_unsupported_methods_are_405(method: str, path: str) -> None:
    with pytest.raises(ApiError) as caught:
        requestinfo.parse(method, path, {})
    assert (caught.value.code, caught.value.reason) == (405, "MethodNotAllowed")
