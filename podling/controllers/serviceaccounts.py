"""The ServiceAccounts controller and the root CA publisher (kube-controller-manager's
``serviceaccount`` and ``root-ca-cert-publisher`` controllers).

- :class:`ServiceAccountsController`: a ServiceAccount ``default`` in every active
  namespace, created again when deleted (an existing one is left as it is).
- :class:`RootCAPublisher`: a ConfigMap ``kube-root-ca.crt`` in every active namespace
  whose ``ca.crt`` is the PEM of the CA the API server's certificate is signed by, with
  Kubernetes' description annotation; put back when deleted or changed. Pods read it through
  their kube-api-access volume to verify the API server.
"""

from __future__ import annotations

from ..api.resources import CONFIG_MAPS, SERVICE_ACCOUNTS
from ..api.serviceaccounts import DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIG_MAP, ROOT_CA_KEY
from ..api.types import Obj
from ..client import ApiClient
from .pernamespace import RESYNC_SECONDS, PerNamespaceObject

DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using "
               "internal endpoints such as the internal service IP or kubernetes.default.svc. "
               "No other usage is guaranteed across distributions of Kubernetes clusters.")


class ServiceAccountsController(PerNamespaceObject):
    name = "serviceaccounts-controller"

    def __init__(self, client: ApiClient, *, resync_seconds: float = RESYNC_SECONDS) -> None:
        super().__init__(client, SERVICE_ACCOUNTS, DEFAULT_SERVICE_ACCOUNT,
                         resync_seconds=resync_seconds)

    def desired(self, namespace: str) -> Obj:
        return {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}}


class RootCAPublisher(PerNamespaceObject):
    """Publishes ``ca_pem`` (the cluster CA certificate, PEM text)."""

    name = "root-ca-cert-publisher"

    def __init__(self, client: ApiClient, ca_pem: str, *,
                 resync_seconds: float = RESYNC_SECONDS) -> None:
        super().__init__(client, CONFIG_MAPS, ROOT_CA_CONFIG_MAP, resync_seconds=resync_seconds)
        self.ca_pem = ca_pem

    def desired(self, namespace: str) -> Obj:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace,
                             "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {ROOT_CA_KEY: self.ca_pem}}

    def repaired(self, current: Obj) -> Obj:
        """The data is exactly ``ca.crt`` and the annotation is there (other metadata kept)."""
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") != {ROOT_CA_KEY: self.ca_pem} or \
                annotations.get(DESCRIPTION_ANNOTATION) != DESCRIPTION:
            current["data"] = {ROOT_CA_KEY: self.ca_pem}
            current.pop("binaryData", None)
            current["metadata"]["annotations"] = {**annotations,
                                                  DESCRIPTION_ANNOTATION: DESCRIPTION}
        return current
