"""Scheduling and DNS parts of a pod spec: tolerations, affinity, selectors, dnsConfig,
hostAliases, scheduling gates."""

from __future__ import annotations

from typing import Any

from podling.api.errors import Cause, duplicate, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (as_dict, as_list, as_str, child, dicts, each_msg,
                                          index, is_int, validate_each)
from podling.api.validation.meta import validate_label_name, validate_labels

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_CHARS = 2048


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, tol in enumerate(dicts(tolerations)):
        tol_path = index(path, i)
        tol_key, operator = as_str(tol.get("key")), as_str(tol.get("operator"))
        value, effect = as_str(tol.get("value")), as_str(tol.get("effect"))
        if tol_key:
            errs += validate_label_name(tol_key, child(tol_path, "key"))
        if not tol_key and operator != "Exists":
            errs.append(invalid(child(tol_path, "operator"), operator,
                                "operator must be Exists when `key` is empty, which means "
                                "\"match all values and all keys\""))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(child(tol_path, "effect"), effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        errs += _toleration_operator(operator, value, child(tol_path, "operator"))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(child(tol_path, "effect"), effect, TAINT_EFFECTS))
    return errs


def _toleration_operator(operator: str, value: str, path: str) -> list[Cause]:
    if operator in ("Equal", ""):
        msgs = fmt.is_label_value(value)
        return [invalid(path, value, ";".join(msgs))] if msgs else []
    if operator == "Exists":
        if value:
            return [invalid(path, value, "value must be empty when `operator` is 'Exists'")]
        return []
    return [not_supported(path, operator, TOLERATION_OPERATORS)]


def validate_label_selector(selector: Any, path: str) -> list[Cause]:
    """meta/v1 ``ValidateLabelSelector`` (``None`` is valid)."""
    if selector is None:
        return []
    selector = as_dict(selector)
    errs = validate_labels(as_dict(selector.get("matchLabels")), child(path, "matchLabels"))
    for i, req in enumerate(dicts(selector.get("matchExpressions"))):
        req_path = index(child(path, "matchExpressions"), i)
        operator, values = as_str(req.get("operator")), as_list(req.get("values"))
        set_errs = _set_operator_values(operator, values, req_path)
        errs += set_errs if set_errs is not None else [
            invalid(child(req_path, "operator"), operator, "not a valid selector operator")]
        errs += validate_label_name(as_str(req.get("key")), child(req_path, "key"))
        errs += _label_values(values, child(req_path, "values"))
    return errs


