"""Authorization: may this user perform this request? (:func:`decide`)

The order is kube-apiserver's ``--authorization-mode=Node,RBAC`` behind its privileged
group; the first to allow decides, and a refusal carries the reasons of those that gave one:

* **admin** (group ``system:masters``) may do everything;
* a **node** ``system:node:<name>`` (group ``system:nodes``) gets what Kubernetes' Node
  authorizer plus NodeRestriction admission give a kubelet, reduced to what podling's agent
  uses — a node sees and writes only what is bound to it:

  ======================  =====================================  ==========================
  resource                verbs                                  only when
  ======================  =====================================  ==========================
  pods                    list, watch                            fieldSelector has
                                                                 ``spec.nodeName=<name>``
  pods                    get, watch (by name), delete           pod.spec.nodeName == name
  pods/status             get, update, patch                     pod.spec.nodeName == name
  pods/eviction           create                                 pod.spec.nodeName == name
  events                  create, update, patch, get, list,      —
                          watch
  nodes                   get, list, watch                       — (reads of all nodes)
  nodes, nodes/status     create, update, patch (nodes: also     the node's own name
                          get on status)
  leases (coordination)   get, create, update, patch, watch      namespace kube-node-lease,
                          (list/watch: fieldSelector             the node's own name
                          ``metadata.name=<name>``)
  secrets, configmaps,    get; list, watch with fieldSelector    a pod bound to the node
  serviceaccounts         ``metadata.name=<name>``               refers to it (Kubernetes'
                                                                 Node authorizer graph)
  serviceaccounts/token   create (with a TokenRequest bound to   a pod bound to the node
                          such a pod: :mod:`.tokenrequest`)      runs as that account
  ======================  =====================================  ==========================

  Anything else goes on to RBAC; a refusal is 403 with Kubernetes' message, e.g.
  ``pods "x" is forbidden: User "system:node:n1" cannot delete resource "pods" in API group
  "" in the namespace "default"``.

* a **bootstrap** user (the join secret, group ``system:bootstrappers``) may only exchange the
  secret for a node credential (:mod:`.nodeauth`); every resource request is denied.

* everyone else, service accounts and users of tokens or certificates included: what the
  roles bound to them allow (:mod:`.rbac`); by default, discovery and the self reviews.

Rules that depend on the object (a pod's ``spec.nodeName``) are decided on the stored object,
which the caller fetches when :func:`needs_object` says so; for a secret or a configmap that
"object" is ``{"items": [...]}``, the pods of its namespace bound to the node. Creates whose
name is only in the body (nodes, leases) are checked after decoding by :func:`check_create`.
Deviation from Kubernetes: a node asking about a pod that does not exist gets 404 (Kubernetes
answers 403), so the agent's "already gone" paths keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ..api import errors, references, selectors

NODE_USER_PREFIX = "system:node:"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
NODES_GROUP = "system:nodes"
MASTERS_GROUP = "system:masters"
BOOTSTRAP_GROUP = "system:bootstrappers"
NODE_LEASE_NAMESPACE = "kube-node-lease"
COORDINATION = "coordination.k8s.io"
READS = ("get", "list", "watch")
#: what a node reads only when one of its pods refers to it → the pod's names of them
POD_REFERENCED = {"secrets": references.secret_names,
                  "configmaps": references.config_map_names,
                  "serviceaccounts": references.service_account_names}
WRITES = ("create", "update", "patch")
#: non-resource paths only admins may get (``/debug/pods/timeline``)
ADMIN_ONLY_PATHS = ("/debug/",)


class Subject(Protocol):
    """What authorization needs to know about a user."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...

    @property
    def admin(self) -> bool: ...

    def extra_value(self, key: str) -> str: ...


@dataclass(frozen=True)
class Attributes:
    """One request, as SubjectAccessReview's resourceAttributes describe it."""

    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    field_selector: str = ""  # the raw ``fieldSelector`` of a list / watch
    path: str | None = None  # set for non-resource requests (``/healthz``)

    @classmethod
    def from_review(cls, spec: Mapping[str, Any]) -> Attributes:
        """From a SelfSubjectAccessReview spec (resource or non-resource attributes)."""
        resource = spec.get("resourceAttributes")
        if isinstance(resource, dict):
            fields = resource.get("fieldSelector") or {}
            return cls(verb=str(resource.get("verb") or ""),
                       resource=str(resource.get("resource") or ""),
                       group=str(resource.get("group") or ""),
                       namespace=resource.get("namespace") or None,
                       name=resource.get("name") or None,
                       subresource=resource.get("subresource") or None,
                       field_selector=str(fields.get("rawSelector") or ""))
        other = spec.get("nonResourceAttributes") or {}
        return cls(verb=str(other.get("verb") or ""), resource="",
                   path=str(other.get("path") or "/"))


