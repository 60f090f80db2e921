"""Node, Namespace, Event, Lease and Binding validation."""

from __future__ import annotations

import ipaddress
from typing import Any

from podling.api.errors import Cause, _render, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (NEGATIVE_MSG, as_dict, as_list, as_str, child, dicts,
                                          each_msg, index, is_int)
from podling.api.validation.meta import (validate_kube_finalizer_name, validate_label_name,
                                         validate_object_meta, validate_object_meta_update)
from podling.api.validation.resources import parse_resource_list, validate_quantity_value
from podling.api.validation.scheduling import TAINT_EFFECTS

EVENT_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128, "message": 1024}


# --- Node ------------------------------------------------------------------------------


def validate_node(node: dict[str, Any]) -> list[Cause]:
    """``ValidateNode``: cluster-scoped DNS-subdomain name, taints, resources, podCIDRs."""
    errs = validate_object_meta(as_dict(node.get("metadata")), namespaced=False)
    spec = as_dict(node.get("spec"))
    errs += _taints(spec.get("taints"), "metadata.taints")
    errs += _node_resources(node)
    cidrs = as_list(spec.get("podCIDRs"))
    for i, cidr in enumerate(cidrs):
        errs += _cidr(index("spec.podCIDRs", i), as_str(cidr))
    return errs


def _taints(taints: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(dicts(taints)):
        taint_path = index(path, i)
        taint_key, value = as_str(taint.get("key")), as_str(taint.get("value"))
        effect = as_str(taint.get("effect"))
        errs += validate_label_name(taint_key, child(taint_path, "key"))
        msgs = fmt.is_label_value(value)
        if msgs:
            errs.append(invalid(child(taint_path, "value"), value, ";".join(msgs)))
        if not effect:
            errs.append(required(child(taint_path, "effect")))
        elif effect not in TAINT_EFFECTS:
            errs.append(not_supported(child(taint_path, "effect"), effect, TAINT_EFFECTS))
        if (taint_key, effect) in seen:
            shown = f"core.Taint{{Key:{_render(taint_key)}, Effect:{_render(effect)}}}"
            errs.append(Cause("FieldValueDuplicate", f"Duplicate value: {shown}: taints must "
                              "be unique by key and effect pair", taint_path))
            continue
        seen.add((taint_key, effect))
    return errs


def _node_resources(node: dict[str, Any]) -> list[Cause]:
    status = as_dict(node.get("status"))
    errs: list[Cause] = []
    for field in ("capacity", "allocatable"):
        path = f"status.{field}"
        parsed, parse_errs = parse_resource_list(as_dict(status.get(field)), path)
        errs += parse_errs
        for name, value in parsed.items():
            errs += validate_quantity_value(name, value, f"{path}.{name}")
    return errs


def _cidr(path: str, value: str) -> list[Cause]:
    try:
        ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError(value)
    except ValueError:
        return [invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                     "2001:db8::/64)")]
    return []


def validate_node_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """``ValidateNodeUpdate``: podCIDRs and providerID may only be set once."""
    errs = validate_object_meta_update(as_dict(new.get("metadata")),
                                       as_dict(old.get("metadata")))
    errs += _node_resources(new)
    errs += _duplicate_addresses(as_dict(new.get("status")).get("addresses"))
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    old_cidrs, new_cidrs = as_list(old_spec.get("podCIDRs")), as_list(new_spec.get("podCIDRs"))
    if old_cidrs and old_cidrs != new_cidrs:
        errs.append(forbidden("spec.podCIDRs", "node updates may not change podCIDR except "
                                               "from \"\" to valid"))
    old_provider = as_str(old_spec.get("providerID"))
    if old_provider and old_provider != as_str(new_spec.get("providerID")):
        errs.append(forbidden("spec.providerID", "node updates may not change providerID "
                                                 "except from \"\" to valid"))
    errs += _taints(new_spec.get("taints"), "metadata.taints")
    if as_str(new_spec.get("externalID")) != as_str(old_spec.get("externalID")):
        errs.append(forbidden("spec.externalID", "may not be updated"))
    return errs


