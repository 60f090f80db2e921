"""Controllers: API clients that converge cluster state, like the scheduler
(docs/architecture.md §2).

- :mod:`.namespace` — empties and finalizes namespaces being deleted
- :mod:`.nodelifecycle` — marks nodes whose agent went silent Unknown and unreachable
- :mod:`.podgc` — deletes the pods of nodes that no longer exist (after a 40 s quarantine)
- :mod:`.serviceaccounts` — a ``default`` ServiceAccount and the ``kube-root-ca.crt``
  ConfigMap in every namespace (:mod:`.pernamespace`: the loop they share)
- :mod:`.manager` — runs them together; :mod:`.periodic` — the loop of the periodic ones

They talk to the API server over HTTP only (``podling.client``); they never import
``podling.apiserver`` or ``podling.storage``. Pod CIDRs are assigned by the API server's
nodes strategy (``podling/apiserver/registry/nodes.py``), not by a controller.
"""

from .manager import ControllerConfig, ControllerManager
from .namespace import NamespaceController
from .nodelifecycle import NodeLifecycleController
from .podgc import PodGCController
from .serviceaccounts import RootCAPublisher, ServiceAccountsController

__all__ = ["ControllerConfig", "ControllerManager", "NamespaceController",
           "NodeLifecycleController", "PodGCController", "RootCAPublisher",
           "ServiceAccountsController"]
