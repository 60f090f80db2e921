"""Small pod manifests for the agent e2e tests (all pods pinned to a node, short grace)."""

from __future__ import annotations

GRACE = 2


def busybox(name: str, script: str, **extra) -> dict:
    """A busybox container running ``sh -c script``."""
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def pod(name: str, node: str, containers: list[dict], **spec) -> dict:
    """A pod bound to ``node`` (no scheduler) with a short termination grace period."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": GRACE,
                     "containers": containers, **spec}}
