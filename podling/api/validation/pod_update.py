"""Pod update and status-update validation (``ValidatePodUpdate``, ``ValidatePodStatusUpdate``).

Both take defaulted v1 Pod dicts. Comparisons are semantic like apimachinery's: ``null``,
``[]`` and ``{}`` read as "unset".
"""

from __future__ import annotations

import copy
import json
from typing import Any

from podling.api.errors import Cause, duplicate, forbidden, invalid, required
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (IMMUTABLE_MSG, as_dict, as_list, as_str, child,
                                          dicts, each_msg, index, is_int, key)
from podling.api.validation.meta import validate_object_meta_update
from podling.api.validation.pod import (MAX_INT32, MIRROR_POD_ANNOTATION,
                                        validate_pod_metadata_and_spec)
from podling.api.validation.scheduling import validate_tolerations

UPDATABLE_FIELDS = ",".join([
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)",
])
SPEC_FORBIDDEN_PREFIX = f"pod updates may not change fields other than {UPDATABLE_FIELDS}"
_SYSTEM_CONDITIONS = ("PodScheduled", "Ready", "Initialized")


def normalize(value: Any) -> Any:
    """Drop ``null``, empty lists and empty objects, recursively (semantic equality)."""
    if isinstance(value, dict):
        out = {k: normalize(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Metadata update rules, validity of ``new``, and the pod spec immutability rule."""
    new_meta, old_meta = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    errs = validate_object_meta_update(new_meta, old_meta)
    errs += validate_pod_metadata_and_spec(new)
    errs += _annotation_updates(new_meta, old_meta)
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    for field in ("containers", "initContainers"):
        container_errs, stop = _container_updates(new_spec.get(field), old_spec.get(field),
                                                  f"spec.{field}")
        errs += container_errs
        if stop:
            return errs
    deadline_errs, stop = _deadline_update(new_spec, old_spec)
    errs += deadline_errs
    if stop:
        return errs
    errs += _only_added_tolerations(new_spec.get("tolerations"), old_spec.get("tolerations"))
    errs += _only_deleted_gates(new_spec.get("schedulingGates"),
                                old_spec.get("schedulingGates"))
    return errs + _spec_unchanged(new_spec, old_spec)


def validate_pod_ephemeral_containers_update(new: dict[str, Any],
                                             old: dict[str, Any]) -> list[Cause]:
    """``ValidatePodEphemeralContainersUpdate``: ``new`` differs from ``old`` only in
    ``spec.ephemeralContainers`` (the subresource's strategy made it so). Static pods take
    none; existing ones may be neither removed nor changed (matched by name, since a patch
    does not keep the order); new ones are checked with the rest of the spec."""
    new_meta, old_meta = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    errs = validate_object_meta_update(new_meta, old_meta)
    errs += validate_pod_metadata_and_spec(new)
    errs += _annotation_updates(new_meta, old_meta)
    if MIRROR_POD_ANNOTATION in as_dict(old_meta.get("annotations")):
        return [forbidden("", "static pods do not support ephemeral containers")]
    path = "spec.ephemeralContainers"
    by_name = {as_str(c.get("name")): c
               for c in dicts(as_dict(new.get("spec")).get("ephemeralContainers"))}
    for old_ctr in dicts(as_dict(old.get("spec")).get("ephemeralContainers")):
        name = as_str(old_ctr.get("name"))
        new_ctr = by_name.get(name)
        if new_ctr is None:
            errs.append(forbidden(path, f'existing ephemeral containers "{name}" may not be '
                                        "removed\n"))
        elif normalize(new_ctr) != normalize(old_ctr):
            diff = "\n".join(["  core.EphemeralContainer{"]
                             + _diff_lines(normalize(old_ctr), normalize(new_ctr), "")
                             + ["  }"]) + "\n"
            errs.append(forbidden(path, f'existing ephemeral containers "{name}" may not be '
                                        f"changed\n{diff}"))
    return errs


def _annotation_updates(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    new_ann, old_ann = as_dict(new.get("annotations")), as_dict(old.get("annotations"))
    path = "metadata.annotations"
    errs: list[Cause] = []
    if MIRROR_POD_ANNOTATION in old_ann and new_ann.get(MIRROR_POD_ANNOTATION) != old_ann[
            MIRROR_POD_ANNOTATION]:
        errs.append(forbidden(key(path, MIRROR_POD_ANNOTATION),
                              "may not remove or update mirror pod annotation"))
    if MIRROR_POD_ANNOTATION in new_ann and MIRROR_POD_ANNOTATION not in old_ann:
        errs.append(forbidden(key(path, MIRROR_POD_ANNOTATION),
                              "may not add mirror pod annotation"))
    return errs


def _container_updates(new: Any, old: Any, path: str) -> tuple[list[Cause], bool]:
    new_items, old_items = dicts(new), dicts(old)
    if len(new_items) != len(old_items):
        return [forbidden(path, "pod updates may not add or remove containers")], True
    errs: list[Cause] = []
    for i, ctr in enumerate(new_items):
        image = as_str(ctr.get("image"))
        if not image:
            errs.append(required(child(index(path, i), "image")))
        if image != image.strip():
            errs.append(invalid(child(index(path, i), "image"), image,
                                "must not have leading or trailing whitespace"))
    return errs, False


def _deadline_update(new: dict[str, Any], old: dict[str, Any]) -> tuple[list[Cause], bool]:
    """May be set from unset, or lowered; never raised or removed."""
    path = "spec.activeDeadlineSeconds"
    new_value, old_value = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if new_value is not None:
        if not is_int(new_value) or not 0 <= new_value <= MAX_INT32:
            return [invalid(path, new_value, fmt.inclusive_range_error(0, MAX_INT32))], True
        if is_int(old_value) and old_value < new_value:
            return [invalid(path, new_value, "must be less than or equal to previous value")], True
    elif old_value is not None:
        return [invalid(path, None, "must not update from a positive integer to nil value")], \
            False
    return [], False


def _only_added_tolerations(new: Any, old: Any) -> list[Cause]:
    path = "spec.tolerations"
    new_items = [normalize(t) for t in dicts(new)]
    for old_tol in dicts(old):
        found = False
        for new_tol in new_items:
            candidate = dict(normalize(old_tol))
            candidate.pop("tolerationSeconds", None)
            if "tolerationSeconds" in new_tol:
                candidate["tolerationSeconds"] = new_tol["tolerationSeconds"]
            if candidate == new_tol:
                found = True
                break
        if not found:
            return [forbidden(path, "existing toleration can not be modified except its "
                                    "tolerationSeconds")]
    return validate_tolerations(new, path)


def _only_deleted_gates(new: Any, old: Any) -> list[Cause]:
    old_names = {as_str(g.get("name")) for g in dicts(old)}
    errs: list[Cause] = []
    added: dict[str, int] = {}
    for i, gate in enumerate(dicts(new)):
        added[as_str(gate.get("name"))] = i
    for name, i in added.items():
        if name not in old_names:
            errs.append(forbidden(f"spec.schedulingGates[{i}].name", "only deletion is allowed, "
                                  f"but found new scheduling gate '{name}'"))
    return errs


def _spec_unchanged(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """After munging the mutable fields back, the spec must equal the old one."""
    old_norm = normalize(old)
    if normalize(new) == old_norm:
        return []
    munged = copy.deepcopy(new)
    for field in ("containers", "initContainers"):
        for ctr, old_ctr in zip(dicts(munged.get(field)), dicts(old.get(field))):
            ctr["image"] = old_ctr.get("image")
    for field in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged[field] = copy.deepcopy(old.get(field))
    old_grace, new_grace = old.get("terminationGracePeriodSeconds"), munged.get(
        "terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    errs: list[Cause] = []
    if old.get("schedulingGates"):
        errs += _node_selector_additions(as_dict(munged.get("nodeSelector")),
                                         as_dict(old.get("nodeSelector")))
        munged["nodeSelector"] = copy.deepcopy(old.get("nodeSelector"))
    munged_norm = normalize(munged)
    if munged_norm != old_norm:
        diff = spec_diff(old_norm, munged_norm)
        errs.append(forbidden("spec", f"{SPEC_FORBIDDEN_PREFIX}\n{diff}"))
    return errs


def _node_selector_additions(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Gated pods may add nodeSelector entries but not change or drop existing ones."""
    errs: list[Cause] = []
    for k, v in old.items():
        if new.get(k) != v:
            errs.append(invalid(key("spec.nodeSelector", k), as_str(new.get(k)), IMMUTABLE_MSG))
    return errs


def spec_diff(old: Any, new: Any, path: str = "") -> str:
    """A short ``-``/``+`` listing of what differs (in the spirit of ``cmp.Diff``)."""
    lines = ["  v1.PodSpec{"] + _diff_lines(old, new, path) + ["  }"]
    return "\n".join(lines) + "\n"


def _diff_lines(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for k in sorted(set(old) | set(new)):
            sub = f"{path}.{k}" if path else k
            lines += _diff_lines(old.get(k), new.get(k), sub)
        return lines
    if (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)):
        lines = []
        for i, (o, n) in enumerate(zip(old, new)):
            lines += _diff_lines(o, n, f"{path}[{i}]")
        return lines
    if old == new:
        return []
    return [f"- \t{path}: {_show(old)},", f"+ \t{path}: {_show(new)},"]


def _show(value: Any) -> str:
    return "nil" if value is None else json.dumps(value, sort_keys=True)


def validate_pod_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """``ValidatePodStatusUpdate``: node unchanged, QoS immutable, no un-terminating, IPs."""
    new_meta, old_meta = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    errs = validate_object_meta_update(new_meta, old_meta)
    errs += _annotation_updates(new_meta, old_meta)
    status, old_status = as_dict(new.get("status")), as_dict(old.get("status"))
    errs += _pod_conditions(status.get("conditions"))
    if as_str(as_dict(new.get("spec")).get("nodeName")) != as_str(
            as_dict(old.get("spec")).get("nodeName")):
        errs.append(forbidden("status.nodeName", "may not be changed directly"))
    nominated = as_str(status.get("nominatedNodeName"))
    if nominated and nominated != as_str(old_status.get("nominatedNodeName")):
        errs += each_msg("status.nominatedNodeName", nominated,
                         fmt.name_is_dns_subdomain(nominated))
    if as_str(status.get("qosClass")) != as_str(old_status.get("qosClass")):
        errs.append(invalid("status.qosClass", as_str(status.get("qosClass")), IMMUTABLE_MSG))
    restart = as_str(as_dict(old.get("spec")).get("restartPolicy"))
    errs += _state_transitions(status, old_status, "containerStatuses", restart)
    errs += _state_transitions(status, old_status, "initContainerStatuses", restart,
                               sidecars=_sidecar_names(old))
    # the agent never restarts an ephemeral container: as if its restartPolicy were Never
    errs += _state_transitions(status, old_status, "ephemeralContainerStatuses", "Never")
    errs += _ip_list(status.get("podIPs"), "status.podIPs")
    errs += _host_ips(status)
    return errs


def _pod_conditions(conditions: Any) -> list[Cause]:
    errs: list[Cause] = []
    for i, condition in enumerate(dicts(conditions)):
        kind = as_str(condition.get("type"))
        if kind not in _SYSTEM_CONDITIONS:
            errs += each_msg(f"metadata.conditions[{i}].Type", kind, fmt.is_qualified_name(kind))
    return errs


def _sidecar_names(pod: dict[str, Any]) -> set[str]:
    return {as_str(c.get("name")) for c in dicts(as_dict(pod.get("spec")).get("initContainers"))
            if c.get("restartPolicy") == "Always"}


def _state_transitions(status: dict[str, Any], old_status: dict[str, Any], field: str,
                       restart_policy: str, sidecars: set[str] | None = None) -> list[Cause]:
    """Unless restartPolicy is Always, a terminated container stays terminated."""
    if restart_policy == "Always":
        return []
    new_items = dicts(status.get(field))
    errs: list[Cause] = []
    for i, old_cs in enumerate(dicts(old_status.get(field))):
        terminated = as_dict(old_cs.get("state")).get("terminated")
        if terminated is None or as_str(old_cs.get("name")) in (sidecars or set()):
            continue
        if as_dict(terminated).get("exitCode", 0) != 0 and restart_policy == "OnFailure":
            continue
        for new_cs in new_items:
            if (new_cs.get("name") == old_cs.get("name")
                    and as_dict(new_cs.get("state")).get("terminated") is None):
                errs.append(forbidden(f"status.{field}[{i}].state",
                                      "may not be transitioned to non-terminated state"))
    return errs


def _ip_list(items: Any, path: str) -> list[Cause]:
    ips = [as_str(as_dict(item).get("ip")) for item in as_list(items)]
    errs: list[Cause] = []
    for i, ip in enumerate(ips):
        errs += fmt.validate_ip(index(path, i), ip)
    if len(ips) > 1:
        parsed = [fmt.parse_ip_sloppy(ip) for ip in ips]
        families = {p.version for p in parsed if p is not None}
        if len(ips) > 2 or len(families) != 2:
            errs.append(invalid(path, "", "may specify no more than one IP for each IP family"))
        seen: set[str] = set()
        for i, ip in enumerate(ips):
            if ip in seen:
                errs.append(duplicate(index(path, i), ip))
            seen.add(ip)
    return errs


def _host_ips(status: dict[str, Any]) -> list[Cause]:
    host_ips = as_list(status.get("hostIPs"))
    if not host_ips:
        return []
    first = as_str(as_dict(host_ips[0]).get("ip"))
    errs: list[Cause] = []
    if as_str(status.get("hostIP")) != first:
        errs.append(invalid("status.hostIPs[0].ip", first, "must be equal to `hostIP`"))
    return errs + _ip_list(host_ips, "status.hostIPs")
