"""Small pod manifests for the agent e2e tests (all pods pinned to a node, short grace)."""

from __future__ import annotations

from builders import make_pod

GRACE = 2
#: the test clusters' --pod-max-pids (conftest.py; no test pod needs more processes)
POD_MAX_PIDS = 128


def busybox(name: str, script: str, **extra) -> dict:
    """A busybox container running ``sh -c script``."""
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def pod(name: str, node: str, containers: list[dict], **spec) -> dict:
    """A bare pod bound to ``node`` (no scheduler) with a short termination grace period;
    ``containers`` are API dicts (:func:`busybox`), ``spec`` further spec fields."""
    built = make_pod(name, None).bare().node(node).grace(GRACE).no_containers()
    for c in containers:
        built.container(**c)
    return built.set_spec(**spec).build()
