"""The Secrets, ConfigMaps and ServiceAccount a pod refers to (Kubernetes'
``VisitPodSecretNames`` and ``VisitPodConfigmapNames``): what a node may read for the pods
bound to it.

Pure functions on a pod's JSON; missing or malformed parts are skipped.
"""

from __future__ import annotations

from typing import Any, Iterator

from .types import Obj

#: volume sources that name a Secret, and the field holding its name
_SECRET_VOLUMES = {"secret": "secretName", "azureFile": "secretName"}
#: volume sources whose reference field (``secretRef``, CSI's ``nodePublishSecretRef``)
#: names a Secret
_SECRET_REF_VOLUMES = {"cephfs": "secretRef", "cinder": "secretRef", "flexVolume": "secretRef",
                       "iscsi": "secretRef", "rbd": "secretRef", "scaleIO": "secretRef",
                       "storageos": "secretRef", "csi": "nodePublishSecretRef"}


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield item


def _name(value: Any, field: str = "name") -> str:
    name = value.get(field) if isinstance(value, dict) else None
    return name if isinstance(name, str) else ""


def _spec(pod: Obj) -> dict[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from _dicts(spec.get(field))


def _env_refs(spec: dict[str, Any], key_ref: str, source_ref: str) -> Iterator[str]:
    for container in _containers(spec):
        for env_from in _dicts(container.get("envFrom")):
            yield _name(env_from.get(source_ref))
        for env in _dicts(container.get("env")):
            value_from = env.get("valueFrom")
            yield _name(value_from.get(key_ref) if isinstance(value_from, dict) else None)


def _projected(volume: dict[str, Any], kind: str) -> Iterator[str]:
    projected = volume.get("projected")
    sources = projected.get("sources") if isinstance(projected, dict) else None
    for source in _dicts(sources):
        yield _name(source.get(kind))


def secret_names(pod: Obj) -> set[str]:
    """Every Secret ``pod`` names: imagePullSecrets, env, envFrom, volumes."""
    spec = _spec(pod)
    names = {_name(ref) for ref in _dicts(spec.get("imagePullSecrets"))}
    names.update(_env_refs(spec, "secretKeyRef", "secretRef"))
    for volume in _dicts(spec.get("volumes")):
        for source, field in _SECRET_VOLUMES.items():
            names.add(_name(volume.get(source), field))
        for source, ref_field in _SECRET_REF_VOLUMES.items():
            ref = volume.get(source)
            names.add(_name(ref.get(ref_field) if isinstance(ref, dict) else None))
        names.update(_projected(volume, "secret"))
    names.discard("")
    return names


def config_map_names(pod: Obj) -> set[str]:
    """Every ConfigMap ``pod`` names: env, envFrom, volumes."""
    spec = _spec(pod)
    names = set(_env_refs(spec, "configMapKeyRef", "configMapRef"))
    for volume in _dicts(spec.get("volumes")):
        names.add(_name(volume.get("configMap")))
        names.update(_projected(volume, "configMap"))
    names.discard("")
    return names


def service_account_names(pod: Obj) -> set[str]:
    """The pod's ServiceAccount (``spec.serviceAccountName``), as a set like the others."""
    name = _name(_spec(pod), "serviceAccountName")
    return {name} if name else set()
