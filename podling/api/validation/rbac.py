"""Role, ClusterRole, RoleBinding and ClusterRoleBinding validation (pkg/apis/rbac/validation,
1.32). The objects are already defaulted (:func:`podling.api.defaults.default_rbac_binding`).

Names are path segments (not ``.`` or ``..``, no ``/`` or ``%``); a rule names verbs and
either resources of API groups or, in a ClusterRole only, non-resource URLs; a binding's
roleRef names a Role or ClusterRole of ``rbac.authorization.k8s.io`` and cannot change.
"""

from __future__ import annotations

from typing import Any

from podling.api.errors import Cause, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (as_dict, as_list, as_str, child, dicts, index,
                                          invalid_raw)
from podling.api.validation.meta import validate_object_meta, validate_object_meta_update
from podling.api.validation.scheduling import validate_label_selector

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]


def path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """apimachinery's IsValidPathSegmentName (for a prefix: only the character checks)."""
    errs = []
    if not prefix and name in (".", ".."):
        errs.append(f"may not be '{name}'")
    errs += [f"may not contain '{c}'" for c in "/%" if c in name]
    return errs


def _meta(obj: dict[str, Any], namespaced: bool) -> list[Cause]:
    return validate_object_meta(as_dict(obj.get("metadata")), namespaced=namespaced,
                                name_fn=path_segment_name, kube_finalizers=False)


def validate_policy_rule(rule: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    errs: list[Cause] = []
    if not as_list(rule.get("verbs")):
        errs.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    if urls:
        shown = _go_strings(urls)
        if namespaced:
            errs.append(invalid_raw(child(path, "nonResourceURLs"), shown,
                                    "namespaced rules cannot apply to non-resource URLs"))
        if any(as_list(rule.get(f)) for f in ("apiGroups", "resources", "resourceNames")):
            errs.append(invalid_raw(child(path, "nonResourceURLs"), shown,
                                    "rules cannot apply to both regular resources and "
                                    "non-resource URLs"))
        return errs
    if not as_list(rule.get("apiGroups")):
        errs.append(required(child(path, "apiGroups"),
                             "resource rules must supply at least one api group"))
    if not as_list(rule.get("resources")):
        errs.append(required(child(path, "resources"),
                             "resource rules must supply at least one resource"))
    return errs


def _go_quoted(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_strings(values: list[Any]) -> str:
    """A list of strings as Go's %#v prints a []string: ``[]string{"/a", "/b"}``."""
    return "[]string{" + ", ".join(_go_quoted(v) for v in values) + "}"


def _rules(obj: dict[str, Any], namespaced: bool) -> list[Cause]:
    return [cause for i, rule in enumerate(dicts(obj.get("rules")))
            for cause in validate_policy_rule(rule, namespaced, index("rules", i))]


def validate_role(role: dict[str, Any]) -> list[Cause]:
    return _meta(role, True) + _rules(role, True)


def validate_cluster_role(role: dict[str, Any]) -> list[Cause]:
    errs = _meta(role, False) + _rules(role, False)
    aggregation = role.get("aggregationRule")
    if isinstance(aggregation, dict):
        selectors = as_list(aggregation.get("clusterRoleSelectors"))
        if not selectors:
            errs.append(required("aggregationRule.clusterRoleSelectors",
                                 "at least one clusterRoleSelector required if aggregationRule "
                                 "is non-nil"))
        for i, selector in enumerate(selectors):
            errs += validate_label_selector(selector,
                                            index("aggregationRule.clusterRoleSelectors", i))
    return errs


def validate_subject(subject: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    errs: list[Cause] = []
    name, kind, group = (as_str(subject.get(f)) for f in ("name", "kind", "apiGroup"))
    if not name:
        errs.append(required(child(path, "name")))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(child(path, "name"), name, m)
                     for m in fmt.name_is_dns_subdomain(name, False)]
        if group:
            errs.append(not_supported(child(path, "apiGroup"), group, [""]))
        if not namespaced and not as_str(subject.get("namespace")):
            errs.append(required(child(path, "namespace")))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(not_supported(child(path, "apiGroup"), group, [GROUP]))
    else:
        errs.append(not_supported(child(path, "kind"), kind, SUBJECT_KINDS))
    return errs


def _binding(binding: dict[str, Any], namespaced: bool) -> list[Cause]:
    errs = _meta(binding, namespaced)
    ref = as_dict(binding.get("roleRef"))
    group, kind, name = (as_str(ref.get(f)) for f in ("apiGroup", "kind", "name"))
    if group != GROUP:
        errs.append(not_supported("roleRef.apiGroup", group, [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if kind not in kinds:
        errs.append(not_supported("roleRef.kind", kind, kinds))
    if not name:
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid("roleRef.name", name, m) for m in path_segment_name(name)]
    for i, subject in enumerate(dicts(binding.get("subjects"))):
        errs += validate_subject(subject, namespaced, index("subjects", i))
    return errs


def validate_role_binding(binding: dict[str, Any]) -> list[Cause]:
    return _binding(binding, True)


def validate_cluster_role_binding(binding: dict[str, Any]) -> list[Cause]:
    return _binding(binding, False)


def validate_update(new: dict[str, Any], old: dict[str, Any], validate: Any) -> list[Cause]:
    """Any RBAC kind's update: the metadata rules, a roleRef that stays, then ``validate``."""
    errs = validate_object_meta_update(as_dict(new.get("metadata")),
                                       as_dict(old.get("metadata")))
    ref = as_dict(new.get("roleRef"))
    if "roleRef" in old and ref != as_dict(old.get("roleRef")):
        shown = ", ".join(f"{field}:{_go_quoted(as_str(ref.get(key)))}" for field, key in
                          (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name")))
        errs.append(invalid_raw("roleRef", f"rbac.RoleRef{{{shown}}}", "cannot change roleRef"))
    return errs + [c for c in validate(new) if not c.field.startswith("metadata")]
