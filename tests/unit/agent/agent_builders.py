"""Small builders for pods and runtime statuses used by the agent's pure-function tests."""

from __future__ import annotations

import itertools
from typing import Any

from podling.agent.kuberuntime import labels as L
from podling.runtime.interface import (
    ContainerState,
    ContainerStatus,
    NamespaceMode,
    NamespaceOptions,
    PodSandboxMetadata,
    PodSandboxStatus,
    SandboxState,
)

T0 = 1_700_000_000.0
_ids = itertools.count(1)


def container(name: str, image: str = "busybox", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def make_pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always",
             name: str = "p", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": "u1"},
        "spec": {"containers": [container(n) for n in names],
                 "initContainers": [container(n) for n in init],
                 "restartPolicy": policy, **spec},
        "status": {},
    }


def sandbox(sid: str = "sb1", *, ready: bool = True, attempt: int = 0, created: float = T0,
            host_network: bool = False) -> PodSandboxStatus:
    net = NamespaceMode.NODE if host_network else NamespaceMode.POD
    return PodSandboxStatus(
        id=sid, metadata=PodSandboxMetadata("p", "default", "u1", attempt),
        state=SandboxState.READY if ready else SandboxState.NOTREADY, created_at=created,
        network_namespace_path="" if host_network else "/run/netns/x", pid=10 if ready else 0,
        labels={}, annotations={}, namespace_options=NamespaceOptions(network=net))


def cs(pod: dict[str, Any], name: str, state: str = "running", *, exit_code: int = 0,
       sandbox_id: str = "sb1", created: float = T0 + 1, started: float = 0.0,
       finished: float = 0.0, restarts: int = 0, reason: str = "", message: str = "",
       spec_hash: str | None = None, cid: str | None = None) -> ContainerStatus:
    """A runtime status for container ``name`` of ``pod``; the hash matches its spec."""
    specs = {c["name"]: c for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]}
    h = spec_hash if spec_hash is not None else L.container_hash(specs.get(name, {"name": name}))
    st = ContainerState[state.upper()]
    if st == ContainerState.EXITED and not reason:
        reason = "Completed" if exit_code == 0 else "Error"
    return ContainerStatus(
        id=cid or f"c{next(_ids)}", sandbox_id=sandbox_id, name=name, attempt=restarts,
        state=st, created_at=created,
        started_at=started or (0.0 if st == ContainerState.CREATED else created),
        finished_at=finished or (created + 5 if st == ContainerState.EXITED else 0.0),
        exit_code=exit_code, reason=reason, message=message,
        labels={L.CONTAINER_NAME: name},
        annotations={L.CONTAINER_HASH: h, L.RESTART_COUNT: str(restarts)})