def _set_operator_values(operator: str, values: list[Any], path: str) -> list[Cause] | None:
    """The ``values`` rules of the set operators (In / NotIn need values, Exists /
    DoesNotExist forbid them), shared by label and node selectors; None for another
    operator."""
    if operator in ("In", "NotIn"):
        return [] if values else [required(
            child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'")]
    if operator in ("Exists", "DoesNotExist"):
        return [forbidden(child(path, "values"), "may not be specified when `operator` is "
                          "'Exists' or 'DoesNotExist'")] if values else []
    return None


def _label_values(values: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, value in enumerate(values):
        text = as_str(value)
        errs += each_msg(index(path, i), text, fmt.is_label_value(text))
    return errs


def _node_selector_requirement(req: dict[str, Any], path: str, *,
                               check_values: bool) -> list[Cause]:
    operator, values = as_str(req.get("operator")), as_list(req.get("values"))
    errs = _set_operator_values(operator, values, path)
    if errs is None and operator in ("Gt", "Lt"):
        errs = [] if len(values) == 1 else [required(
            child(path, "values"), "must be specified single value when `operator` is 'Lt' "
            "or 'Gt'")]
    if errs is None:
        errs = [invalid(child(path, "operator"), operator, "not a valid selector operator")]
    errs += validate_label_name(as_str(req.get("key")), child(path, "key"))
    if check_values:
        errs += _label_values(values, child(path, "values"))
    return errs


def _node_field_requirement(req: dict[str, Any], path: str) -> list[Cause]:
    operator, values = as_str(req.get("operator")), as_list(req.get("values"))
    errs: list[Cause] = []
    if operator in ("In", "NotIn"):
        if len(values) != 1:
            errs.append(required(child(path, "values"), "must be only one value when `operator` "
                                 "is 'In' or 'NotIn' for node field selector"))
    else:
        errs.append(invalid(child(path, "operator"), operator, "not a valid selector operator"))
    if as_str(req.get("key")) != "metadata.name":
        errs.append(invalid(child(path, "key"), as_str(req.get("key")),
                            "not a valid field selector key"))
    else:
        for i, value in enumerate(values):
            text = as_str(value)
            errs += each_msg(index(child(path, "values"), i), text,
                             fmt.name_is_dns_subdomain(text))
    return errs


def validate_node_selector_term(term: Any, path: str, *, check_values: bool) -> list[Cause]:
    term = as_dict(term)
    errs: list[Cause] = []
    for j, req in enumerate(dicts(term.get("matchExpressions"))):
        errs += _node_selector_requirement(req, index(child(path, "matchExpressions"), j),
                                           check_values=check_values)
    for j, req in enumerate(dicts(term.get("matchFields"))):
        errs += _node_field_requirement(req, index(child(path, "matchFields"), j))
    return errs


def validate_affinity(affinity: Any, path: str) -> list[Cause]:
    affinity = as_dict(affinity)
    errs: list[Cause] = []
    if affinity.get("nodeAffinity") is not None:
        errs += _node_affinity(as_dict(affinity["nodeAffinity"]), child(path, "nodeAffinity"))
    for kind in ("podAffinity", "podAntiAffinity"):
        if affinity.get(kind) is not None:
            errs += _pod_affinity(as_dict(affinity[kind]), child(path, kind))
    return errs


def _node_affinity(na: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is not None:
        terms_path = child(path, "requiredDuringSchedulingIgnoredDuringExecution",
                           "nodeSelectorTerms")
        terms = as_list(as_dict(req).get("nodeSelectorTerms"))
        if not terms:
            errs.append(required(terms_path, "must have at least one node selector term"))
        for i, term in enumerate(terms):
            errs += validate_node_selector_term(term, index(terms_path, i), check_values=True)
    pref_path = child(path, "preferredDuringSchedulingIgnoredDuringExecution")
    for i, term in enumerate(dicts(na.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        errs += _weight(term.get("weight"), child(index(pref_path, i), "weight"))
        errs += validate_node_selector_term(term.get("preference"),
                                            child(index(pref_path, i), "preference"),
                                            check_values=False)
    return errs


def _weight(weight: Any, path: str) -> list[Cause]:
    value = weight if is_int(weight) else 0
    return [] if 0 < value <= 100 else [invalid(path, value, "must be in the range 1-100")]


def _pod_affinity(pa: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    req_path = child(path, "requiredDuringSchedulingIgnoredDuringExecution")
    for i, term in enumerate(dicts(pa.get("requiredDuringSchedulingIgnoredDuringExecution"))):
        errs += _pod_affinity_term(term, index(req_path, i))
    pref_path = child(path, "preferredDuringSchedulingIgnoredDuringExecution")
    for i, term in enumerate(dicts(pa.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        errs += _weight(term.get("weight"), child(index(pref_path, i), "weight"))
        errs += _pod_affinity_term(as_dict(term.get("podAffinityTerm")),
                                   child(index(pref_path, i), "podAffinityTerm"))
    return errs


def _pod_affinity_term(term: dict[str, Any], path: str) -> list[Cause]:
    errs = validate_label_selector(term.get("labelSelector"), child(path, "labelSelector"))
    errs += validate_label_selector(term.get("namespaceSelector"),
                                    child(path, "namespaceSelector"))
    for name in as_list(term.get("namespaces")):
        text = as_str(name)
        errs += each_msg(child(path, "namespace"), text, fmt.name_is_dns_label(text))
    topology_key = as_str(term.get("topologyKey"))
    if not topology_key:
        errs.append(required(child(path, "topologyKey"), "can not be empty"))
    return errs + validate_label_name(topology_key, child(path, "topologyKey"))


def validate_dns_config(spec: dict[str, Any], path: str) -> list[Cause]:
    """``validatePodDNSConfig``: dnsPolicy None needs nameservers; IPs, search limits."""
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not as_list(as_dict(config).get("nameservers")):
            return [required(child(path, "nameservers"),
                             "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    if config is None:
        return []
    config = as_dict(config)
    nameservers = as_list(config.get("nameservers"))
    errs: list[Cause] = []
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        errs.append(invalid(child(path, "nameservers"), "", "must not have more than "
                            f"{MAX_DNS_NAMESERVERS} nameservers"))
    errs += validate_each(nameservers, child(path, "nameservers"), fmt.validate_ip)
    errs += _dns_searches(as_list(config.get("searches")), child(path, "searches"))
    for i, option in enumerate(dicts(config.get("options"))):
        if not as_str(option.get("name")):
            errs.append(required(index(child(path, "options"), i), "must not be empty"))
    return errs


def _dns_searches(searches: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    texts = [as_str(s) for s in searches]
    if len(texts) > MAX_DNS_SEARCH_PATHS:
        errs.append(invalid(path, "", f"must not have more than {MAX_DNS_SEARCH_PATHS} "
                                      "search paths"))
    if len(" ".join(texts)) > MAX_DNS_SEARCH_CHARS:
        errs.append(invalid(path, "", f"must not have more than {MAX_DNS_SEARCH_CHARS} "
                                      "characters (including spaces) in the search list"))
    for i, search in enumerate(texts):
        search = search[:-1] if search.endswith(".") else search
        errs += each_msg(index(path, i), search, fmt.is_dns1123_subdomain(search))
    return errs


def validate_host_aliases(aliases: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, alias in enumerate(dicts(aliases)):
        alias_path = index(path, i)
        errs += fmt.validate_ip(child(alias_path, "ip"), as_str(alias.get("ip")))
        for j, hostname in enumerate(as_list(alias.get("hostnames"))):
            text = as_str(hostname)
            errs += each_msg(index(child(alias_path, "hostnames"), j), text,
                             fmt.is_dns1123_subdomain(text))
    return errs


def validate_scheduling_gates(gates: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    seen: set[str] = set()
    for i, gate in enumerate(dicts(gates)):
        name = as_str(gate.get("name"))
        errs += each_msg(index(path, i), name, fmt.is_qualified_name(name))
        if name in seen:
            errs.append(duplicate(index(path, i), name))
        seen.add(name)
    return errs


def validate_readiness_gates(gates: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, gate in enumerate(dicts(gates)):
        condition = as_str(gate.get("conditionType"))
        errs += each_msg(child(index(path, i), "conditionType"), condition,
                         fmt.is_qualified_name(condition))
    return errs


_WHEN_UNSATISFIABLE = ["DoNotSchedule", "ScheduleAnyway"]


def validate_topology_spread_constraints(constraints: Any, path: str) -> list[Cause]:
    """maxSkew > 0, a topologyKey, whenUnsatisfiable from the enum, minDomains only with
    DoNotSchedule and > 0, no duplicate (topologyKey, whenUnsatisfiable) pair."""
    errs: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, tsc in enumerate(dicts(constraints)):
        at = f"{path}[{i}]"
        skew = tsc.get("maxSkew")
        if not isinstance(skew, int) or skew <= 0:
            errs.append(invalid(child(at, "maxSkew"), skew, "must be greater than zero"))
        key = as_str(tsc.get("topologyKey"))
        if not key:
            errs.append(required(child(at, "topologyKey"), "can not be empty"))
        when = as_str(tsc.get("whenUnsatisfiable"))
        if not when:
            errs.append(required(child(at, "whenUnsatisfiable")))
        elif when not in _WHEN_UNSATISFIABLE:
            errs.append(not_supported(child(at, "whenUnsatisfiable"), when, _WHEN_UNSATISFIABLE))
        min_domains = tsc.get("minDomains")
        if min_domains is not None:
            if not isinstance(min_domains, int) or min_domains <= 0:
                errs.append(invalid(child(at, "minDomains"), min_domains,
                                    "must be greater than 0"))
            elif when != "DoNotSchedule":
                errs.append(invalid(child(at, "minDomains"), min_domains,
                                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
                                    "not ScheduleAnyway"))
        if (key, when) in seen:
            errs.append(duplicate(f"{at}.{{topologyKey, whenUnsatisfiable}}", f"{{{key}, {when}}}"))
        seen.add((key, when))
        errs += validate_label_selector(tsc.get("labelSelector"), child(at, "labelSelector"))
    return errs
