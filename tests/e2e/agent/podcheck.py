"""What the agent e2e tests read about a pod through the real kubectl: its JSON, its first
container's status, the READY and STATUS columns, its events; and unique names, apply,
exec and delete. One home for these so every test reads pods the same way."""

from __future__ import annotations

import json
import secrets


def unique(prefix: str) -> str:
    """``prefix`` with a random suffix: a name no other test run uses."""
    return f"{prefix}-{secrets.token_hex(3)}"


def apply(cluster, obj: dict) -> None:
    cluster.apply(json.dumps(obj))


def pod_json(cluster, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)


def cstatus(cluster, name: str) -> dict:
    """The first app container's status ({} before there is one)."""
    statuses = pod_json(cluster, name).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def running(cluster, name: str) -> bool:
    """The first app container is running."""
    return "running" in (cstatus(cluster, name).get("state") or {})


def _column(cluster, name: str, index: int) -> str:
    out = cluster.kubectl("get", "pod", name, "--no-headers", check=False).stdout.split()
    return out[index] if len(out) > index else ""


def ready_column(cluster, name: str) -> str:
    """The READY column of `kubectl get pod` (NAME READY STATUS RESTARTS AGE); "" if gone."""
    return _column(cluster, name, 1)


def status_column(cluster, name: str) -> str:
    """The STATUS column of `kubectl get pod`; "" if the pod is gone."""
    return _column(cluster, name, 2)


def events(cluster, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of every event about the object ``name``."""
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                          "-o", "json").stdout
    return [(e.get("type", ""), e.get("reason", ""), e.get("message", ""))
            for e in json.loads(out)["items"]]


def has_event(cluster, name: str, type_: str, reason: str, prefix: str) -> bool:
    return any(t == type_ and r == reason and m.startswith(prefix)
               for t, r, m in events(cluster, name))


def event_count(cluster, name: str, reason: str, prefix: str) -> int:
    """The summed ``count`` of the events with ``reason`` whose message starts so."""
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                          "-o", "json").stdout
    return sum(e.get("count", 1) for e in json.loads(out)["items"]
               if e.get("reason") == reason and e.get("message", "").startswith(prefix))


def sh(cluster, name: str, script: str, check: bool = True) -> str:
    """stdout of ``sh -c script`` in the pod's first container."""
    return cluster.kubectl("exec", name, "--", "sh", "-c", script, check=check).stdout


def delete_pods(cluster, *names: str) -> None:
    """Delete the pods without waiting (the cluster's teardown checks what is left)."""
    cluster.kubectl("delete", "pod", *names, "--wait=false", check=False)
