"""Pod create validation (``ValidatePodCreate`` -> ``validatePodMetadataAndSpec``).

Input is a *defaulted* v1 Pod as a JSON dict (run :func:`podling.api.defaults.default_pod`
first: e.g. a missing ``terminationGracePeriodSeconds`` is ``Required`` here, as in
Kubernetes). Causes come in Kubernetes' order: metadata, volumes, containers, init
containers, then the rest of the spec.
"""

from __future__ import annotations

import re
from typing import Any

from podling.api.errors import Cause, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (as_dict, as_list, as_str, child, dicts, each_msg,
                                          is_int, key)
from podling.api.validation.container import (image_whitespace, validate_containers,
                                              validate_init_containers)
from podling.api.validation.ephemeral import validate_ephemeral_containers
from podling.api.validation.meta import validate_labels, validate_object_meta
from podling.api.validation.scheduling import (validate_affinity, validate_dns_config,
                                               validate_host_aliases, validate_readiness_gates,
                                               validate_scheduling_gates, validate_tolerations,
                                               validate_topology_spread_constraints)
from podling.api.validation.security import validate_host_users, validate_pod_security_context
from podling.api.validation.volumes import validate_volumes

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]
OS_NAMES = ["linux", "windows"]
MAX_INT32 = 2**31 - 1
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_INT32_TEXT = re.compile(r"^[+-]?[0-9]+$")


def validate_pod(pod: dict[str, Any]) -> list[Cause]:
    """All create-time causes for ``pod`` (empty list = valid). Never raises."""
    errs = validate_pod_metadata_and_spec(pod)
    spec = as_dict(pod.get("spec"))
    if as_list(spec.get("ephemeralContainers")):
        errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if as_str(spec.get("nodeName")) and as_list(spec.get("schedulingGates")):
        errs.append(forbidden("spec.nodeName",
                              "cannot be set until all schedulingGates have been cleared"))
    return errs


def validate_pod_metadata_and_spec(pod: dict[str, Any]) -> list[Cause]:
    """What create and update share: metadata, pod annotations, the spec."""
    meta, spec = as_dict(pod.get("metadata")), as_dict(pod.get("spec"))
    errs = validate_object_meta(meta, namespaced=True)
    errs += validate_pod_annotations(as_dict(meta.get("annotations")), spec,
                                     "metadata.annotations")
    errs += validate_pod_spec(spec, "spec")
    if not as_str(spec.get("serviceAccountName")):
        errs += _forbid_token_projection(spec)
    errs += image_whitespace(spec.get("containers"), "spec.containers")
    errs += image_whitespace(spec.get("initContainers"), "spec.initContainers")
    return errs


def validate_pod_annotations(annotations: dict[str, Any], spec: dict[str, Any],
                             path: str) -> list[Cause]:
    """``ValidatePodSpecificAnnotations``: mirror pods need a node; deletion cost is int32."""
    errs: list[Cause] = []
    if MIRROR_POD_ANNOTATION in annotations and not as_str(spec.get("nodeName")):
        errs.append(invalid(key(path, MIRROR_POD_ANNOTATION),
                            as_str(annotations[MIRROR_POD_ANNOTATION]),
                            "must set spec.nodeName if mirror pod annotation is set"))
    if DELETION_COST_ANNOTATION in annotations:
        cost = as_str(annotations[DELETION_COST_ANNOTATION])
        if not _INT32_TEXT.match(cost) or not -(2**31) <= int(cost) <= MAX_INT32:
            errs.append(invalid(key(path, DELETION_COST_ANNOTATION), cost,
                                "must be a 32bit integer"))
    return errs


