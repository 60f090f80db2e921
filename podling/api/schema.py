"""The structure of every API type podling serves, from the generated ``schema.json``.

``schema.json`` (made by ``tools/gen_schema.py``) maps OpenAPI definition names such as
``io.k8s.api.core.v1.PodSpec`` to ``{"properties": {field: fieldSchema}, "gvk": {...}}``; a
field schema is ``{"type": ...}``, ``{"ref": name}``, an array with ``items``, a map with
``additionalProperties``, or ``{}`` for "any JSON value" (int-or-string, raw extensions).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

POD = "io.k8s.api.core.v1.Pod"
NODE = "io.k8s.api.core.v1.Node"
NAMESPACE = "io.k8s.api.core.v1.Namespace"
EVENT = "io.k8s.api.core.v1.Event"
CONFIG_MAP = "io.k8s.api.core.v1.ConfigMap"
SECRET = "io.k8s.api.core.v1.Secret"
SERVICE_ACCOUNT = "io.k8s.api.core.v1.ServiceAccount"
TOKEN_REQUEST = "io.k8s.api.authentication.v1.TokenRequest"
SELF_SUBJECT_REVIEW = "io.k8s.api.authentication.v1.SelfSubjectReview"
TOKEN_REVIEW = "io.k8s.api.authentication.v1.TokenReview"
LEASE = "io.k8s.api.coordination.v1.Lease"
BINDING = "io.k8s.api.core.v1.Binding"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
SELF_SUBJECT_ACCESS_REVIEW = "io.k8s.api.authorization.v1.SelfSubjectAccessReview"
EVICTION = "io.k8s.api.policy.v1.Eviction"
SELF_SUBJECT_RULES_REVIEW = "io.k8s.api.authorization.v1.SelfSubjectRulesReview"
SUBJECT_ACCESS_REVIEW = "io.k8s.api.authorization.v1.SubjectAccessReview"
LOCAL_SUBJECT_ACCESS_REVIEW = "io.k8s.api.authorization.v1.LocalSubjectAccessReview"
ROLE = "io.k8s.api.rbac.v1.Role"
CLUSTER_ROLE = "io.k8s.api.rbac.v1.ClusterRole"
ROLE_BINDING = "io.k8s.api.rbac.v1.RoleBinding"
CLUSTER_ROLE_BINDING = "io.k8s.api.rbac.v1.ClusterRoleBinding"


@functools.cache
def types() -> dict[str, dict[str, Any]]:
    """Every definition, by OpenAPI name."""
    path = os.path.join(os.path.dirname(__file__), "schema.json")
    with open(path) as f:
        return json.load(f)["types"]


def properties(type_name: str) -> dict[str, dict[str, Any]]:
    """The fields of a type (empty for an unknown name)."""
    return types().get(type_name, {}).get("properties", {})


def field_schema(type_name: str, field: str) -> dict[str, Any] | None:
    """The schema of one field, or None when the type has no such field."""
    return properties(type_name).get(field)


def element_type(schema: dict[str, Any]) -> str | None:
    """The definition name a field holds: itself, a list's items or a map's values."""
    if "ref" in schema:
        return schema["ref"]
    for nested in ("items", "additionalProperties"):
        if nested in schema:
            return element_type(schema[nested])
    return None
