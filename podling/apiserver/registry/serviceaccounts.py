"""ServiceAccounts, and the ServiceAccount admission of pods.

:class:`ServiceAccountStrategy`: secret references are reduced to their names on create and
update (Kubernetes' ``cleanSecretReferences``); the deprecated
``kubernetes.io/enforce-mountable-secrets`` annotation gets 1.32's warning.

:class:`ServiceAccountAdmission` is the I/O half of the plugin whose pure half is
:mod:`podling.api.serviceaccounts`: it defaults ``serviceAccountName``, looks the
ServiceAccount up (the ``default`` one up to 10 times, 100-200 ms apart, since a controller
creates it right after the namespace) and refuses a pod whose ServiceAccount is missing with
Kubernetes' 403, as it refuses a pod that uses secrets an account enforcing mountable
secrets does not list.
"""

from __future__ import annotations

import asyncio
import random
from typing import Callable

from ...api import errors, serviceaccounts, validation
from ...api.errors import Cause
from ...api.validation.pod import MIRROR_POD_ANNOTATION
from .store import RegistryStore
from .strategy import Obj, Strategy

ENFORCE_MOUNTABLE_SECRETS = serviceaccounts.ENFORCE_MOUNTABLE_SECRETS
DEFAULT_ATTEMPTS = 10


class ServiceAccountStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        _clean_secret_references(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        _clean_secret_references(new)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_service_account(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validation.validate_service_account_update(new, old)

    def warnings(self, obj: Obj) -> list[str]:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if ENFORCE_MOUNTABLE_SECRETS not in annotations:
            return []
        return [f"metadata.annotations[{ENFORCE_MOUNTABLE_SECRETS}]: deprecated in v1.32+; "
                "prefer separate namespaces to isolate access to mounted secrets"]


def _clean_secret_references(sa: Obj) -> None:
    refs = sa.get("secrets")
    if isinstance(refs, list):
        sa["secrets"] = [{"name": r.get("name")} if r.get("name") else {}
                         for r in refs if isinstance(r, dict)]


class ServiceAccountAdmission:
    """Admits pod creates against the ServiceAccounts in ``store``."""

    def __init__(self, store: RegistryStore, *,
                 generate: Callable[[], str] = serviceaccounts.random_suffix,
                 retry_interval: Callable[[], float] = lambda: random.uniform(0.1, 0.2)) -> None:
        self.store = store
        self.generate = generate
        self.retry_interval = retry_interval

    async def admit(self, pod: Obj) -> None:
        """Change ``pod`` as the plugin does, or raise a 403 ApiError (Kubernetes' text)."""
        meta, spec = pod.setdefault("metadata", {}), pod.setdefault("spec", {})
        namespace, pod_name = meta.get("namespace") or "", meta.get("name") or ""
        if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
            if serviceaccounts.service_account_of(pod):
                raise _forbidden(pod_name, "a mirror pod may not reference service accounts")
            return
        if not serviceaccounts.service_account_of(pod):
            spec["serviceAccountName"] = serviceaccounts.DEFAULT_SERVICE_ACCOUNT
        name = spec["serviceAccountName"]
        spec["serviceAccount"] = name  # the deprecated alias always mirrors it on the wire
        sa = await self._lookup(namespace, name)
        if sa is None:
            raise _forbidden(pod_name, f"error looking up service account {namespace}/{name}: "
                                       f'serviceaccount "{name}" not found')
        serviceaccounts.admit_pod(pod, sa, self.generate)
        problem = serviceaccounts.mountable_secrets_problem(sa, pod)
        if problem:
            raise _forbidden(pod_name, problem)

    async def _lookup(self, namespace: str, name: str) -> Obj | None:
        attempts = DEFAULT_ATTEMPTS if name == serviceaccounts.DEFAULT_SERVICE_ACCOUNT else 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.retry_interval())
            try:
                return await self.store.get(namespace, name)
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        return None


def _forbidden(pod_name: str, message: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'pods "{pod_name}" is forbidden: {message}',
                           {"name": pod_name, "kind": "pods"})
