"""What Kubernetes' ServiceAccount admission plugin does to a pod on create (pure).

    pod without serviceAccountName ──▶ "default"
    its ServiceAccount looked up (by the caller; refused when missing)
    automount? pod's automountServiceAccountToken, else the ServiceAccount's, else true
       └─ yes: a projected volume kube-api-access-<5 chars> (token 3607 s, the namespace's
               kube-root-ca.crt ca.crt, the namespace through the downward API), mounted
               read-only at /var/run/secrets/kubernetes.io/serviceaccount in every init and
               app container that has nothing mounted there yet
    no imagePullSecrets ──▶ the ServiceAccount's

The names and the volume's shape are Kubernetes 1.32's (plugin/pkg/admission/serviceaccount).
"""

from __future__ import annotations

import secrets
from typing import Any, Callable

from .types import Obj

DEFAULT_SERVICE_ACCOUNT = "default"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
#: the lifetime the projected token asks for; the API server treats it specially
#: (Kubernetes' WarnOnlyBoundTokenExpirationSeconds)
WARN_ONLY_TOKEN_SECONDS = 60 * 60 + 7
PROJECTED_DEFAULT_MODE = 0o644
#: the user name prefix of a ServiceAccount (``system:serviceaccount:<ns>:<name>``)
USER_PREFIX = "system:serviceaccount:"
GROUP = "system:serviceaccounts"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def user_name(namespace: str, name: str) -> str:
    return f"{USER_PREFIX}{namespace}:{name}"


def random_suffix(length: int = 5) -> str:
    """Kubernetes' SimpleNameGenerator suffix."""
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def should_automount(sa: Obj, pod: Obj) -> bool:
    """The pod's ``automountServiceAccountToken`` wins, then the ServiceAccount's; true."""
    for value in ((pod.get("spec") or {}).get("automountServiceAccountToken"),
                  sa.get("automountServiceAccountToken")):
        if isinstance(value, bool):
            return value
    return True


def token_volume_source() -> Obj:
    """The ``projected`` source of a kube-api-access volume."""
    return {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_TOKEN_SECONDS,
                                     "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIG_MAP,
                           "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ],
        "defaultMode": PROJECTED_DEFAULT_MODE,
    }


def mount_token(pod: Obj, generate: Callable[[], str] = random_suffix) -> None:
    """Add the kube-api-access volume (unless one exists) and its mount to every init and
    app container without a mount at :data:`TOKEN_MOUNT_PATH` (in place)."""
    spec = pod.setdefault("spec", {})
    volumes = [v for v in spec.get("volumes") or [] if isinstance(v, dict)]
    existing = next((v.get("name") for v in volumes
                     if str(v.get("name") or "").startswith(VOLUME_PREFIX)), None)
    name = existing or VOLUME_PREFIX + generate()
    needs_volume = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts") or []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH
                   for m in mounts):
                continue
            container["volumeMounts"] = list(mounts) + [
                {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
            needs_volume = True
    if existing is None and needs_volume:
        spec["volumes"] = list(spec.get("volumes") or []) + [
            {"name": name, "projected": token_volume_source()}]


def admit_pod(pod: Obj, sa: Obj, generate: Callable[[], str] = random_suffix) -> None:
    """Apply the plugin's changes for a pod whose ServiceAccount ``sa`` exists (in place):
    the token volume when :func:`should_automount`, and the ServiceAccount's
    imagePullSecrets when the pod has none."""
    if should_automount(sa, pod):
        mount_token(pod, generate)
    spec = pod.setdefault("spec", {})
    if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": ref.get("name", "")}
                                    for ref in _dicts(sa.get("imagePullSecrets"))]


def service_account_of(pod: Obj) -> str:
    """The pod's ``spec.serviceAccountName`` ("" when unset)."""
    name = (pod.get("spec") or {}).get("serviceAccountName")
    return name if isinstance(name, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
