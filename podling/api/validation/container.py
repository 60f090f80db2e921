"""Container validation (``validateContainers``, ``validateInitContainers`` and their parts).

``volumes`` is the map of *valid* pod volume names to their source dicts, as
``ValidateVolumes`` returns it; mounts of other names are ``Not found``.
"""

from __future__ import annotations

import re
from typing import Any

from podling.api.errors import Cause, duplicate, forbidden, invalid, not_supported, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (as_dict, as_str, child, dicts, each_msg, index,
                                          not_found)
from podling.api.validation.handlers import validate_container_probes
from podling.api.validation.resources import validate_resource_requirements
from podling.api.validation.security import validate_container_security_context

PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
MOUNT_PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]
_ENV_FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                    "status.podIP", "status.podIPs"]
_CONVERTIBLE_FIELD_PATHS = set(_ENV_FIELD_PATHS) | {
    "metadata.annotations", "metadata.labels", "spec.restartPolicy", "spec.schedulerName",
    "status.phase"}
_SUBSCRIPT = re.compile(r"^(metadata\.(?:annotations|labels))\['(.*)'\]$")
_RESOURCE_FIELDS = ["limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                    "requests.ephemeral-storage", "requests.memory"]


def validate_containers(containers: Any, volumes: dict[str, Any], grace: Any, path: str, *,
                        host_users: bool = True) -> list[Cause]:
    """Regular containers: at least one, unique names, hooks/probes, no restartPolicy."""
    items = dicts(containers)
    if not items:
        return [required(path)]
    errs: list[Cause] = []
    names: set[str] = set()
    for i, ctr in enumerate(items):
        ctr_path = index(path, i)
        errs += validate_container_common(ctr, volumes, ctr_path, host_users=host_users)
        name = as_str(ctr.get("name"))
        if name in names:
            errs.append(duplicate(child(ctr_path, "name"), name))
        names.add(name)
        errs += validate_container_probes(ctr, grace, ctr_path)
        if ctr.get("restartPolicy") is not None:
            errs.append(forbidden(child(ctr_path, "restartPolicy"),
                                  "may not be set for non-init containers"))
    errs += check_host_port_conflicts(items, path)
    return errs


def validate_init_containers(init: Any, regular: Any, volumes: dict[str, Any], grace: Any,
                             path: str, *, host_users: bool = True) -> list[Cause]:
    """Init containers: names unique across both lists; hooks and probes only for sidecars
    (``restartPolicy: Always``)."""
    names = {as_str(c.get("name")) for c in dicts(regular)}
    errs: list[Cause] = []
    for i, ctr in enumerate(dicts(init)):
        ctr_path = index(path, i)
        errs += validate_container_common(ctr, volumes, ctr_path, host_users=host_users)
        restart = ctr.get("restartPolicy")
        if restart is not None and restart != "Always":
            errs.append(not_supported(child(ctr_path, "restartPolicy"), restart, ["Always"]))
        name = as_str(ctr.get("name"))
        if name in names:
            errs.append(duplicate(child(ctr_path, "name"), name))
        elif name:
            names.add(name)
        errs += check_host_port_conflicts([ctr], path)
        if restart == "Always":
            errs += validate_container_probes(ctr, grace, ctr_path)
        else:
            errs += _forbid_sidecar_only_fields(ctr, ctr_path)
        if ctr.get("resizePolicy"):
            errs.append(invalid(child(ctr_path, "resizePolicy"), "",
                                "must not be set for init containers"))
    return errs


def _forbid_sidecar_only_fields(ctr: dict[str, Any], path: str) -> list[Cause]:
    return [forbidden(child(path, field),
                      "may not be set for init containers without restartPolicy=Always")
            for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
            if ctr.get(field) is not None]


def validate_container_common(ctr: dict[str, Any], volumes: dict[str, Any], path: str, *,
                              host_users: bool = True) -> list[Cause]:
    """What every container kind shares: name, image, ports, env, mounts, resources, ..."""
    errs: list[Cause] = []
    name = as_str(ctr.get("name"))
    if not name:
        errs.append(required(child(path, "name")))
    else:
        errs += each_msg(child(path, "name"), name, fmt.is_dns1123_label(name))
    if not as_str(ctr.get("image")):
        errs.append(required(child(path, "image")))
    errs += _enum(ctr.get("terminationMessagePolicy"), TERMINATION_MESSAGE_POLICIES,
                  child(path, "terminationMessagePolicy"))
    errs += validate_container_ports(ctr.get("ports"), child(path, "ports"))
    errs += validate_env(ctr.get("env"), child(path, "env"))
    errs += validate_env_from(ctr.get("envFrom"), child(path, "envFrom"))
    errs += validate_volume_mounts(ctr, volumes, child(path, "volumeMounts"))
    errs += _enum(ctr.get("imagePullPolicy"), PULL_POLICIES, child(path, "imagePullPolicy"))
    errs += validate_resource_requirements(ctr.get("resources"), child(path, "resources"))
    errs += validate_container_security_context(ctr.get("securityContext"),
                                                child(path, "securityContext"),
                                                host_users=host_users)
    return errs


def _enum(value: Any, allowed: list[str], path: str) -> list[Cause]:
    """Empty -> Required; unknown -> Unsupported (``allowed`` in Kubernetes' order)."""
    text = as_str(value)
    if not text:
        return [required(path)]
    return [] if text in allowed else [not_supported(path, text, allowed)]


def validate_container_ports(ports: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(dicts(ports)):
        port_path = index(path, i)
        name = as_str(port.get("name"))
        if name:
            msgs = fmt.is_valid_port_name(name)
            if msgs:
                errs += each_msg(child(port_path, "name"), name, msgs)
            elif name in names:
                errs.append(duplicate(child(port_path, "name"), name))
            else:
                names.add(name)
        container_port = port.get("containerPort") or 0
        if container_port == 0:
            errs.append(required(child(port_path, "containerPort")))
        else:
            errs += each_msg(child(port_path, "containerPort"), container_port,
                             fmt.is_valid_port_num(container_port))
        host_port = port.get("hostPort") or 0
        if host_port != 0:
            errs += each_msg(child(port_path, "hostPort"), host_port,
                             fmt.is_valid_port_num(host_port))
        protocol = as_str(port.get("protocol"))
        if not protocol:
            errs.append(required(child(port_path, "protocol")))
        elif protocol not in PROTOCOLS:
            errs.append(not_supported(child(port_path, "protocol"), protocol, PROTOCOLS))
    return errs


def check_host_port_conflicts(containers: list[dict[str, Any]], path: str) -> list[Cause]:
    """The same ``protocol/hostIP/hostPort`` may appear once across ``containers``."""
    seen: set[str] = set()
    errs: list[Cause] = []
    for ci, ctr in enumerate(containers):
        for pi, port in enumerate(dicts(ctr.get("ports"))):
            host_port = port.get("hostPort") or 0
            if host_port == 0:
                continue
            key = f"{as_str(port.get('protocol'))}/{as_str(port.get('hostIP'))}/{host_port}"
            if key in seen:
                errs.append(duplicate(child(index(child(index(path, ci), "ports"), pi),
                                            "hostPort"), key))
            seen.add(key)
    return errs


def validate_env(env: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, var in enumerate(dicts(env)):
        var_path = index(path, i)
        name = as_str(var.get("name"))
        if not name:
            errs.append(required(child(var_path, "name")))
        else:
            errs += each_msg(child(var_path, "name"), name, fmt.is_relaxed_env_var_name(name))
        errs += _validate_value_from(var, child(var_path, "valueFrom"))
    return errs


def _validate_value_from(var: dict[str, Any], path: str) -> list[Cause]:
    value_from = var.get("valueFrom")
    if value_from is None:
        return []
    value_from = as_dict(value_from)
    errs: list[Cause] = []
    checks = (("fieldRef", _validate_field_ref), ("resourceFieldRef", _validate_resource_ref),
              ("configMapKeyRef", _validate_key_ref), ("secretKeyRef", _validate_key_ref))
    sources = 0
    for field, check in checks:
        if value_from.get(field) is not None:
            sources += 1
            errs += check(as_dict(value_from[field]), child(path, field))
    if sources == 0:
        errs.append(invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                      "`configMapKeyRef` or `secretKeyRef`"))
    elif as_str(var.get("value")):
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif sources > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _validate_field_ref(ref: dict[str, Any], path: str) -> list[Cause]:
    api_version, field_path = as_str(ref.get("apiVersion")), as_str(ref.get("fieldPath"))
    if not api_version:
        return [required(child(path, "apiVersion"))]
    if not field_path:
        return [required(child(path, "fieldPath"))]
    if api_version != "v1":
        return [invalid(child(path, "fieldPath"), field_path, "error converting fieldPath: "
                        f"unsupported pod version: {api_version}")]
    sub = _SUBSCRIPT.match(field_path)
    base = sub.group(1) if sub else field_path
    if base not in _CONVERTIBLE_FIELD_PATHS:
        return [invalid(child(path, "fieldPath"), field_path, "error converting fieldPath: "
                        f"field label not supported: {field_path}")]
    if sub:
        subscript = sub.group(2).lower() if base == "metadata.annotations" else sub.group(2)
        return each_msg(path, subscript, fmt.is_qualified_name(subscript))
    if base not in _ENV_FIELD_PATHS:
        return [not_supported(child(path, "fieldPath"), base, _ENV_FIELD_PATHS)]
    return []


def _validate_resource_ref(ref: dict[str, Any], path: str) -> list[Cause]:
    resource = as_str(ref.get("resource"))
    if not resource:
        return [required(child(path, "resource"))]
    if resource in _RESOURCE_FIELDS or resource.startswith(("requests.hugepages-",
                                                            "limits.hugepages-")):
        return []
    return [not_supported(child(path, "resource"), resource, _RESOURCE_FIELDS)]


def _validate_key_ref(ref: dict[str, Any], path: str) -> list[Cause]:
    name, ref_key = as_str(ref.get("name")), as_str(ref.get("key"))
    errs = each_msg(child(path, "name"), name, fmt.name_is_dns_subdomain(name))
    if not ref_key:
        errs.append(required(child(path, "key")))
    else:
        errs += each_msg(child(path, "key"), ref_key, fmt.is_config_map_key(ref_key))
    return errs


def validate_env_from(env_from: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, source in enumerate(dicts(env_from)):
        src_path = index(path, i)
        prefix = as_str(source.get("prefix"))
        if prefix:
            errs += each_msg(child(src_path, "prefix"), prefix,
                             fmt.is_relaxed_env_var_name(prefix))
        count = 0
        for field in ("configMapRef", "secretRef"):
            if source.get(field) is None:
                continue
            count += 1
            name = as_str(as_dict(source[field]).get("name"))
            name_path = child(src_path, field, "name")
            if not name:
                errs.append(required(name_path))
            else:
                errs += each_msg(name_path, name, fmt.name_is_dns_subdomain(name, True))
        if count == 0:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a "
                                          "time"))
    return errs


def validate_volume_mounts(ctr: dict[str, Any], volumes: dict[str, Any],
                           path: str) -> list[Cause]:
    """Mounts name an existing volume, have unique mount paths and descending subPaths.

    Kubernetes reports subPath problems at ``volumeMounts.subPath`` (no index); so do we.
    """
    errs: list[Cause] = []
    mount_points: set[str] = set()
    privileged = as_dict(ctr.get("securityContext")).get("privileged") is True
    for i, mount in enumerate(dicts(ctr.get("volumeMounts"))):
        mount_path_field = child(index(path, i), "mountPath")
        name, mount_path = as_str(mount.get("name")), as_str(mount.get("mountPath"))
        if not name:
            errs.append(required(child(index(path, i), "name")))
        if name not in volumes:
            errs.append(not_found(child(index(path, i), "name"), name))
        if not mount_path:
            errs.append(required(mount_path_field))
        if mount_path in mount_points:
            errs.append(invalid(mount_path_field, mount_path, "must be unique"))
        mount_points.add(mount_path)
        errs += _validate_sub_paths(mount, volumes.get(name), path, index(path, i))
        errs += _validate_propagation(mount, privileged, path)
    return errs


def _validate_sub_paths(mount: dict[str, Any], source: Any, path: str,
                        mount_path: str) -> list[Cause]:
    sub_path, expr = as_str(mount.get("subPath")), as_str(mount.get("subPathExpr"))
    errs: list[Cause] = []
    if isinstance(source, dict) and source.get("image") is not None:
        if sub_path:
            errs.append(invalid(child(mount_path, "subPath"), sub_path,
                                "not allowed in image volume sources"))
        if expr:
            errs.append(invalid(child(mount_path, "subPathExpr"), expr,
                                "not allowed in image volume sources"))
    if sub_path:
        errs += validate_local_descending_path(sub_path, child(path, "subPath"))
    if expr:
        if sub_path:
            errs.append(invalid(child(mount_path, "subPathExpr"), expr,
                                "subPathExpr and subPath are mutually exclusive"))
        errs += validate_local_descending_path(expr, child(path, "subPathExpr"))
    return errs


def _validate_propagation(mount: dict[str, Any], privileged: bool, path: str) -> list[Cause]:
    propagation = mount.get("mountPropagation")
    errs: list[Cause] = []
    if propagation is not None:
        prop_path = child(path, "mountPropagation")
        if propagation not in MOUNT_PROPAGATIONS:
            errs.append(not_supported(prop_path, propagation, MOUNT_PROPAGATIONS))
        if propagation == "Bidirectional" and not privileged:
            errs.append(forbidden(prop_path, "Bidirectional mount propagation is available "
                                             "only to privileged containers"))
    rro = mount.get("recursiveReadOnly")
    if rro is None or rro == "Disabled":
        return errs
    rro_path = child(path, "recursiveReadOnly")
    if rro not in ("Enabled", "IfPossible"):
        return errs + [not_supported(rro_path, rro, ["Disabled", "Enabled", "IfPossible"])]
    if mount.get("readOnly") is not True:
        errs.append(forbidden(rro_path, "may only be specified when readOnly is true"))
    if propagation not in (None, "None"):
        errs.append(forbidden(rro_path, "may only be specified when mountPropagation is None "
                                        "or not specified"))
    return errs


def validate_path_no_backsteps(target: str, path: str) -> list[Cause]:
    if ".." in target.split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def validate_local_descending_path(target: str, path: str) -> list[Cause]:
    """Relative and without ``..`` elements."""
    errs = [invalid(path, target, "must be a relative path")] if target.startswith("/") else []
    return errs + validate_path_no_backsteps(target, path)


def image_whitespace(containers: Any, path: str) -> list[Cause]:
    """``validateContainersOnlyForPod``: no leading or trailing whitespace in images."""
    errs: list[Cause] = []
    for i, ctr in enumerate(dicts(containers)):
        image = as_str(ctr.get("image"))
        if image != image.strip():
            errs.append(invalid(child(index(path, i), "image"), image,
                                "must not have leading or trailing whitespace"))
    return errs
