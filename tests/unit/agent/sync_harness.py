"""A PodSyncer wired to fakes at every boundary, for the sync tests (docs/architecture.md §5).

    FakeRuntime ─┐                       ┌─ FakeApiClient: pods/status patches, Events,
    FakeNetwork ─┼─ PodSyncer ─ StatusManager / EventRecorder ─┘   final deletes, the Node
    FakeImageService ──┤   (real)        (real)
    FakeRootfs ──┘

Only the boundaries are fakes: the status manager and the event recorder are the real ones,
writing to :class:`FakeApiClient`, so the tests read what the API would receive.

Time: one :class:`FakeClock` drives the FakeRuntime's created / started / finished times,
the PodSyncer, its back-off and the event recorder; :meth:`Harness.exit` ends a container
and lets ``ago`` seconds pass.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from typing import Any

from podling.agent.backoff import Backoff
from podling.agent.config import AgentConfig
from podling.agent.node.host import HostResources
from podling.agent.pod.status_manager import StatusManager
from podling.agent.pod.sync import PodSyncer
from podling.agent.pod.sync_result import PodSyncResult
from podling.api.errors import ApiError
from podling.api.types import Obj
from podling.client.events import EventRecorder
from podling.images.fake import FakeImageService, FakeRootfs
from podling.network.fake import FakeNetwork
from podling.runtime.fake import FakeRuntime
from podling.util.clock import FakeClock

NODE = "n1"
NODE_IP = "192.168.1.2"


# -- builders ---------------------------------------------------------------------------------


def ctr(name: str = "c", image: str = "busybox", *, post_start: list[str] | None = None,
        pre_stop: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A container spec; ``post_start`` / ``pre_stop`` are exec hook commands."""
    spec: dict[str, Any] = {"name": name, "image": image, **extra}
    hooks = {k: {"exec": {"command": cmd}} for k, cmd in
             (("postStart", post_start), ("preStop", pre_stop)) if cmd}
    if hooks:
        spec["lifecycle"] = hooks
    return spec


def make_pod(*containers: dict[str, Any], name: str = "p", uid: str = "u1",
             policy: str = "Always", **spec: Any) -> dict[str, Any]:
    """A pod bound to NODE with ``containers`` (default: one ``ctr()``)."""
    return {"metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"nodeName": NODE, "restartPolicy": policy,
                     "containers": list(containers) or [ctr()], **spec},
            "status": {"phase": "Pending"}}


def deleted(pod: dict[str, Any], grace: int = 30) -> dict[str, Any]:
    """``pod`` as the API shows it after a graceful delete with ``grace`` seconds."""
    out = copy.deepcopy(pod)
    out["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z",
                           deletionGracePeriodSeconds=grace)
    return out


# -- fakes at the boundaries ------------------------------------------------------------------


@dataclass
class FakeApiClient:
    """The ApiClient methods the syncer, its status manager and its recorder use.

    ``status_patches``: (pod name, status) per pods/status PATCH; ``events``: one dict per
    occurrence (a POST, or a PATCH that counts an aggregated event again); ``deletes``:
    (pod name, grace_period, preconditions); ``fail_delete``: ApiErrors the next deletes
    raise; ``objects``: the ConfigMaps and Secrets GET finds, by (resource, namespace,
    name), and ``gets``: every such GET."""

    node: Obj = field(default_factory=lambda: {"metadata": {"name": NODE}, "status": {}})
    status_patches: list[tuple[str, Obj]] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)
    deletes: list[tuple[str, int | None, Any]] = field(default_factory=list)
    fail_delete: list[ApiError] = field(default_factory=list)
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    gets: list[tuple[str, str, str]] = field(default_factory=list)
    _stored_events: dict[str, Obj] = field(default_factory=dict)

    async def get(self, resource: Any, name: str, namespace: str | None = None) -> Obj:
        if resource.name == "nodes" and name == self.node["metadata"]["name"]:
            return copy.deepcopy(self.node)
        if resource.name in ("configmaps", "secrets"):
            key = (resource.name, namespace or "", name)
            self.gets.append(key)
            if key in self.objects:
                return copy.deepcopy(self.objects[key])
        raise ApiError(404, "NotFound", f'{resource.name} "{name}" not found')

    async def create(self, resource: Any, obj: Obj, namespace: str | None = None) -> Obj:
        assert resource.name == "events", resource
        self._stored_events[obj["metadata"]["name"]] = copy.deepcopy(obj)
        self.events.append(copy.deepcopy(obj))
        return obj

    async def patch(self, resource: Any, name: str, patch: Any, namespace: str | None = None,
                    *, patch_type: str = "merge", subresource: str | None = None) -> Obj:
        if resource.name == "pods" and subresource == "status":
            self.status_patches.append((name, copy.deepcopy(patch["status"])))
            return {}
        assert resource.name == "events", (resource, subresource)
        stored = self._stored_events[name]
        stored.update(patch)
        self.events.append(copy.deepcopy(stored))
        return stored

    async def delete(self, resource: Any, name: str, namespace: str | None = None, *,
                     grace_period: int | None = None, preconditions: Any = None) -> Obj:
        assert resource.name == "pods", resource
        self.deletes.append((name, grace_period, preconditions))
        if self.fail_delete:
            raise self.fail_delete.pop(0)
        return {}