def node_name_of(user: Subject) -> str | None:
    """The node a ``system:node:<name>`` user in group system:nodes speaks for, else None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
        return user.name[len(NODE_USER_PREFIX):] or None
    return None


def _token_create(attrs: Attributes) -> bool:
    return attrs.resource == "serviceaccounts" and attrs.subresource == "token" and \
        attrs.verb == "create" and bool(attrs.name) and bool(attrs.namespace)


def needs_object(user: Subject, attrs: Attributes) -> bool:
    """Whether the decision for ``user`` depends on the stored object named by ``attrs``
    (a node acting on one pod: fetch the pod), or on the node's pods (a node reading a
    secret or configmap, :func:`referenced_name` set: pass ``{"items": its pods bound to the
    node in attrs.namespace}``); give it to :func:`allowed`."""
    node = node_name_of(user)
    if node is None or attrs.group != "" or attrs.path is not None:
        return False
    if attrs.resource in POD_REFERENCED:
        return (_namespaced_read(attrs) and bool(referenced_name(attrs))) or \
            _token_create(attrs)
    return attrs.resource == "pods" and bool(attrs.name) and not _pod_list_by_node(attrs, node)


def referenced_name(attrs: Attributes) -> str | None:
    """The one secret / configmap a read names: by name, or a list / watch restricted to
    ``metadata.name=<name>`` (as the kubelet watches one object)."""
    if attrs.name:
        return attrs.name
    if attrs.verb in ("list", "watch"):
        return _field_value(attrs, attrs.resource, "metadata.name")
    return None


class RuleEvaluator(Protocol):
    """The RBAC authorizer (:class:`podling.apiserver.rbac.RbacAuthorizer`)."""

    def decide(self, user: Subject, attrs: Attributes) -> tuple[bool, str]: ...


def decide(user: Subject, attrs: Attributes, obj: Mapping[str, Any] | None = None,
           rbac: RuleEvaluator | None = None) -> tuple[bool, str]:
    """(allowed, reason): system:masters, then the Node authorizer, then RBAC, as
    kube-apiserver's ``--authorization-mode=Node,RBAC``; the reason is RBAC's (which grant
    allows, or which roles are missing) and the Node authorizer's refusal, "" for the
    others. ``obj`` is the stored object when :func:`needs_object` asked for it. Without
    ``rbac`` every authenticated user may get a non-resource path outside ``/debug/`` and
    nothing else."""
    if user.admin or MASTERS_GROUP in user.groups:
        return True, ""
    if BOOTSTRAP_GROUP in user.groups or "system:unauthenticated" in user.groups:
        return False, ""
    node = node_name_of(user)
    if node is not None and attrs.path is None and _node_allows(node, attrs, obj):
        return True, ""
    node_reason = _node_reason(user, attrs)
    if rbac is None:
        return (attrs.path is not None and attrs.verb == "get" and
                not attrs.path.startswith(ADMIN_ONLY_PATHS)), node_reason
    allowed_by_rbac, rbac_reason = rbac.decide(user, attrs)
    if allowed_by_rbac:
        return True, rbac_reason
    return False, "\n".join(r for r in (node_reason, rbac_reason) if r)


def allowed(user: Subject, attrs: Attributes, obj: Mapping[str, Any] | None = None,
            rbac: RuleEvaluator | None = None) -> bool:
    """Whether :func:`decide` allows the request."""
    return decide(user, attrs, obj, rbac)[0]


def _node_allows(node: str, attrs: Attributes, obj: Mapping[str, Any] | None) -> bool:
    if attrs.group == "" and attrs.resource == "pods":
        return _node_pods(node, attrs, obj)
    if attrs.group == "" and attrs.resource == "events":
        return not attrs.subresource and attrs.verb in READS + WRITES
    if attrs.group == "" and attrs.resource == "nodes":
        return _node_nodes(node, attrs)
    if attrs.group == COORDINATION and attrs.resource == "leases":
        return _node_leases(node, attrs)
    if attrs.group == "" and attrs.resource in POD_REFERENCED:
        return _node_referenced(node, attrs, obj)
    return False


def _node_referenced(node: str, attrs: Attributes, obj: Mapping[str, Any] | None) -> bool:
    """A secret / configmap / serviceaccount read that names one object some pod bound to
    ``node`` uses, or a token of a serviceaccount such a pod runs as."""
    name = referenced_name(attrs) if not _token_create(attrs) else attrs.name
    if not (_namespaced_read(attrs) or _token_create(attrs)) or not name or obj is None:
        return False
    names_of = POD_REFERENCED[attrs.resource]
    return any(((pod.get("spec") or {}).get("nodeName") or "") == node and name in names_of(pod)
               for pod in obj.get("items") or [])


def _namespaced_read(attrs: Attributes) -> bool:
    """A read of a namespaced object, not of a subresource."""
    return attrs.verb in READS and not attrs.subresource and bool(attrs.namespace)


def _pod_list_by_node(attrs: Attributes, node: str) -> bool:
    """A pod list / watch restricted to ``spec.nodeName=<node>`` (or its alias spec.host)."""
    if attrs.verb not in ("list", "watch") or attrs.subresource:
        return False
    return _field_value(attrs, "pods", "spec.nodeName") == node


def _field_value(attrs: Attributes, resource: str, field: str) -> str | None:
    try:
        parsed = selectors.check_field_selector(
            resource, selectors.parse_field_selector(attrs.field_selector))
    except selectors.SelectorError:
        return None
    return parsed.requires_exact_match(field)


def _node_pods(node: str, attrs: Attributes, obj: Mapping[str, Any] | None) -> bool:
    if _pod_list_by_node(attrs, node):
        return True
    if not attrs.name or obj is None or \
            ((obj.get("spec") or {}).get("nodeName") or "") != node:
        return False
    allowed_verbs = {None: ("get", "watch", "delete"), "status": ("get", "update", "patch"),
                     "eviction": ("create",)}.get(attrs.subresource, ())
    return attrs.verb in allowed_verbs


def _node_nodes(node: str, attrs: Attributes) -> bool:
    if attrs.subresource not in (None, "status"):
        return False
    if attrs.verb in READS and attrs.subresource is None:
        return True
    own = attrs.name == node
    if attrs.verb == "create":
        return attrs.subresource is None and attrs.name in (None, node)  # body checked later
    return own and attrs.verb in ("get", "update", "patch")


def _node_leases(node: str, attrs: Attributes) -> bool:
    if attrs.namespace != NODE_LEASE_NAMESPACE or attrs.subresource:
        return False
    if attrs.verb == "create":
        return attrs.name in (None, node)  # the body's name is checked by check_create
    if attrs.verb in ("list", "watch") and not attrs.name:
        return _field_value(attrs, "leases", "metadata.name") == node
    return attrs.name == node and attrs.verb in ("get", "update", "patch", "watch")


def check_create(user: Subject, attrs: Attributes, obj: Mapping[str, Any]) -> None:
    """NodeRestriction for creates whose name is in the body: a node creates only its own
    Node and Lease. Raises a 403 ApiError with Kubernetes' admission messages."""
    node = node_name_of(user)
    if node is None or user.admin:
        return
    name = str((obj.get("metadata") or {}).get("name") or "")
    if attrs.resource == "nodes" and attrs.group == "" and name != node:
        raise errors.ApiError(403, "Forbidden", f'nodes "{name}" is forbidden: node "{node}" '
                              f'is not allowed to modify node "{name}"',
                              {"name": name, "kind": "nodes"})
    if attrs.resource == "leases" and attrs.group == COORDINATION and name != node:
        raise errors.ApiError(403, "Forbidden", f'leases.{COORDINATION} "{name}" is forbidden: '
                              "can only access node lease with the same name as the requesting "
                              "node", {"name": name, "group": COORDINATION, "kind": "leases"})


