"""Ephemeral container validation (``validateEphemeralContainers``, Kubernetes 1.32).

Ephemeral containers (``spec.ephemeralContainers``) are added to a running pod through the
``pods/ephemeralcontainers`` subresource; they are validated with the rest of the pod spec
(after the init containers) every time the pod is:

* every container kind's common checks (name, image, ports, env, mounts, …), and the image
  without leading or trailing whitespace;
* names unique across app, init and ephemeral containers (``Duplicate value``);
* ``targetContainerName``, when set, names an app or init container (``Not found``);
* the fields an ephemeral container may not have (ports, resources, resizePolicy,
  restartPolicy, probes, lifecycle) are ``Forbidden: cannot be set for an Ephemeral
  Container``, in the order of Kubernetes' ``EphemeralContainerCommon`` struct; so are
  ``subPath`` and ``subPathExpr`` of its volume mounts.

A field counts as set as Kubernetes' reflection sees it: present and not null (an empty
list is set), except ``resources``, which is set only with a non-null member.
"""

from __future__ import annotations

from typing import Any

from podling.api.errors import Cause, duplicate, forbidden, invalid
from podling.api.validation._util import as_dict, as_str, child, dicts, index, not_found
from podling.api.validation.container import validate_container_common

FORBIDDEN_MSG = "cannot be set for an Ephemeral Container"
#: EphemeralContainerCommon's fields that an ephemeral container may not set, in struct order
FORBIDDEN_FIELDS = ("ports", "resources", "resizePolicy", "restartPolicy", "livenessProbe",
                    "readinessProbe", "startupProbe", "lifecycle")


def validate_ephemeral_containers(ephemeral: Any, containers: Any, init: Any,
                                  volumes: dict[str, Any], path: str, *,
                                  host_users: bool = True) -> list[Cause]:
    """All causes for ``spec.ephemeralContainers`` (``path``); see the module docstring."""
    items = dicts(ephemeral)
    if not items:
        return []
    others = {as_str(c.get("name")) for c in dicts(containers) + dicts(init)}
    names = set(others)
    errs: list[Cause] = []
    for i, ctr in enumerate(items):
        ctr_path = index(path, i)
        errs += validate_container_common(ctr, volumes, ctr_path, host_users=host_users)
        image = as_str(ctr.get("image"))
        if image != image.strip():
            errs.append(invalid(child(ctr_path, "image"), image,
                                "must not have leading or trailing whitespace"))
        name = as_str(ctr.get("name"))
        if name in names:
            errs.append(duplicate(child(ctr_path, "name"), name))
        else:
            names.add(name)
        target = as_str(ctr.get("targetContainerName"))
        if target and target not in others:
            errs.append(not_found(child(ctr_path, "targetContainerName"), target))
        errs += [forbidden(child(ctr_path, f), FORBIDDEN_MSG) for f in FORBIDDEN_FIELDS
                 if _is_set(ctr, f)]
        for mi, mount in enumerate(dicts(ctr.get("volumeMounts"))):
            for sub in ("subPath", "subPathExpr"):
                if as_str(mount.get(sub)):
                    errs.append(forbidden(child(index(child(ctr_path, "volumeMounts"), mi), sub),
                                          FORBIDDEN_MSG))
    return errs


def _is_set(ctr: dict[str, Any], name: str) -> bool:
    value = ctr.get(name)
    if name == "resources":
        return any(v is not None for v in as_dict(value).values())
    return value is not None
