"""The built-in namespaces, created when the API server starts (Kubernetes' API server
bootstraps them the same way). Draining deleted namespaces is the namespace controller's
work (:mod:`podling.controllers.namespace`); the namespace rules are in
:mod:`.registry.namespaces`.
"""

from __future__ import annotations

from ..api import errors
from .registry.store import RegistryStore

BUILT_IN = ("default", "kube-system", "kube-public", "kube-node-lease")


async def ensure_built_in(namespaces: RegistryStore) -> None:
    """Create the built-in namespaces that do not exist yet. Idempotent."""
    for name in BUILT_IN:
        try:
            await namespaces.create(None, {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name}})
        except errors.ApiError as exc:
            if exc.code != 409:
                raise
