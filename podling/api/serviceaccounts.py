"""What Kubernetes' ServiceAccount admission plugin does to a pod on create (pure).

    pod without serviceAccountName ──▶ "default"
    its ServiceAccount looked up (by the caller; refused when missing)
    automount? pod's automountServiceAccountToken, else the ServiceAccount's, else true
       └─ yes: a projected volume kube-api-access-<5 chars> (token 3607 s, the namespace's
               kube-root-ca.crt ca.crt, the namespace through the downward API), mounted
               read-only at /var/run/secrets/kubernetes.io/serviceaccount in every init and
               app container that has nothing mounted there yet
    no imagePullSecrets ──▶ the ServiceAccount's
    account annotated kubernetes.io/enforce-mountable-secrets=true (deprecated) ──▶ the pod
       may use only the secrets the account lists (:func:`mountable_secrets_problem`)

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


ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")


def mountable_secrets_problem(sa: Obj, pod: Obj) -> str | None:
    """When ``sa`` enforces mountable secrets: the plugin's refusal for the first secret
    volume, env / envFrom secret of an init or app container, or image pull secret the
    account does not list; else None."""
    annotations = (sa.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ENFORCE_MOUNTABLE_SECRETS) not in _GO_TRUE:
        return None
    account = (sa.get("metadata") or {}).get("name") or ""
    allowed = {ref.get("name") for ref in _dicts(sa.get("secrets"))}
    tail = f"is not allowed because service account {account} does not reference that secret"
    spec = pod.get("spec") or {}
    for volume in _dicts(spec.get("volumes")):
        name = (volume.get("secret") or {}).get("secretName") if isinstance(
            volume.get("secret"), dict) else None
        if name is not None and name not in allowed:
            return f'volume with secret.secretName="{name}" {tail}'
    for key, label in (("initContainers", "init container"), ("containers", "container")):
        for container in _dicts(spec.get(key)):
            problem = _container_secrets(container, label, allowed, tail)
            if problem:
                return problem
    pull = {ref.get("name") for ref in _dicts(sa.get("imagePullSecrets"))}
    for i, ref in enumerate(_dicts(spec.get("imagePullSecrets"))):
        if ref.get("name") not in pull:
            return (f'imagePullSecrets[{i}].name="{ref.get("name", "")}" is not allowed because '
                    f"service account {account} does not reference that imagePullSecret")
    return None


def _container_secrets(container: Obj, label: str, allowed: set, tail: str) -> str | None:
    name = container.get("name", "")
    for env in _dicts(container.get("env")):
        ref = (env.get("valueFrom") or {}).get("secretKeyRef") \
            if isinstance(env.get("valueFrom"), dict) else None
        if isinstance(ref, dict) and ref.get("name") not in allowed:
            return (f'{label} {name} with envVar {env.get("name", "")} referencing '
                    f'secret.secretName="{ref.get("name", "")}" {tail}')
    for source in _dicts(container.get("envFrom")):
        ref = source.get("secretRef")
        if isinstance(ref, dict) and ref.get("name") not in allowed:
            return (f'{label} {name} with envFrom referencing '
                    f'secret.secretName="{ref.get("name", "")}" {tail}')
    return None


def service_account_of(pod: Obj) -> str:
    """The pod's ``spec.serviceAccountName`` ("" when unset)."""
    name = (pod.get("spec") or {}).get("serviceAccountName")
    return name if isinstance(name, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
