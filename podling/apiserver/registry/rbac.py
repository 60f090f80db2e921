"""Roles, ClusterRoles, RoleBindings and ClusterRoleBindings: validation and Kubernetes'
escalation prevention.

A user may create or change a role only with rules they hold themselves in its namespace,
or with the ``escalate`` verb on roles / clusterroles; a binding only to a role whose rules
they hold, or with the ``bind`` verb on that role. Otherwise the write is a 403:

    rolebindings.rbac.authorization.k8s.io "x" is forbidden: user "bob" (groups=["dev"
    "system:authenticated"]) is attempting to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["pods"], Verbs:["delete"]}

system:masters is never checked; neither is a change that touches only what garbage
collection changes (finalizers, owner references). Without a ``policy`` (unit tests of the
store alone) nothing is checked.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from ...api import errors, rbac
from ...api.errors import Cause
from ...api.resources import Resource
from ...api.validation import rbac as validation
from ..auth import current_user
from ..authz import MASTERS_GROUP, Attributes, Subject
from .strategy import Obj, Strategy

Validate = Callable[[dict[str, Any]], list[Cause]]


class RbacPolicy(Protocol):
    """What escalation checks ask the RBAC authorizer (:class:`..rbac.RbacAuthorizer`)."""

    def decide(self, user: Subject, attrs: Attributes) -> tuple[bool, str]: ...

    def rules_for(self, user: Subject, namespace: str | None
                  ) -> tuple[list[rbac.Rule], list[LookupError]]: ...

    def role_rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[rbac.Rule]: ...


class _RbacStrategy(Strategy):
    validate_fn: Validate

    def __init__(self, resource: Resource, policy: RbacPolicy | None = None) -> None:
        super().__init__(resource)
        self.policy = policy

    def validate(self, obj: Obj) -> list[Cause]:
        return self.validate_fn(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_update(new, old, self.validate_fn)

    async def validate_admission(self, obj: Obj) -> list[str]:
        self._check(obj, None)
        return []

    def validate_update_admission(self, new: Obj, old: Obj, context: Any) -> list[str]:
        if not _only_gc_fields_changed(new, old):
            self._check(new, old)
        return []

    def _check(self, obj: Obj, old: Obj | None) -> None:
        user = current_user.get()
        if self.policy is None or user is None or user.admin or MASTERS_GROUP in user.groups:
            return
        self.check_escalation(self.policy, user, obj, old)

    def check_escalation(self, policy: RbacPolicy, user: Subject, obj: Obj,
                         old: Obj | None) -> None:
        """Raise a 403 (or 404) unless ``user`` may write ``obj`` (``old``: the stored
        object of an update, None on create)."""
        raise NotImplementedError

    def _forbidden(self, obj: Obj, message: str) -> errors.ApiError:
        name = str((obj.get("metadata") or {}).get("name") or "")
        qualified = f"{self.resource.name}.{self.resource.group}"
        return errors.ApiError(403, "Forbidden", f'{qualified} "{name}" is forbidden: {message}',
                               {"name": name, "group": self.resource.group,
                                "kind": self.resource.name})

    def _confirm_no_escalation(self, policy: RbacPolicy, user: Subject, obj: Obj,
                               rules: list[rbac.Rule]) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        held, problems = policy.rules_for(user, namespace)
        missing = rbac.uncovered(held, rules)
        if not missing:
            return
        lines = sorted({rbac.compact(rule) for rule in rbac.merge_verbs(missing)})
        groups = " ".join(rbac.quoted(g) for g in user.groups)
        message = (f"user {rbac.quoted(user.name)} (groups=[{groups}]) is attempting to grant "
                   "RBAC permissions not currently held:\n" + "\n".join(lines))
        if problems:
            texts = [getattr(p, "stored_text", str(p)) for p in problems]
            message += f"; resolution errors: [{errors.aggregate(texts)}]"
        raise self._forbidden(obj, message)


class RoleStrategy(_RbacStrategy):
    """Roles and ClusterRoles: the writer holds the rules, or may ``escalate``."""

    def __init__(self, resource: Resource, policy: RbacPolicy | None = None) -> None:
        super().__init__(resource, policy)
        self.validate_fn = validation.validate_role if resource.namespaced \
            else validation.validate_cluster_role

    def check_escalation(self, policy: RbacPolicy, user: Subject, obj: Obj,
                         old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        escalate = Attributes(verb="escalate", resource=self.resource.name,
                              group=self.resource.group, namespace=meta.get("namespace"),
                              name=meta.get("name") if old is not None else None)
        if not policy.decide(user, escalate)[0]:
            rules = [r for r in obj.get("rules") or [] if isinstance(r, dict)]
            self._confirm_no_escalation(policy, user, obj, rules)
        if _aggregates(obj) or (old is not None and _aggregates(old)):
            held, _ = policy.rules_for(user, None)
            if rbac.uncovered(held, FULL_AUTHORITY):
                raise self._forbidden(obj, "must have cluster-admin privileges to use the "
                                           "aggregationRule")


class BindingStrategy(_RbacStrategy):
    """RoleBindings and ClusterRoleBindings: the writer may ``bind`` the role, or holds its
    rules."""

    def __init__(self, resource: Resource, policy: RbacPolicy | None = None) -> None:
        super().__init__(resource, policy)
        self.validate_fn = validation.validate_role_binding if resource.namespaced \
            else validation.validate_cluster_role_binding

    def default(self, obj: Obj) -> None:
        rbac.default_binding(obj)

    def check_escalation(self, policy: RbacPolicy, user: Subject, obj: Obj,
                         old: Obj | None) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        ref = obj.get("roleRef") or {}
        bind = Attributes(verb="bind", group=rbac.GROUP,
                          resource="roles" if ref.get("kind") == "Role" else "clusterroles",
                          namespace=namespace or None, name=str(ref.get("name") or ""))
        if policy.decide(user, bind)[0]:
            return
        try:
            rules = policy.role_rules(ref, namespace)
        except LookupError as exc:  # the registry's answer: the role is not found
            kind = bind.resource
            raise errors.ApiError(404, "NotFound", getattr(exc, "stored_text", str(exc)),
                                  {"name": bind.name, "group": rbac.GROUP, "kind": kind}
                                  ) from None
        self._confirm_no_escalation(policy, user, obj, rules)


#: what a writer of an aggregating ClusterRole must hold (cluster-admin's rules)
FULL_AUTHORITY: list[rbac.Rule] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                                   {"verbs": ["*"], "nonResourceURLs": ["*"]}]


def _aggregates(role: Obj) -> bool:
    return bool(((role.get("aggregationRule") or {}).get("clusterRoleSelectors")))


def _only_gc_fields_changed(new: Obj, old: Obj) -> bool:
    """Whether an update changes nothing but finalizers and owner references (and the
    bookkeeping of metadata), as garbage collection does."""
    def rest(obj: Obj) -> Obj:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items()
                if k not in ("finalizers", "ownerReferences", "resourceVersion",
                             "managedFields", "generation")}
        return {**obj, "metadata": meta}
    return rest(new) == rest(old)
