"""Strategic-merge metadata: which lists merge by which key (Kubernetes' patchMergeKey tags).

A list field not named here is atomic: a strategic merge patch replaces it whole. The same
table feeds the server's strategic merge and the ``x-kubernetes-patch-*`` extensions of the
OpenAPI document, so kubectl computes the patches the server expects.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListMeta:
    """``merge_key`` None means a list of scalars merged as a set (e.g. finalizers)."""

    strategy: str  # "merge" or "merge,retainKeys"
    merge_key: str | None


_CORE = "io.k8s.api.core.v1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."

PATCH_META: dict[tuple[str, str], ListMeta] = {
    (_META + "ObjectMeta", "finalizers"): ListMeta("merge", None),
    (_META + "ObjectMeta", "ownerReferences"): ListMeta("merge", "uid"),
    (_CORE + "PodSpec", "volumes"): ListMeta("merge,retainKeys", "name"),
    (_CORE + "PodSpec", "initContainers"): ListMeta("merge", "name"),
    (_CORE + "PodSpec", "containers"): ListMeta("merge", "name"),
    (_CORE + "PodSpec", "ephemeralContainers"): ListMeta("merge", "name"),
    (_CORE + "PodSpec", "imagePullSecrets"): ListMeta("merge", "name"),
    (_CORE + "PodSpec", "hostAliases"): ListMeta("merge", "ip"),
    (_CORE + "PodSpec", "topologySpreadConstraints"): ListMeta("merge", "topologyKey"),
    (_CORE + "PodSpec", "resourceClaims"): ListMeta("merge,retainKeys", "name"),
    (_CORE + "PodSpec", "schedulingGates"): ListMeta("merge", "name"),
    (_CORE + "Container", "ports"): ListMeta("merge", "containerPort"),
    (_CORE + "Container", "env"): ListMeta("merge", "name"),
    (_CORE + "Container", "volumeMounts"): ListMeta("merge", "mountPath"),
    (_CORE + "Container", "volumeDevices"): ListMeta("merge", "devicePath"),
    (_CORE + "EphemeralContainer", "ports"): ListMeta("merge", "containerPort"),
    (_CORE + "EphemeralContainer", "env"): ListMeta("merge", "name"),
    (_CORE + "EphemeralContainer", "volumeMounts"): ListMeta("merge", "mountPath"),
    (_CORE + "EphemeralContainer", "volumeDevices"): ListMeta("merge", "devicePath"),
    (_CORE + "PodStatus", "conditions"): ListMeta("merge", "type"),
    (_CORE + "PodStatus", "podIPs"): ListMeta("merge", "ip"),
    (_CORE + "PodStatus", "hostIPs"): ListMeta("merge", "ip"),
    (_CORE + "PodStatus", "resourceClaimStatuses"): ListMeta("merge,retainKeys", "name"),
    (_CORE + "NodeSpec", "podCIDRs"): ListMeta("merge", None),
    (_CORE + "NodeStatus", "conditions"): ListMeta("merge", "type"),
    (_CORE + "NodeStatus", "addresses"): ListMeta("merge", "type"),
}


def list_meta(type_name: str, field: str) -> ListMeta | None:
    """The merge strategy of ``type_name.field``, or None for an atomic list."""
    return PATCH_META.get((type_name, field))
