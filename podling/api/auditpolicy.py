"""The audit policy (``audit.k8s.io/v1`` Policy, kube-apiserver's ``--audit-policy-file``):
loading with Kubernetes' validation, and the level a request is audited at.

Rules are tried in order and the first that matches decides; no match is level ``None``
(nothing is recorded). A rule matches when each criterion it sets holds: ``users``,
``userGroups`` (any group), ``verbs``; then ``namespaces`` / ``resources`` for resource
requests (``""`` names cluster-scoped ones; ``pods/log``, ``*/status``, ``pods/*`` which
also matches ``pods``, ``*``, ``resourceNames``), or ``nonResourceURLs`` for the others
(``/healthz*`` is a prefix). ``omitStages`` of the policy and of the rule add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from . import errors
from .validation._formats import is_dns1123_subdomain

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSION = "audit.k8s.io/v1"


class PolicyError(ValueError):
    """A policy that cannot be loaded; ``str()`` is kube-apiserver's text."""


@dataclass(frozen=True)
class Request:
    """What the rules look at in one request (``user`` None: not authenticated)."""

    user: str | None
    groups: tuple[str, ...]
    verb: str
    path: str
    resource: str = ""  # "" for a non-resource request
    subresource: str = ""
    group: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Decision:
    """The level of a request and the stages not to record."""

    level: str = "None"
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass
class Policy:
    rules: list[dict[str, Any]] = field(default_factory=list)
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def decide(self, request: Request) -> Decision:
        """The first matching rule's level (``None`` when none matches)."""
        for rule in self.rules:
            if _matches(rule, request):
                omit = rule.get("omitManagedFields")
                return Decision(rule["level"], self.omit_stages | frozenset(
                    rule.get("omitStages") or ()),
                    self.omit_managed_fields if omit is None else bool(omit))
        return Decision()


def load_file(path: str) -> Policy:
    """The policy in the YAML or JSON file ``path``; :class:`PolicyError` says why not."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise PolicyError(f'failed to read file path "{path}": {reason}') from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"failed decoding: {' '.join(str(exc).split())}: from file "
                          f"{path}") from None
    return load(document, path)


def load(document: Any, source: str) -> Policy:
    """A Policy from its decoded YAML or JSON; :class:`PolicyError` as kube-apiserver
    words it (``source``: the file, named at the end)."""
    if not isinstance(document, dict) or document.get("apiVersion") != API_VERSION or \
            document.get("kind") != "Policy":
        raise PolicyError("unknown group version field audit.k8s.io/__internal, Kind=Policy "
                          f"in policy: from file {source}")
    causes = _problems(document)
    if causes:
        raise PolicyError(errors.aggregate([str(c) for c in causes]) + f": from file {source}")
    rules = [r for r in document.get("rules") or [] if isinstance(r, dict)]
    if not rules:
        raise PolicyError(f"loaded illegal policy with 0 rules: from file {source}")
    return Policy(rules, frozenset(document.get("omitStages") or ()),
                  bool(document.get("omitManagedFields")))


def _problems(document: dict[str, Any]) -> list[errors.Cause]:
    causes = _stage_problems(document.get("omitStages"), "omitStages")
    for i, rule in enumerate(document.get("rules") or []):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            causes.append(errors.invalid(path, str(rule), "must be an object"))
            continue
        level = rule.get("level")
        if not level:
            causes.append(errors.required(f"{path}.level"))
        elif level not in LEVELS:
            causes.append(errors.not_supported(f"{path}.level", level, list(LEVELS)))
        causes += _url_problems(rule, path) + _resource_problems(rule, path)
        causes += _stage_problems(rule.get("omitStages"), f"{path}.omitStages")
    return causes


def _stage_problems(stages: Any, path: str) -> list[errors.Cause]:
    return [errors.invalid(f"{path}[{i}]", str(stage), "allowed stages are " + ",".join(STAGES))
            for i, stage in enumerate(stages or []) if stage not in STAGES]


def _go_strings(values: list[Any]) -> str:
    """A []string as Go's ``%#v`` prints it in a field error."""
    return "[]string{" + ", ".join('"' + str(v).replace('"', '\\"') + '"' for v in values) + "}"


def _url_problems(rule: dict[str, Any], path: str) -> list[errors.Cause]:
    urls = rule.get("nonResourceURLs") or []
    if urls and (rule.get("resources") or rule.get("namespaces")):
        return [errors.Cause("FieldValueInvalid", f"Invalid value: {_go_strings(urls)}: rules "
                             "cannot apply to both regular resources and non-resource URLs",
                             f"{path}.nonResourceURLs")]
    causes = []
    for i, url in enumerate(urls):
        url = str(url)
        if url == "*":
            continue
        if not url.startswith("/"):
            causes.append(errors.invalid(f"{path}.nonResourceURLs[{i}]", url, "non-resource URL "
                                         "rules must begin with a '/' character"))
        elif "*" in url[:-1]:
            causes.append(errors.invalid(f"{path}.nonResourceURLs[{i}]", url, "non-resource URL "
                                         "wildcards '*' must be the final character of the rule"))
    return causes


def _resource_problems(rule: dict[str, Any], path: str) -> list[errors.Cause]:
    causes = []
    for entry in rule.get("resources") or []:
        entry = entry if isinstance(entry, dict) else {}
        group = str(entry.get("group") or "")
        for message in is_dns1123_subdomain(group) if group else []:
            causes.append(errors.invalid(f"{path}.resources.group", group, message))
        names = entry.get("resourceNames") or []
        if names and not entry.get("resources"):
            causes.append(errors.Cause(
                "FieldValueInvalid", f"Invalid value: {_go_strings(names)}: using "
                "resourceNames requires at least one resource", f"{path}.resources.resourceNames"))
    return causes


def _matches(rule: dict[str, Any], request: Request) -> bool:
    users, groups = rule.get("users"), rule.get("userGroups")
    if users and (request.user is None or request.user not in users):
        return False
    if groups and (request.user is None or not set(request.groups) & set(groups)):
        return False
    if rule.get("verbs") and request.verb not in rule["verbs"]:
        return False
    if rule.get("namespaces") or rule.get("resources"):
        return bool(request.resource) and _resource_matches(rule, request)
    if rule.get("nonResourceURLs"):
        return not request.resource and any(_url_matches(url, request.path)
                                            for url in rule["nonResourceURLs"])
    return True


def _resource_matches(rule: dict[str, Any], request: Request) -> bool:
    if rule.get("namespaces") and request.namespace not in rule["namespaces"]:
        return False
    entries = [e for e in rule.get("resources") or [] if isinstance(e, dict)]
    if not entries:
        return True
    for entry in entries:
        if (entry.get("group") or "") != request.group:
            continue
        wanted = entry.get("resources") or []
        if not wanted:
            return True
        names = entry.get("resourceNames") or []
        if names and request.name not in names:
            continue
        if any(_names_resource(str(w), request) for w in wanted):
            return True
    return False


def _names_resource(wanted: str, request: Request) -> bool:
    full = f"{request.resource}/{request.subresource}" if request.subresource \
        else request.resource
    if wanted in ("*", full):
        return True
    if wanted.startswith("*/"):
        return bool(request.subresource) and wanted[2:] == request.subresource
    if wanted.endswith("/*"):
        return wanted[:-2] == request.resource
    return False


def _url_matches(url: str, path: str) -> bool:
    if url == "*" or url == path:
        return True
    return url.endswith("*") and path.startswith(url.rstrip("*"))