def _node_reason(user: Subject, attrs: Attributes) -> str:
    """The Node authorizer's reason for refusing a node a secret or configmap."""
    node = node_name_of(user)
    if node is None or attrs.group != "" or attrs.resource not in POD_REFERENCED:
        return ""
    if attrs.resource == "serviceaccounts" and not _namespaced_read(attrs):
        if attrs.verb != "create" or not attrs.name:
            return "can only create tokens for individual service accounts"
        if attrs.subresource != "token":
            return "can only create token subresource of serviceaccount"
        return f"no relationship found between node '{node}' and this object"
    if attrs.verb not in READS:
        return "can only read resources of this type"
    if attrs.subresource:
        return "cannot read subresource"
    if not attrs.namespace:
        return "can only read namespaced object of this type"
    if not referenced_name(attrs):
        return "No Object name found"
    return f"no relationship found between node '{node}' and this object"


def forbidden(user: Subject, attrs: Attributes, reason: str = "") -> errors.ApiError:
    """The 403 Kubernetes answers when the authorizers say no (``reason``: theirs)."""
    why = f": {reason}" if reason else ""
    if attrs.path is not None:
        return errors.forbidden_request(
            f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"{why}')
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    message = (f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource '
               f'"{resource}" in API group "{attrs.group}" {scope}{why}')
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.group:
        details["group"] = attrs.group
    return errors.ApiError(403, "Forbidden", message, details)
