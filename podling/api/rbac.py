"""RBAC's rules, as data: which rule allows which request, to whom a binding applies, and
whether one set of rules covers another (``rbac.authorization.k8s.io/v1``).

Everything here is pure and works on the JSON forms of PolicyRules, Subjects and bindings.
A request is described by :class:`Request` (the attributes authorization sees). The
authorizer that keeps the stored roles and bindings is :mod:`podling.apiserver.rbac`.

Matching, as Kubernetes' RBAC does it:

* a verb, an API group, a resource or a non-resource URL matches ``*`` or itself;
* a rule's resource ``pods/log`` matches the subresource request; ``*/log`` matches the
  ``log`` subresource of any resource; ``pods`` matches no subresource of pods;
* ``resourceNames`` limit a rule to requests naming one of them (so never a list);
* a non-resource URL ending in ``*`` matches every path it is a prefix of;
* a binding's ServiceAccount subject without a namespace means the binding's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterable, Iterator, Mapping

GROUP = "rbac.authorization.k8s.io"
ALL = "*"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

Rule = Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    """What is asked: a resource request (``path`` None) or a non-resource one."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str | None = None


def _strings(rule: Rule, field: str) -> list[str]:
    values = rule.get(field)
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _has(values: list[str], wanted: str) -> bool:
    return ALL in values or wanted in values


def resource_matches(rule_resources: list[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in rule_resources:
        if candidate in (ALL, combined):
            return True
        if subresource and candidate == "*/" + subresource:
            return True
    return False


def url_matches(rule_urls: list[str], path: str) -> bool:
    return any(url == ALL or url == path or
               (url.endswith("*") and path.startswith(url.rstrip("*"))) for url in rule_urls)


def rule_allows(rule: Rule, request: Request) -> bool:
    """Whether one PolicyRule allows the request."""
    if not _has(_strings(rule, "verbs"), request.verb):
        return False
    if request.path is not None:
        return url_matches(_strings(rule, "nonResourceURLs"), request.path)
    if not _has(_strings(rule, "apiGroups"), request.group) or \
            not resource_matches(_strings(rule, "resources"), request.resource,
                                 request.subresource):
        return False
    names = _strings(rule, "resourceNames")
    return not names or request.name in names


def service_account_user(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def subject_applies(subject: Mapping[str, Any], user: str, groups: Collection[str],
                    binding_namespace: str) -> bool:
    """Whether one Subject of a binding in ``binding_namespace`` ("" for a cluster binding)
    names this user, one of their groups, or the service account they are."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user == name
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user == service_account_user(namespace, str(name))
    return False


def applying_subject(binding: Mapping[str, Any], user: str,
                     groups: Iterable[str]) -> Mapping[str, Any] | None:
    """The first subject of ``binding`` that names this user (or their group, or their
    service account), or None."""
    namespace = str((binding.get("metadata") or {}).get("namespace") or "")
    groups = tuple(groups)
    return next((s for s in binding.get("subjects") or []
                 if isinstance(s, dict) and subject_applies(s, user, groups, namespace)), None)


def binding_applies(binding: Mapping[str, Any], user: str, groups: Iterable[str]) -> bool:
    return applying_subject(binding, user, groups) is not None


def describe_grant(binding: Mapping[str, Any], subject: Mapping[str, Any]) -> str:
    """What grants a right, as the RBAC authorizer's reason names it (after
    ``RBAC: allowed by``): ``ClusterRoleBinding "b" of ClusterRole "r" to User "u"``, or
    ``RoleBinding "b/ns" of Role "r" to ServiceAccount "sa/ns"`` (name, then namespace)."""
    meta = binding.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    ref = binding.get("roleRef") or {}
    kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        name = f"{name}/{subject.get('namespace') or namespace}"
    if namespace:
        source = f"RoleBinding {quoted(str(meta.get('name') or '') + '/' + namespace)}"
    else:
        source = f"ClusterRoleBinding {quoted(str(meta.get('name') or ''))}"
    return f"{source} of {ref.get('kind')} {quoted(str(ref.get('name') or ''))} to " \
        f"{kind} {quoted(name)}"


# --- covering: may an owner of some rules grant others? --------------------------------------


def _atoms(rule: Rule) -> Iterator[Rule]:
    """A rule broken into rules of one API group, one resource, one verb and at most one
    name (or one URL and one verb), in Kubernetes' order."""
    names = _strings(rule, "resourceNames")
    for group in _strings(rule, "apiGroups"):
        for resource in _strings(rule, "resources"):
            for verb in _strings(rule, "verbs"):
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                if not names:
                    yield base
                for name in names:
                    yield {**base, "resourceNames": [name]}
    for url in _strings(rule, "nonResourceURLs"):
        for verb in _strings(rule, "verbs"):
            yield {"nonResourceURLs": [url], "verbs": [verb]}


def _covers_atom(owner: Rule, atom: Rule) -> bool:
    if not _has(_strings(owner, "verbs"), atom["verbs"][0]):
        return False
    if "nonResourceURLs" in atom:
        path = atom["nonResourceURLs"][0]
        return any(url == path or (url.endswith("*") and path.startswith(url.rstrip("*")))
                   for url in _strings(owner, "nonResourceURLs"))
    resource = atom["resources"][0]
    owner_resources = _strings(owner, "resources")
    if not _has(_strings(owner, "apiGroups"), atom["apiGroups"][0]):
        return False
    if not _has(owner_resources, resource) and \
            not ("/" in resource and "*/" + resource.split("/", 1)[1] in owner_resources):
        return False
    owner_names = _strings(owner, "resourceNames")
    return not owner_names or (bool(atom.get("resourceNames")) and
                               atom["resourceNames"][0] in owner_names)


def uncovered(owner_rules: list[Rule], wanted_rules: list[Rule]) -> list[Rule]:
    """The pieces of ``wanted_rules`` (one group, resource, verb, name each) that no rule
    of ``owner_rules`` covers; empty when the owner holds every permission wanted."""
    return [atom for rule in wanted_rules for atom in _atoms(rule)
            if not any(_covers_atom(owner, atom) for owner in owner_rules)]


def merge_verbs(atoms: list[Rule]) -> list[Rule]:
    """Resource pieces that differ only in their verb joined into one rule (Kubernetes'
    CompactRules); URL pieces stay as they are."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    others: list[Rule] = []
    for atom in atoms:
        if "resources" not in atom:
            others.append(atom)
            continue
        key = (atom["apiGroups"][0], atom["resources"][0],
               (atom.get("resourceNames") or [""])[0])
        if key in merged:
            merged[key]["verbs"] = merged[key]["verbs"] + atom["verbs"]
        else:
            merged[key] = dict(atom)
    return others + list(merged.values())


def compact(rule: Rule) -> str:
    """A rule as Kubernetes prints it in escalation errors (Go's ``%q`` of each list):
    ``{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}``."""
    parts = []
    for field, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                         ("nonResourceURLs", "NonResourceURLs"),
                         ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        values = _strings(rule, field)
        if values:
            parts.append(f"{label}:[{' '.join(quoted(v) for v in values)}]")
    return "{" + ", ".join(parts) + "}"


def quoted(value: str) -> str:
    """A string as Go's ``%q`` prints it (ASCII text)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_binding(binding: dict[str, Any]) -> None:
    """RoleBinding / ClusterRoleBinding defaults: roleRef.apiGroup is this group; a User's
    or Group's subject apiGroup too ("" stays for a ServiceAccount)."""
    ref = binding.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in binding.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and \
                subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = GROUP
