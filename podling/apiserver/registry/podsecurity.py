"""Pod Security Admission in the API server: a pod created in a namespace labelled
``pod-security.kubernetes.io/enforce=<level>`` that fails that level's checks is refused
with 403; one that fails the ``warn`` level is created with Kubernetes' Warning. The
checks and texts: :mod:`podling.api.podsecurity`. No namespace, user or runtime class is
exempt (kube-apiserver's default). ``audit`` labels are accepted; there is no audit log to
annotate.

Not evaluated yet: pod updates that change images or add ephemeral containers (Kubernetes
evaluates those too), and the pod templates of workload resources, which podling does not
serve.
"""

from __future__ import annotations

from typing import Any

from ...api import errors, podsecurity
from ...api.types import Obj
from .store import RegistryStore


class PodSecurityAdmission:
    """Reads the pod's namespace (``namespaces``: its registry store) on every create."""

    def __init__(self, namespaces: RegistryStore) -> None:
        self._namespaces = namespaces

    async def admit(self, pod: Obj) -> list[str]:
        """Warning texts for ``pod``, or 403 when it violates its namespace's enforce level."""
        meta = pod.get("metadata") or {}
        try:
            namespace = await self._namespaces.lookup(None, meta.get("namespace", ""))
        except errors.ApiError:
            return []  # the create fails on the missing namespace anyway
        labels: dict[str, Any] = (namespace.get("metadata") or {}).get("labels") or {}
        policy = podsecurity.policy(labels)
        if all(mode.level == "privileged" for mode in (policy.enforce, policy.warn)):
            return []
        failed = podsecurity.evaluate(pod, policy.enforce.level)
        if failed:
            name = meta.get("name", "")
            subject = f'pods "{name}"' if name else "pods"
            raise errors.ApiError(403, "Forbidden", f'{subject} is forbidden: violates '
                                  f'PodSecurity "{policy.enforce}": '
                                  f"{podsecurity.forbidden_detail(failed)}",
                                  {"name": name, "group": "", "kind": "pods"})
        if policy.warn.level != policy.enforce.level:
            failed = podsecurity.evaluate(pod, policy.warn.level)
        if not failed:
            return []
        return [f'would violate PodSecurity "{policy.warn}": '
                f"{podsecurity.forbidden_detail(failed)}"]


def label_causes(labels: dict[str, Any]) -> list[errors.Cause]:
    """The 422 causes of a namespace's bad Pod Security labels."""
    return [errors.invalid(f"metadata.labels[{label}]", value, message)
            for label, value, message in podsecurity.label_errors(labels)]


def update_label_causes(new: dict[str, Any], old: dict[str, Any]) -> list[errors.Cause]:
    """On an update, bad labels refuse it only when they are new: a namespace may keep the
    bad labels it already had (as Kubernetes)."""
    causes, before = label_causes(new), label_causes(old)
    return causes if causes and (not before or causes != before) else []
