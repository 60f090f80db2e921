"""ObjectMeta validation (apimachinery ``api/validation/objectmeta.go`` + core finalizers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podling.api.errors import Cause, forbidden, invalid, required, too_long
from podling.api.validation import _formats as fmt
from podling.api.validation._util import (IMMUTABLE_MSG, as_dict, as_list, as_str, child,
                                          go_time, index, invalid_raw, is_int, nonnegative)

NameFn = Callable[[str, bool], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
_BANNED_OWNERS = {("", "v1", "Event")}


def validate_object_meta(meta: dict[str, Any], *, namespaced: bool, path: str = "metadata",
                         name_fn: NameFn = fmt.name_is_dns_subdomain,
                         kube_finalizers: bool = True) -> list[Cause]:
    """Create-time metadata rules; ``name_fn`` is the kind's name format (DNS subdomain).

    ``kube_finalizers`` adds core's rule that one-segment finalizers must be standard ones
    (core kinds); other API groups (Lease) use the plain apimachinery rules.
    """
    meta = as_dict(meta)
    errs: list[Cause] = []
    generate_name = as_str(meta.get("generateName"))
    if generate_name:
        errs += [invalid(child(path, "generateName"), generate_name, m)
                 for m in name_fn(generate_name, True)]
    name = as_str(meta.get("name"))
    if not name:
        errs.append(required(child(path, "name"), "name or generateName is required"))
    else:
        errs += [invalid(child(path, "name"), name, m) for m in name_fn(name, False)]
    errs += _validate_namespace_field(meta, namespaced, path)
    errs += nonnegative(child(path, "generation"), meta.get("generation"))
    errs += _validate_common(meta, path, kube_finalizers=kube_finalizers)
    return errs


def _validate_namespace_field(meta: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    namespace = as_str(meta.get("namespace"))
    ns_path = child(path, "namespace")
    if not namespaced:
        return [forbidden(ns_path, "not allowed on this type")] if namespace else []
    if not namespace:
        return [required(ns_path)]
    return [invalid(ns_path, namespace, m) for m in fmt.name_is_dns_label(namespace)]


def _validate_common(meta: dict[str, Any], path: str, *,
                     kube_finalizers: bool = True) -> list[Cause]:
    errs = validate_labels(as_dict(meta.get("labels")), child(path, "labels"))
    errs += validate_annotations(as_dict(meta.get("annotations")), child(path, "annotations"))
    errs += validate_owner_references(as_list(meta.get("ownerReferences")),
                                      child(path, "ownerReferences"))
    finalizers = [f for f in as_list(meta.get("finalizers")) if isinstance(f, str)]
    errs += validate_finalizers(finalizers, child(path, "finalizers"))
    for i, name in enumerate(finalizers if kube_finalizers else []):
        errs += validate_kube_finalizer_name(name, index(child(path, "finalizers"), i))
    return errs


def validate_label_name(name: str, path: str) -> list[Cause]:
    """meta/v1 ``ValidateLabelName``: a qualified name."""
    return [invalid(path, name, m) for m in fmt.is_qualified_name(name)]


def validate_labels(labels: dict[str, Any], path: str) -> list[Cause]:
    """Every key a qualified name, every value a label value; errors point at ``path``."""
    errs: list[Cause] = []
    for k, v in labels.items():
        errs += validate_label_name(k, path)
        value = v if isinstance(v, str) else ""
        errs += [invalid(path, value, m) for m in fmt.is_label_value(value)]
    return errs


def validate_annotations(annotations: dict[str, Any], path: str) -> list[Cause]:
    """Keys are qualified names ignoring case; keys plus values at most 256 KiB."""
    errs: list[Cause] = []
    for k in annotations:
        errs += [invalid(path, k, m) for m in fmt.is_qualified_name(k.lower())]
    size = sum(len(k.encode()) + len(as_str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_owner_references(refs: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    first_controller = ""
    for ref in refs:
        ref = as_dict(ref)
        errs += _validate_owner_reference(ref, path)
        if ref.get("controller") is True:
            current = f"{as_str(ref.get('kind'))}/{as_str(ref.get('name'))}"
            if first_controller:
                errs.append(invalid(path, "", "Only one reference can have Controller set to "
                                    f"true. Found \"true\" in references for {first_controller}"
                                    f" and {current}"))
            else:
                first_controller = current
    return errs


def _validate_owner_reference(ref: dict[str, Any], path: str) -> list[Cause]:
    api_version, kind = as_str(ref.get("apiVersion")), as_str(ref.get("kind"))
    group, version = _split_api_version(api_version)
    errs: list[Cause] = []
    if not version:
        errs.append(invalid(child(path, "apiVersion"), api_version, "version must not be empty"))
    if not kind:
        errs.append(invalid(child(path, "kind"), kind, "must not be empty"))
    for field in ("name", "uid"):
        if not as_str(ref.get(field)):
            errs.append(invalid(child(path, field), as_str(ref.get(field)), "must not be empty"))
    if (group, version, kind) in _BANNED_OWNERS:
        errs.append(invalid(path, "", f"{group}/{version}, Kind={kind} is disallowed from "
                                      "being an owner"))
    return errs


def _split_api_version(api_version: str) -> tuple[str, str]:
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return "", ""


def validate_finalizers(finalizers: list[str], path: str) -> list[Cause]:
    """apimachinery ``ValidateFinalizers``: qualified names; orphan + foreground conflict."""
    errs: list[Cause] = []
    for name in finalizers:
        errs += [invalid(path, name, m) for m in fmt.is_qualified_name(name)]
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(path, "", "finalizer orphan and foregroundDeletion cannot be both "
                                      "set"))
    return errs


def validate_kube_finalizer_name(name: str, path: str) -> list[Cause]:
    """A one-segment finalizer must be a standard one (``kubernetes``, ``orphan``, ...)."""
    if "/" not in name and name not in STANDARD_FINALIZERS:
        return [invalid(path, name, "name is neither a standard finalizer name nor is it fully "
                                    "qualified")]
    return []


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any],
                                path: str = "metadata") -> list[Cause]:
    """Update rules: identity fields immutable, a resourceVersion present, no new finalizers
    while deleting, generation never decreasing; then the create-time syntax checks."""
    new, old = as_dict(new), as_dict(old)
    errs: list[Cause] = []
    if old.get("deletionTimestamp"):
        errs += _no_new_finalizers(new, old, child(path, "finalizers"))
    if not as_str(new.get("resourceVersion")):
        errs.append(invalid(child(path, "resourceVersion"), as_str(new.get("resourceVersion")),
                            "must be specified for an update"))
    new_gen, old_gen = new.get("generation") or 0, old.get("generation") or 0
    if is_int(new_gen) and is_int(old_gen) and new_gen < old_gen:
        errs.append(invalid(child(path, "generation"), new_gen, "must not be decremented"))
    errs += _immutable_identity(new, old, path)
    errs += _validate_common(new, path)
    return errs


def _no_new_finalizers(new: dict[str, Any], old: dict[str, Any], path: str) -> list[Cause]:
    extra = sorted(set(as_list(new.get("finalizers"))) - set(as_list(old.get("finalizers"))))
    if not extra:
        return []
    shown = "[]string{" + ", ".join(f'"{e}"' for e in extra) + "}"
    return [forbidden(path, "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {shown}")]


def _immutable_identity(new: dict[str, Any], old: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for field in ("name", "namespace", "uid"):
        if as_str(new.get(field)) != as_str(old.get(field)):
            errs.append(invalid(child(path, field), as_str(new.get(field)), IMMUTABLE_MSG))
    if new.get("creationTimestamp") != old.get("creationTimestamp"):
        errs.append(invalid_raw(child(path, "creationTimestamp"),
                                go_time(new.get("creationTimestamp") or ""), IMMUTABLE_MSG))
    if new.get("deletionTimestamp") != old.get("deletionTimestamp"):
        errs.append(invalid_raw(child(path, "deletionTimestamp"),
                                go_time(new.get("deletionTimestamp")), IMMUTABLE_MSG))
    if new.get("deletionGracePeriodSeconds") != old.get("deletionGracePeriodSeconds"):
        value = new.get("deletionGracePeriodSeconds")
        errs.append(invalid(child(path, "deletionGracePeriodSeconds"), value, IMMUTABLE_MSG))
    return errs
