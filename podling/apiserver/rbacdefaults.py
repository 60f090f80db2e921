"""The default ClusterRoles and ClusterRoleBindings (Kubernetes' bootstrap policy), put in
place each time the API server starts, as kube-apiserver's RBAC post-start hook does.

The data is ``podling/api/rbac_defaults.json``: ``cluster-admin`` (bound to system:masters),
the user-facing ``admin``, ``edit`` and ``view`` (filled by aggregation from the
``system:aggregate-to-*`` roles and any ClusterRole labelled
``rbac.authorization.k8s.io/aggregate-to-<role>: "true"``), and ``system:discovery``,
``system:basic-user`` and ``system:public-info-viewer`` (bound to every authenticated user).

A missing object is created. An existing one whose annotation
``rbac.authorization.kubernetes.io/autoupdate`` is not ``"false"`` gets back what it lacks:
labels and annotations, rules it no longer covers (an aggregated role: its aggregationRule),
subjects; a binding whose roleRef changed is replaced. Nothing an administrator added is
removed.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Callable

from ..api import errors, rbac
from ..api.types import Obj
from .registry.store import RegistryStore

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "api", "rbac_defaults.json")


@functools.cache
def default_policy() -> dict[str, list[Obj]]:
    """``{"clusterRoles": [...], "clusterRoleBindings": [...]}`` (shared: copy to change)."""
    with open(DATA) as f:
        return json.load(f)


async def ensure_default_policy(stores: dict[str, RegistryStore]) -> None:
    """Create or repair the default roles and bindings (see the module docstring)."""
    policy = default_policy()
    for role in policy["clusterRoles"]:
        await _reconcile(stores["clusterroles"], role, _repair_role)
    for binding in policy["clusterRoleBindings"]:
        await _reconcile(stores["clusterrolebindings"], binding, _repair_binding)


async def _reconcile(store: RegistryStore, wanted: Obj,
                     repair: Callable[[Obj, Obj], Obj | None]) -> None:
    name = wanted["metadata"]["name"]
    try:
        current = await store.get(None, name)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
        await _create(store, wanted)
        return
    if (current["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "false":
        return
    repaired = repair(json.loads(json.dumps(current)), wanted)
    if repaired is None:
        return
    if repaired.get("roleRef") != current.get("roleRef"):  # immutable: replace the binding
        await store.delete(None, name)
        await _create(store, wanted)
        return
    try:
        await store.update(None, name, lambda _: repaired)
    except errors.ApiError as exc:
        if exc.code != 409:  # another server repaired it meanwhile
            raise


async def _create(store: RegistryStore, wanted: Obj) -> None:
    try:
        await store.create(None, json.loads(json.dumps(wanted)))
    except errors.ApiError as exc:
        if exc.code != 409:  # another server created it meanwhile
            raise


def _merged_metadata(current: Obj, wanted: Obj) -> bool:
    """Add the labels and annotations ``current`` lacks; whether any were missing."""
    changed = False
    for field in ("labels", "annotations"):
        have = current["metadata"].setdefault(field, {})
        for key, value in (wanted["metadata"].get(field) or {}).items():
            if key not in have:
                have[key], changed = value, True
    return changed


def _repair_role(current: Obj, wanted: Obj) -> Obj | None:
    changed = _merged_metadata(current, wanted)
    if "aggregationRule" in wanted:
        if current.get("aggregationRule") != wanted["aggregationRule"]:
            current["aggregationRule"], changed = wanted["aggregationRule"], True
    else:
        rules = current.setdefault("rules", [])
        lacking = [rule for rule in wanted.get("rules") or []
                   if rbac.uncovered(rules, [rule])]
        if lacking:
            rules += lacking
            changed = True
    return current if changed else None


def _repair_binding(current: Obj, wanted: Obj) -> Obj | None:
    changed = _merged_metadata(current, wanted)
    if current.get("roleRef") != wanted["roleRef"]:
        current["roleRef"], changed = wanted["roleRef"], True
    subjects = current.setdefault("subjects", [])
    for subject in wanted.get("subjects") or []:
        if subject not in subjects:
            subjects.append(subject)
            changed = True
    return current if changed else None