# -- the harness ------------------------------------------------------------------------------


@dataclass
class Harness:
    """One node's syncer over fakes; :meth:`restart_agent` makes a new syncer (new memory:
    back-off, pod IPs, admissions, status cache) over the same runtime, network and images."""

    tmp: str
    clock: FakeClock
    runtime: FakeRuntime
    network: FakeNetwork
    images: FakeImageService
    rootfs: FakeRootfs
    client: FakeApiClient
    recorder: EventRecorder
    syncer: PodSyncer
    _old: list[PodSyncer] = field(default_factory=list)  # syncers of earlier "agents"

    def restart_agent(self) -> PodSyncer:
        self._old.append(self.syncer)
        self.syncer = _syncer(self)
        return self.syncer

    async def sync(self, pod: Obj, terminating: bool = False) -> PodSyncResult:
        """One sync, then its status writes (written by the status manager's writers)."""
        result = await self.syncer.sync(pod, terminating)
        await self.syncer.status.flush()
        return result

    def calls(self) -> list[str]:
        """The runtime methods called so far, in order."""
        return [name for name, _ in self.runtime.calls]

    def forget_calls(self) -> None:
        self.runtime.calls.clear()
        self.network.calls.clear()
        self.images.calls.clear()

    def started(self) -> list[str]:
        """Container ids started so far, in order."""
        return [args[0] for args in self.runtime.calls_of("start_container")]

    def exit(self, cid: str, code: int, *, ago: float = 0.0) -> None:
        """The container's process exited ``code``, ``ago`` seconds before the agent's now."""
        self.runtime.exit_container(cid, code)
        self.clock.advance(ago)

    async def events(self) -> list[tuple[str, str, str]]:
        """(type, reason, message) of every event occurrence written so far."""
        await self.recorder.flush()
        return [(e["type"], e["reason"], e["message"]) for e in self.client.events]

    async def reasons(self) -> list[str]:
        return [reason for _, reason, _ in await self.events()]

    def api_pod(self, pod: Obj) -> Obj:
        """``pod`` as the API now shows it: with the last status this node wrote."""
        out = copy.deepcopy(pod)
        if self.client.status_patches:
            out["status"] = copy.deepcopy(self.status())
        return out

    def status(self) -> Obj:
        """The last status written to pods/status."""
        return self.client.status_patches[-1][1]

    def container_status(self, name: str = "c") -> Obj:
        return next(s for s in self.status()["containerStatuses"] if s["name"] == name)

    async def close(self) -> None:
        for syncer in [*self._old, self.syncer]:
            await syncer.prober.close()
        await self.recorder.close(1.0)


def _syncer(h: Harness) -> PodSyncer:
    config = AgentConfig(server_url="", token="", ca_file="", node_name=NODE, data_dir=h.tmp)
    return PodSyncer(config, client=h.client, runtime=h.runtime,  # type: ignore[arg-type]
                     images=h.images, rootfs=h.rootfs, network=h.network,
                     recorder=h.recorder, status=StatusManager(h.client),
                     backoff=Backoff(clock=h.clock), node_ip=NODE_IP,
                     host=HostResources(cpu_milli=2000, memory_bytes=1 << 30), clock=h.clock)


def make_harness(tmp_path: Any) -> Harness:
    """A harness whose fake clock starts at the real now."""
    clock = FakeClock(time.time())
    client = FakeApiClient()
    h = Harness(tmp=str(tmp_path), clock=clock, runtime=FakeRuntime(clock=clock.now),
                network=FakeNetwork(),
                images=FakeImageService(remote=["busybox"], local=["busybox"]),
                rootfs=FakeRootfs(os.path.join(str(tmp_path), "rootfs")), client=client,
                recorder=EventRecorder(client, "kubelet", NODE,  # type: ignore[arg-type]
                                       clock=clock.now),
                syncer=None)  # type: ignore[arg-type]
    h.syncer = _syncer(h)
    return h
