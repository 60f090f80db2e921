"""How pod identity travels in runtime labels and annotations (docs/architecture.md §3).

The runtime is the source of truth: a restarted agent rebuilds its whole view by listing
sandboxes and containers and reading these keys. Names follow the kubelet's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from podling.api.views import PodView

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_TYPE = "io.kubernetes.container.type"  # "init", "app" or "ephemeral" (not on sandboxes)
MANAGED_BY = "io.podling.managed-by"  # the node name of the agent that made it

CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod"
POD_SPEC_HOSTNAME = "io.podling.pod.hostname"

# container annotations the agent reads back for the pod status and for stopping
IMAGE_ANNOTATION = "io.podling.container.image"  # the image as the spec named it
IMAGE_ID_ANNOTATION = "io.podling.container.imageID"  # its digest (or image id)
STOP_SIGNAL_ANNOTATION = "io.podling.container.stopSignal"


def namespace(pod: PodView) -> str:
    """The pod's namespace; ``default`` when it has none (the view reads a missing one as
    "", the agent as the API server's default)."""
    return pod.metadata.namespace or "default"


def pod_labels(pod: PodView, node_name: str) -> dict[str, str]:
    """Labels that identify the pod on a sandbox or container."""
    meta = pod.metadata
    return {POD_NAME: meta.name, POD_NAMESPACE: namespace(pod), POD_UID: meta.uid,
            MANAGED_BY: node_name}


def format_pod(pod: PodView) -> str:
    """The kubelet's ``format.Pod``, how messages name a pod: ``<name>_<namespace>(<uid>)``."""
    meta = pod.metadata
    return f"{meta.name}_{namespace(pod)}({meta.uid})"


def container_hash(container: Mapping[str, Any]) -> str:
    """A stable hash of a container's spec as received (``ContainerView.raw``, never the
    view: adopted containers keep their recorded hash across upgrades); a change means the
    container must be re-created."""
    canonical = json.dumps(dict(container), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
