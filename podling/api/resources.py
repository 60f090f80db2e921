"""The API resources podling serves: names, kinds, scope, verbs and subresources.

One table feeds routing, discovery (aggregated and legacy) and the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import schema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    name: str  # plural, e.g. "pods"
    singular: str
    kind: str
    namespaced: bool
    type_name: str  # OpenAPI definition of the kind
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = field(default_factory=tuple)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


#: on a Node: where the API server reaches that node's API (``https://host:port``), e.g. logs
NODE_API_ANNOTATION = "podling.io/node-api"
#: on a Node: a Unix socket on the node's own host serving the same node API without TLS
#: (root only; same token). An API server on that host streams through it (exec, logs, …).
NODE_API_SOCKET_ANNOTATION = "podling.io/node-api-socket"

_STATUS = ("get", "patch", "update")
_CONNECT = ("create", "get")  # streaming subresources: a WebSocket GET or a SPDY POST
#: subresources that upgrade the connection; a GET of one is authorized as ``create``
STREAMING_SUBRESOURCES = ("exec", "attach", "portforward")

PODS = Resource("", "v1", "pods", "pod", "Pod", True, schema.POD,
                short_names=("po",), categories=("all",),
                subresources=(Subresource("status", "Pod", _STATUS),
                              Subresource("binding", "Binding", ("create",)),
                              Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
                              Subresource("ephemeralcontainers", "Pod", _STATUS),
                              Subresource("log", "Pod", ("get",)),
                              Subresource("exec", "PodExecOptions", _CONNECT),
                              Subresource("attach", "PodAttachOptions", _CONNECT),
                              Subresource("portforward", "PodPortForwardOptions", _CONNECT)))
NODES = Resource("", "v1", "nodes", "node", "Node", False, schema.NODE,
                 short_names=("no",), subresources=(Subresource("status", "Node", _STATUS),))
NAMESPACES = Resource("", "v1", "namespaces", "namespace", "Namespace", False, schema.NAMESPACE,
                      verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                      short_names=("ns",),
                      subresources=(Subresource("status", "Namespace", _STATUS),
                                    Subresource("finalize", "Namespace", ("update",))))
CONFIG_MAPS = Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, schema.CONFIG_MAP,
                       short_names=("cm",))
SECRETS = Resource("", "v1", "secrets", "secret", "Secret", True, schema.SECRET)
#: authentication.k8s.io/v1 TokenRequest, posted to serviceaccounts/{name}/token
AUTHENTICATION_GROUP = "authentication.k8s.io"
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True,
                            schema.SERVICE_ACCOUNT, short_names=("sa",),
                            subresources=(Subresource("token", "TokenRequest", ("create",),
                                                      AUTHENTICATION_GROUP, "v1"),))
EVENTS = Resource("", "v1", "events", "event", "Event", True, schema.EVENT, short_names=("ev",))
BINDINGS = Resource("", "v1", "bindings", "binding", "Binding", True, schema.BINDING,
                    verbs=("create",))
LEASES = Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, schema.LEASE)
SELF_SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
    "SelfSubjectAccessReview", False, schema.SELF_SUBJECT_ACCESS_REVIEW, verbs=("create",))

#: ``kubectl auth whoami``: who the request's credentials authenticate as (never stored)
SELF_SUBJECT_REVIEWS = Resource(
    AUTHENTICATION_GROUP, "v1", "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview",
    False, schema.SELF_SUBJECT_REVIEW, verbs=("create",))

#: whom a bearer token authenticates as, asked by a client holding the right to (never stored)
TOKEN_REVIEWS = Resource(
    AUTHENTICATION_GROUP, "v1", "tokenreviews", "tokenreview", "TokenReview", False,
    schema.TOKEN_REVIEW, verbs=("create",))

#: ``kubectl auth can-i --list``: what the requesting user may do in a namespace
SELF_SUBJECT_RULES_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview",
    "SelfSubjectRulesReview", False, schema.SELF_SUBJECT_RULES_REVIEW, verbs=("create",))
#: "may this user do X?", asked by a client holding the right to (never stored); the local
#: kind asks only about its own namespace
SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview",
    "SubjectAccessReview", False, schema.SUBJECT_ACCESS_REVIEW, verbs=("create",))
LOCAL_SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "localsubjectaccessreviews", "localsubjectaccessreview",
    "LocalSubjectAccessReview", True, schema.LOCAL_SUBJECT_ACCESS_REVIEW, verbs=("create",))

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = Resource(RBAC_GROUP, "v1", "roles", "role", "Role", True, schema.ROLE)
CLUSTER_ROLES = Resource(RBAC_GROUP, "v1", "clusterroles", "clusterrole", "ClusterRole", False,
                         schema.CLUSTER_ROLE)
ROLE_BINDINGS = Resource(RBAC_GROUP, "v1", "rolebindings", "rolebinding", "RoleBinding", True,
                         schema.ROLE_BINDING)
CLUSTER_ROLE_BINDINGS = Resource(RBAC_GROUP, "v1", "clusterrolebindings", "clusterrolebinding",
                                 "ClusterRoleBinding", False, schema.CLUSTER_ROLE_BINDING)
RBAC_RESOURCES = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)

RESOURCES: tuple[Resource, ...] = (PODS, NODES, NAMESPACES, CONFIG_MAPS, SECRETS,
                                   SERVICE_ACCOUNTS, EVENTS, BINDINGS, LEASES,
                                   SELF_SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_RULES_REVIEWS,
                                   SELF_SUBJECT_REVIEWS, TOKEN_REVIEWS, SUBJECT_ACCESS_REVIEWS,
                                   LOCAL_SUBJECT_ACCESS_REVIEWS) + RBAC_RESOURCES

GROUP_VERSIONS: tuple[str, ...] = ("v1", "coordination.k8s.io/v1", "authorization.k8s.io/v1",
                                   f"{AUTHENTICATION_GROUP}/v1", f"{RBAC_GROUP}/v1")


def find(group: str, version: str, name: str) -> Resource | None:
    """The resource served at ``/{group}/{version}/{name}``, or None."""
    for resource in RESOURCES + METRICS_RESOURCES:
        if (resource.group, resource.version, resource.name) == (group, version, name):
            return resource
    return None


def in_group_version(group_version: str) -> list[Resource]:
    return [r for r in RESOURCES + METRICS_RESOURCES if r.group_version == group_version]


# metrics.k8s.io (``kubectl top``): computed from the nodes' stats by
# podling.apiserver.metrics, never stored — kept out of RESOURCES (no registry store, no
# OpenAPI document), but routed and listed in discovery like metrics-server's APIService.
METRICS_GROUP = "metrics.k8s.io"
POD_METRICS = Resource(METRICS_GROUP, "v1beta1", "pods", "", "PodMetrics", True,
                       "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics",
                       verbs=("get", "list"))
NODE_METRICS = Resource(METRICS_GROUP, "v1beta1", "nodes", "", "NodeMetrics", False,
                        "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics",
                        verbs=("get", "list"))
METRICS_RESOURCES: tuple[Resource, ...] = (NODE_METRICS, POD_METRICS)

#: every group version discovery lists (GROUP_VERSIONS: the stored ones, with OpenAPI)
DISCOVERY_GROUP_VERSIONS: tuple[str, ...] = GROUP_VERSIONS + (f"{METRICS_GROUP}/v1beta1",)
