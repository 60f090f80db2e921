"""What the ecosystem-client e2e tests share: one pod per client and what it must show.

Every client runs the same scenario against the cluster's own kubeconfig (the file podling
writes, loaded by each library's own loader): create a busybox pod, list it by label, watch it
until Running, read its log, exec in it (where the library can), delete it and watch it go.
"""

from __future__ import annotations

import secrets
import time
from typing import Callable, TypeVar

from manifests import busybox, pod

NS = "default"
TIMEOUT = 60.0
T = TypeVar("T")

# Prints a line naming the pod, then waits; leaves at once on SIGTERM (PID 1 ignores it else).
SCRIPT = "echo hello from $POD_NAME; trap 'exit 0' TERM; sleep 3600 & wait"
EXEC_COMMAND = ["sh", "-c", "echo exec-$((6*7)) in $(hostname)"]


class Scenario:
    """One client's pod: its manifest, label selector and the texts the client must read."""

    def __init__(self, cluster, client: str):
        self.cluster = cluster
        self.name = f"{client}-{secrets.token_hex(3)}"
        self.labels = {"client": client, "run": self.name}
        self.selector = f"client={client},run={self.name}"
        self.field_selector = f"metadata.name={self.name}"

    def manifest(self) -> dict:
        env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        body = pod(self.name, self.cluster.node, [busybox("main", SCRIPT, env=env)])
        body["metadata"]["namespace"] = NS
        body["metadata"]["labels"] = dict(self.labels)
        return body

    @property
    def log_line(self) -> str:
        return f"hello from {self.name}"

    @property
    def exec_output(self) -> str:
        return f"exec-42 in {self.name}\n"

    def exists(self) -> bool:
        """Whether kubectl still finds the pod (the ground truth, not the client's view)."""
        out = self.cluster.kubectl("get", "pod", self.name, "--ignore-not-found", "-o", "name")
        return bool(out.stdout.strip())

    def cleanup(self) -> None:
        self.cluster.kubectl("delete", "pod", self.name, "--ignore-not-found", "--wait=false",
                             check=False)


def is_running(status: dict | None) -> bool:
    """Phase Running with every container running (``status`` as the API's JSON)."""
    status = status or {}
    containers = status.get("containerStatuses") or []
    return (status.get("phase") == "Running" and bool(containers)
            and all("running" in (c.get("state") or {}) for c in containers))


def poll(fetch: Callable[[], T], done: Callable[[T], bool], what: str,
         timeout: float = TIMEOUT) -> T:
    """Call ``fetch`` until ``done`` holds for its value; that value, or AssertionError with
    the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout}s; last: {value!r}"[:2000])
        time.sleep(0.2)
