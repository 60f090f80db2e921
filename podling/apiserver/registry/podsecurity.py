"""Pod Security Admission in the API server: a pod created in a namespace labelled
``pod-security.kubernetes.io/enforce=<level>`` that fails that level's checks is refused
with 403; one that fails the ``warn`` level is created with Kubernetes' Warning. The
checks and texts: :mod:`podling.api.podsecurity`. No namespace, user or runtime class is
exempt (kube-apiserver's default). The ``audit`` level's violations, the enforce policy and
bad labels are annotations of the request's audit event (:mod:`podling.apiserver.audit`).

A pod update is evaluated when it is significant (:func:`significant`: images, containers
added, ephemeral containers), the whole new pod, as Kubernetes does. Not evaluated: the pod
templates of workload resources, which podling does not serve.
"""

from __future__ import annotations

from typing import Any

from ...api import errors, podsecurity
from ...api.types import Obj
from .. import audit
from .store import RegistryStore

#: the audit annotations of Pod Security admission
ENFORCE_POLICY = "pod-security.kubernetes.io/enforce-policy"
AUDIT_VIOLATIONS = "pod-security.kubernetes.io/audit-violations"
ERROR = "pod-security.kubernetes.io/error"


class PodSecurityAdmission:
    """Reads the pod's namespace (``namespaces``: its registry store) on every check."""

    def __init__(self, namespaces: RegistryStore) -> None:
        self._namespaces = namespaces

    async def labels(self, namespace: str | None) -> dict[str, Any]:
        """The namespace's labels ({} when it does not exist: the request fails on that)."""
        try:
            found = await self._namespaces.lookup(None, namespace or "")
        except errors.ApiError:
            return {}
        return (found.get("metadata") or {}).get("labels") or {}

    async def admit(self, pod: Obj) -> list[str]:
        """A create: see :meth:`check`."""
        return self.check(pod, await self.labels((pod.get("metadata") or {}).get("namespace")))

    def check(self, pod: Obj, labels: dict[str, Any], *, evaluated: bool = True) -> list[str]:
        """Warning texts for ``pod`` in a namespace with ``labels``, or 403 when it violates
        the namespace's enforce level; Kubernetes' audit annotations on the way (the
        enforce policy, audit violations, bad labels). ``evaluated`` False: an update that
        changes nothing Pod Security looks at, only annotated as privileged:latest when
        that is the namespace's whole policy."""
        policy = podsecurity.policy(labels)
        bad_labels = label_causes(labels)
        if not bad_labels and all(mode.level == "privileged"
                                  for mode in (policy.enforce, policy.audit, policy.warn)):
            audit.annotate(ENFORCE_POLICY, "privileged:latest")
            return []
        if not evaluated:
            return []
        if bad_labels:
            audit.annotate(ERROR, "Failed to parse policy: " +
                           errors.aggregate([str(c) for c in bad_labels]))
        audit.annotate(ENFORCE_POLICY, str(policy.enforce))
        verdicts = _Verdicts(pod)
        failed = verdicts.of(policy.enforce.level)
        if failed:
            name = (pod.get("metadata") or {}).get("name", "")
            subject = f'pods "{name}"' if name else "pods"
            raise errors.ApiError(403, "Forbidden", f'{subject} is forbidden: violates '
                                  f'PodSecurity "{policy.enforce}": '
                                  f"{podsecurity.forbidden_detail(failed)}",
                                  {"name": name, "group": "", "kind": "pods"})
        failed = verdicts.of(policy.audit.level)
        if failed:
            audit.annotate(AUDIT_VIOLATIONS, f'would violate PodSecurity "{policy.audit}": '
                           f"{podsecurity.forbidden_detail(failed)}")
        failed = verdicts.of(policy.warn.level)
        if not failed:
            return []
        return [f'would violate PodSecurity "{policy.warn}": '
                f"{podsecurity.forbidden_detail(failed)}"]


class _Verdicts:
    """The failed checks of one pod per level, each level evaluated once."""

    def __init__(self, pod: Obj) -> None:
        self._pod = pod
        self._by_level: dict[str, list[tuple[str, str]]] = {"privileged": []}

    def of(self, level: str) -> list[tuple[str, str]]:
        if level not in self._by_level:
            self._by_level[level] = podsecurity.evaluate(self._pod, level)
        return self._by_level[level]


def significant(new: Obj, old: Obj) -> bool:
    """Whether a pod update is evaluated, as Kubernetes decides: containers or init
    containers added or removed, an image changed, an ephemeral container added or its
    image changed. Labels, annotations, tolerations and the like never are."""
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        now, before = new_spec.get(key) or [], old_spec.get(key) or []
        if len(now) != len(before) or any((a or {}).get("image") != (b or {}).get("image")
                                          for a, b in zip(now, before)):
            return True
    before_images = {(c or {}).get("name"): (c or {}).get("image")
                     for c in old_spec.get("ephemeralContainers") or []}
    return any((c or {}).get("name") not in before_images or
               before_images[(c or {}).get("name")] != (c or {}).get("image")
               for c in new_spec.get("ephemeralContainers") or [])


MAX_EXISTING_PODS = 3000


def existing_pod_warnings(namespace: str, new: dict[str, Any], old: dict[str, Any],
                          pods: list[Obj]) -> list[str]:
    """The warnings Kubernetes gives when a namespace's labels tighten its enforce level
    (``new`` and ``old``: the labels) over ``pods``, the pods in it: which of them violate
    the new level, grouped by what they violate. The update is allowed anyway."""
    before, after = podsecurity.policy(old).enforce, podsecurity.policy(new).enforce
    if after == before or after.level == "privileged" or podsecurity.label_errors(new) or (
            after.version == before.version and not after.stricter_than(before)):
        return []
    groups: dict[str, tuple[str, int]] = {}  # reasons -> (first pod name, count)
    for pod in pods[:MAX_EXISTING_PODS]:
        failed = podsecurity.evaluate(pod, after.level)
        if failed:
            reasons = podsecurity.forbidden_reasons(failed)
            name = (pod.get("metadata") or {}).get("name", "")
            first, count = groups.get(reasons, (name, 0))
            groups[reasons] = (min(first, name), count + 1)
    warnings = []
    if len(pods) > MAX_EXISTING_PODS:
        warnings.append(f"new PodSecurity enforce level only checked against the first "
                        f"{MAX_EXISTING_PODS} of {len(pods)} existing pods")
    if groups:
        warnings.append(f'existing pods in namespace "{namespace}" violate the new '
                        f'PodSecurity enforce level "{after}"')
        warnings += sorted(_group_line(name, count, reasons)
                           for reasons, (name, count) in groups.items())
    return warnings


def _group_line(name: str, count: int, reasons: str) -> str:
    if count == 1:
        return f"{name}: {reasons}"
    others = "1 other pod" if count == 2 else f"{count - 1} other pods"
    return f"{name} (and {others}): {reasons}"


def label_causes(labels: dict[str, Any]) -> list[errors.Cause]:
    """The 422 causes of a namespace's bad Pod Security labels."""
    return [errors.invalid(f"metadata.labels[{label}]", value, message)
            for label, value, message in podsecurity.label_errors(labels)]


def update_label_causes(new: dict[str, Any], old: dict[str, Any]) -> list[errors.Cause]:
    """On an update, bad labels refuse it only when they are new: a namespace may keep the
    bad labels it already had (as Kubernetes)."""
    causes, before = label_causes(new), label_causes(old)
    return causes if causes and (not before or causes != before) else []
