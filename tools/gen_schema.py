"""Generate podling/api/schema.json: the structure of every API type podling serves.

The field names and types come from the model metadata (``openapi_types`` and
``attribute_map``) of the official ``kubernetes`` Python client, version 32 (Kubernetes 1.32),
so the models are complete. Only structure is taken: names, types, nesting.

Run: ``.venv/bin/python tools/gen_schema.py`` (output is committed).
"""

from __future__ import annotations

import json
import os
import re

from kubernetes.client import models

META = {"ObjectMeta", "ListMeta", "OwnerReference", "ManagedFieldsEntry", "LabelSelector",
        "LabelSelectorRequirement", "Status", "StatusDetails", "StatusCause", "DeleteOptions",
        "Preconditions", "Condition", "FieldSelectorRequirement", "WatchEvent"}
AUTHORIZATION = {"SelfSubjectAccessReview", "SelfSubjectAccessReviewSpec", "ResourceAttributes",
                 "NonResourceAttributes", "SubjectAccessReviewStatus", "FieldSelectorAttributes",
                 "LabelSelectorAttributes", "SelfSubjectRulesReview", "SelfSubjectRulesReviewSpec",
                 "SubjectRulesReviewStatus", "ResourceRule", "NonResourceRule",
                 "SubjectAccessReview", "SubjectAccessReviewSpec", "LocalSubjectAccessReview"}
RBAC = {"Role", "RoleList", "ClusterRole", "ClusterRoleList", "RoleBinding", "RoleBindingList",
        "ClusterRoleBinding", "ClusterRoleBindingList", "PolicyRule", "AggregationRule",
        "RoleRef", "Subject"}
COORDINATION = {"Lease", "LeaseSpec", "LeaseList"}
AUTHENTICATION = {"TokenRequest", "TokenRequestSpec", "TokenRequestStatus", "BoundObjectReference",
                  "SelfSubjectReview", "SelfSubjectReviewStatus", "UserInfo",
                  "TokenReview", "TokenReviewSpec", "TokenReviewStatus"}
# Go []byte fields: base64 strings on the wire (OpenAPI format "byte").
BYTE_FIELDS = {("V1Secret", "data"), ("V1ConfigMap", "binary_data")}

# Top-level kinds served, with their group/version.
ROOTS = {
    "V1Pod": ("", "v1"), "V1PodList": ("", "v1"), "V1Binding": ("", "v1"),
    "V1Node": ("", "v1"), "V1NodeList": ("", "v1"),
    "V1Namespace": ("", "v1"), "V1NamespaceList": ("", "v1"),
    "V1ConfigMap": ("", "v1"), "V1ConfigMapList": ("", "v1"),
    "V1Secret": ("", "v1"), "V1SecretList": ("", "v1"),
    "V1ServiceAccount": ("", "v1"), "V1ServiceAccountList": ("", "v1"),
    "AuthenticationV1TokenRequest": ("authentication.k8s.io", "v1"),
    "V1SelfSubjectReview": ("authentication.k8s.io", "v1"),
    "V1TokenReview": ("authentication.k8s.io", "v1"),
    "CoreV1Event": ("", "v1"), "CoreV1EventList": ("", "v1"),
    "V1Lease": ("coordination.k8s.io", "v1"), "V1LeaseList": ("coordination.k8s.io", "v1"),
    "V1SelfSubjectAccessReview": ("authorization.k8s.io", "v1"),
    "V1SelfSubjectRulesReview": ("authorization.k8s.io", "v1"),
    "V1SubjectAccessReview": ("authorization.k8s.io", "v1"),
    "V1LocalSubjectAccessReview": ("authorization.k8s.io", "v1"),
    **{f"V1{kind}": ("rbac.authorization.k8s.io", "v1")
       for kind in ("Role", "RoleList", "ClusterRole", "ClusterRoleList", "RoleBinding",
                    "RoleBindingList", "ClusterRoleBinding", "ClusterRoleBindingList")},
    "V1Status": ("", "v1"), "V1DeleteOptions": ("", "v1"), "V1Eviction": ("policy", "v1"),
}


def definition_name(class_name: str) -> str:
    short = re.sub(r"^(CoreV1|AuthenticationV1|RbacV1|V1)", "", class_name)
    if short in META:
        return f"io.k8s.apimachinery.pkg.apis.meta.v1.{short}"
    if short in AUTHORIZATION:
        return f"io.k8s.api.authorization.v1.{short}"
    if short in AUTHENTICATION:
        return f"io.k8s.api.authentication.v1.{short}"
    if short in RBAC:
        return f"io.k8s.api.rbac.v1.{short}"
    if short in COORDINATION:
        return f"io.k8s.api.coordination.v1.{short}"
    if short == "Eviction":
        return "io.k8s.api.policy.v1.Eviction"
    return f"io.k8s.api.core.v1.{short}"


def field_schema(py_type: str, pending: list[str]) -> dict:
    if py_type.startswith("list["):
        return {"type": "array", "items": field_schema(py_type[5:-1], pending)}
    if py_type.startswith("dict("):
        inner = py_type[len("dict("):-1].split(", ", 1)[1]
        return {"type": "object", "additionalProperties": field_schema(inner, pending)}
    simple = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int64"},
              "bool": {"type": "boolean"}, "float": {"type": "number", "format": "double"},
              "datetime": {"type": "string", "format": "date-time"}, "object": {}}
    if py_type in simple:
        return dict(simple[py_type])
    pending.append(py_type)
    return {"ref": definition_name(py_type)}


def generate() -> dict:
    types: dict[str, dict] = {}
    pending = list(ROOTS)
    seen: set[str] = set()
    while pending:
        class_name = pending.pop()
        if class_name in seen:
            continue
        seen.add(class_name)
        cls = getattr(models, class_name)
        properties = {}
        for py_name, py_type in cls.openapi_types.items():
            fs = field_schema(py_type, pending)
            if (class_name, py_name) in BYTE_FIELDS:
                fs["additionalProperties"]["format"] = "byte"
            properties[cls.attribute_map[py_name]] = fs
        entry: dict = {"properties": dict(sorted(properties.items()))}
        if class_name in ROOTS:
            group, version = ROOTS[class_name]
            kind = re.sub(r"^(CoreV1|AuthenticationV1|V1)", "", class_name)
            entry["gvk"] = {"group": group, "version": version, "kind": kind}
        types[definition_name(class_name)] = entry
    return {"generatedFrom": "kubernetes python client " + _client_version(),
            "types": dict(sorted(types.items()))}


def _client_version() -> str:
    import kubernetes
    return kubernetes.__version__


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(__file__), "..", "podling", "api", "schema.json")
    with open(out, "w") as f:
        json.dump(generate(), f, indent=1, sort_keys=False)
        f.write("\n")
    print("wrote", os.path.normpath(out))
