"""Fields podling stores faithfully but does not act on yet, so the API can warn about them.

Rule: a *support tree* per kind lists what the agent and scheduler implement. A field in the
tree maps to ``True`` (supported with everything below it) or to a nested tree (supported, but
only the listed sub-fields); for a list the nested tree applies to every element. A field
that is *set* but absent from the tree is reported at that level and not looked into:
``spec.volumes[2].nfs``, ``spec.affinity.podAffinity``.

"Set" means what a user wrote: not null, not an empty string / list / map, not ``false``, and
not equal to the value Kubernetes itself would default (``_DEFAULTS``), so a full object read
back from the server and sent again (``kubectl replace``) does not warn about defaults.
Call this on the user's body before server-side defaulting.
"""

from __future__ import annotations

from typing import Any

Tree = dict[str, Any]  # field -> True | Tree

_CONTAINER_SECURITY: Tree = {f: True for f in (
    "runAsUser", "runAsGroup", "runAsNonRoot", "privileged", "capabilities",
    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "seccompProfile", "procMount")}
_PROBE: Tree = {f: True for f in (
    "exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds",
    "periodSeconds", "successThreshold", "failureThreshold", "terminationGracePeriodSeconds")}
_CONTAINER: Tree = {
    **{f: True for f in (
        "name", "image", "command", "args", "ports", "workingDir", "stdin", "stdinOnce",
        "tty", "terminationMessagePath", "terminationMessagePolicy", "volumeMounts",
        "imagePullPolicy", "restartPolicy", "env", "envFrom")},
    "livenessProbe": _PROBE, "readinessProbe": _PROBE, "startupProbe": _PROBE,
    "resources": {"limits": True, "requests": True},
    "securityContext": _CONTAINER_SECURITY,
    "lifecycle": {"postStart": True, "preStop": True},
}
_POD_SPEC: Tree = {
    **{f: True for f in (
        "nodeName", "nodeSelector", "tolerations", "hostAliases", "hostname", "subdomain",
        "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace",
        "terminationGracePeriodSeconds", "activeDeadlineSeconds", "restartPolicy", "dnsPolicy",
        "dnsConfig", "schedulerName", "priority", "imagePullSecrets", "enableServiceLinks",
        "serviceAccountName", "serviceAccount", "automountServiceAccountToken",
        "hostUsers")},
    "containers": _CONTAINER,
    "initContainers": _CONTAINER,
    "ephemeralContainers": {**_CONTAINER, "targetContainerName": True},
    "affinity": {"nodeAffinity": True},
    "securityContext": {f: True for f in (
        "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy",
        "supplementalGroups", "seccompProfile", "sysctls")},
    "volumes": {f: True for f in ("name", "emptyDir", "hostPath", "configMap", "secret",
                                  "downwardAPI", "projected")},
}
_SUPPORT: dict[str, Tree] = {
    "Pod": {"spec": _POD_SPEC},
    "Node": {"spec": {f: True for f in (
        "unschedulable", "taints", "podCIDR", "podCIDRs", "providerID", "externalID")}},
}

# Unsupported fields whose Kubernetes default must not count as "set".
_DEFAULTS: dict[str, Any] = {"preemptionPolicy": "PreemptLowerPriority"}


def unimplemented_fields(kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of user-set fields of a ``kind`` object that podling stores but ignores.

    Only ``Pod`` and ``Node`` are checked; any other kind gives ``[]``. The result is in
    document order, one path per unsupported field (``spec.runtimeClassName``,
    ``spec.containers[0].resizePolicy``); values of the wrong shape are skipped, since
    decoding reports those.
    """
    tree = _SUPPORT.get(kind)
    if tree is None or not isinstance(obj, dict):
        return []
    out: list[str] = []
    for key in tree:
        if isinstance(obj.get(key), dict):
            _walk(obj[key], tree[key], key, out)
    return out


def warning_text(path: str) -> str:
    """The API warning for one path from :func:`unimplemented_fields`."""
    return f"{path}: podling stores this field but does not act on it yet"


def _walk(obj: dict[str, Any], tree: Tree, path: str, out: list[str]) -> None:
    for key, value in obj.items():
        if not _is_set(key, value):
            continue
        here = f"{path}.{key}"
        rule = tree.get(key)
        if rule is None:
            out.append(here)
        elif isinstance(rule, dict):
            _walk_nested(value, rule, here, out)


def _walk_nested(value: Any, tree: Tree, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        _walk(value, tree, path, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                _walk(item, tree, f"{path}[{i}]", out)


def _is_set(key: str, value: Any) -> bool:
    if key in _DEFAULTS:
        return value not in (None, "") and value != _DEFAULTS[key]
    return not (value is None or value is False or value == "" or value == [] or value == {})