def _duplicate_addresses(addresses: Any) -> list[Cause]:
    seen: set[tuple[str, str]] = set()
    errs: list[Cause] = []
    for i, address in enumerate(dicts(addresses)):
        pair = (as_str(address.get("type")), as_str(address.get("address")))
        if pair in seen:
            shown = f"core.NodeAddress{{Type:{_render(pair[0])}, Address:{_render(pair[1])}}}"
            errs.append(Cause("FieldValueDuplicate", f"Duplicate value: {shown}",
                              index("status.addresses", i)))
        seen.add(pair)
    return errs


# --- Namespace -------------------------------------------------------------------------


def validate_namespace(ns: dict[str, Any]) -> list[Cause]:
    """``ValidateNamespace``: DNS-label name; spec finalizers qualified or standard."""
    errs = validate_object_meta(as_dict(ns.get("metadata")), namespaced=False,
                                name_fn=fmt.name_is_dns_label)
    for name in as_list(as_dict(ns.get("spec")).get("finalizers")):
        text = as_str(name)
        errs += each_msg("spec.finalizers", text, fmt.is_qualified_name(text))
        errs += validate_kube_finalizer_name(text, "spec.finalizers")
    return errs


def validate_namespace_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    return validate_object_meta_update(as_dict(new.get("metadata")),
                                       as_dict(old.get("metadata")))


# --- Event (core/v1 rules) -------------------------------------------------------------


def validate_event(ev: dict[str, Any]) -> list[Cause]:
    """core/v1 Events get only the legacy checks (namespace agreement; for events with an
    ``eventTime`` the reporting fields). A name is required so the object can be stored."""
    meta = as_dict(ev.get("metadata"))
    errs: list[Cause] = []
    if not as_str(meta.get("name")):
        errs.append(required("metadata.name", "name or generateName is required"))
    namespace = as_str(meta.get("namespace"))
    involved_ns = as_str(as_dict(ev.get("involvedObject")).get("namespace"))
    if not ev.get("eventTime"):
        agrees = namespace in ("", "default") if not involved_ns else namespace == involved_ns
        if not agrees:
            errs.append(invalid("involvedObject.namespace", involved_ns,
                                "does not match event.namespace"))
    else:
        errs += _reporting_fields(ev, namespace, involved_ns)
    errs += each_msg("namespace", namespace, fmt.is_dns1123_subdomain(namespace))
    return errs


def _reporting_fields(ev: dict[str, Any], namespace: str, involved_ns: str) -> list[Cause]:
    errs: list[Cause] = []
    if not involved_ns and namespace not in ("default", "kube-system"):
        errs.append(invalid("involvedObject.namespace", involved_ns,
                            "does not match event.namespace"))
    controller = as_str(ev.get("reportingComponent"))
    if not controller:
        errs.append(required("reportingController"))
    errs += each_msg("reportingController", controller, fmt.is_qualified_name(controller))
    for field in ("reportingInstance", "action", "reason", "message"):
        value = as_str(ev.get(field))
        if not value and field != "message":
            errs.append(required(field))
        if len(value) > EVENT_LIMITS[field]:
            errs.append(invalid(field, "", f"can have at most {EVENT_LIMITS[field]} characters"))
    return errs


# --- Lease -----------------------------------------------------------------------------


def validate_lease(lease: dict[str, Any]) -> list[Cause]:
    """coordination ``ValidateLease``."""
    errs = validate_object_meta(as_dict(lease.get("metadata")), namespaced=True,
                                kube_finalizers=False)
    spec = as_dict(lease.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if is_int(duration) and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if is_int(transitions) and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, NEGATIVE_MSG))
    if as_str(spec.get("preferredHolder")) and not as_str(spec.get("strategy")):
        errs.append(forbidden("spec.preferredHolder",
                              "may only be specified if `strategy` is defined"))
    return errs


# --- Binding ---------------------------------------------------------------------------


def validate_binding(binding: dict[str, Any]) -> list[Cause]:
    """``ValidatePodBinding``: target kind Node (or empty), target name required."""
    target = as_dict(binding.get("target"))
    errs: list[Cause] = []
    kind = as_str(target.get("kind"))
    if kind and kind != "Node":
        errs.append(not_supported("target.kind", kind, ["Node", "<empty>"]))
    if not as_str(target.get("name")):
        errs.append(required("target.name"))
    return errs