def _forbid_token_projection(spec: dict[str, Any]) -> list[Cause]:
    errs: list[Cause] = []
    for vi, volume in enumerate(dicts(spec.get("volumes"))):
        projected = volume.get("projected")
        for si, source in enumerate(dicts(as_dict(projected).get("sources"))):
            if source.get("serviceAccountToken") is not None:
                path = (f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken")
                errs.append(forbidden(path, "must not be specified when serviceAccountName is "
                                            "not set"))
    return errs


def validate_pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    """``ValidatePodSpec`` in Kubernetes' order."""
    errs: list[Cause] = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        errs.append(required(child(path, "terminationGracePeriodSeconds")))
    host_users = as_dict(spec.get("securityContext")).get("hostUsers") is not False
    volumes, vol_errs = validate_volumes(spec.get("volumes"), child(path, "volumes"))
    errs += vol_errs
    errs += validate_containers(spec.get("containers"), volumes, grace,
                                child(path, "containers"), host_users=host_users)
    errs += validate_init_containers(spec.get("initContainers"), spec.get("containers"),
                                     volumes, grace, child(path, "initContainers"),
                                     host_users=host_users)
    errs += validate_ephemeral_containers(spec.get("ephemeralContainers"), spec.get("containers"),
                                          spec.get("initContainers"), volumes,
                                          child(path, "ephemeralContainers"),
                                          host_users=host_users)
    errs += _host_network_ports(spec, path)
    errs += _enum(spec.get("restartPolicy"), RESTART_POLICIES, child(path, "restartPolicy"))
    errs += _enum(spec.get("dnsPolicy"), DNS_POLICIES, child(path, "dnsPolicy"))
    errs += validate_labels(as_dict(spec.get("nodeSelector")), child(path, "nodeSelector"))
    errs += validate_pod_security_context(spec, child(path, "securityContext"))
    errs += validate_affinity(spec.get("affinity"), child(path, "affinity"))
    errs += validate_dns_config(spec, child(path, "dnsConfig"))
    errs += validate_readiness_gates(spec.get("readinessGates"), child(path, "readinessGates"))
    errs += validate_scheduling_gates(spec.get("schedulingGates"),
                                      child(path, "schedulingGates"))
    errs += validate_host_users(spec, path)
    errs += _names_and_numbers(spec, path)
    errs += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    errs += validate_topology_spread_constraints(spec.get("topologySpreadConstraints"),
                                                 child(path, "topologySpreadConstraints"))
    errs += validate_host_aliases(spec.get("hostAliases"), child(path, "hostAliases"))
    errs += _priority_and_os(spec, path)
    return errs


def _enum(value: Any, allowed: list[str], path: str) -> list[Cause]:
    text = as_str(value)
    if not text:
        return [required(path)]
    return [] if text in allowed else [not_supported(path, text, allowed)]


def _host_network_ports(spec: dict[str, Any], path: str) -> list[Cause]:
    """With hostNetwork, every container's hostPort must equal its containerPort."""
    if spec.get("hostNetwork") is not True:
        return []
    errs: list[Cause] = []
    for ci, ctr in enumerate(dicts(spec.get("containers"))):
        for pi, port in enumerate(dicts(ctr.get("ports"))):
            host_port, container_port = port.get("hostPort") or 0, port.get("containerPort")
            if host_port != (container_port or 0):
                errs.append(invalid(f"{path}.containers[{ci}].ports[{pi}].hostPort", host_port,
                                    "must match `containerPort` when `hostNetwork` is true"))
    return errs


def _names_and_numbers(spec: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for field, check in (("serviceAccountName", fmt.name_is_dns_subdomain),
                         ("nodeName", fmt.name_is_dns_subdomain)):
        value = as_str(spec.get(field))
        if value:
            errs += each_msg(child(path, field), value, check(value))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not is_int(deadline) or not 1 <= deadline <= MAX_INT32):
        errs.append(invalid(child(path, "activeDeadlineSeconds"), deadline,
                            fmt.inclusive_range_error(1, MAX_INT32)))
    for field in ("hostname", "subdomain"):
        value = as_str(spec.get(field))
        if value:
            errs += each_msg(child(path, field), value, fmt.is_dns1123_label(value))
    return errs


def _priority_and_os(spec: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    class_name = as_str(spec.get("priorityClassName"))
    if class_name:
        errs += each_msg(child(path, "priorityClassName"), class_name,
                         fmt.name_is_dns_subdomain(class_name))
    runtime_class = spec.get("runtimeClassName")
    if runtime_class is not None:
        text = as_str(runtime_class)
        errs += each_msg(child(path, "runtimeClassName"), text, fmt.name_is_dns_subdomain(text))
    preemption = spec.get("preemptionPolicy")
    if preemption is not None:
        errs += _enum(preemption, PREEMPTION_POLICIES, child(path, "preemptionPolicy"))
    pod_os = spec.get("os")
    if pod_os is not None:
        name = as_str(as_dict(pod_os).get("name"))
        if not name:
            errs.append(required(child(path, "os", "name"), "cannot be empty"))
        elif name not in OS_NAMES:
            errs.append(not_supported(child(path, "os"), name, OS_NAMES))
    return errs
