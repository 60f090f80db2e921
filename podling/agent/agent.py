"""The node agent (podling's kubelet): wiring of its loops around one pod syncer.

    API ──informer(spec.nodeName=me)──▶ pod.PodWorkers ──▶ pod.PodSyncer.sync_pod(pod)
     ▲                                     ▲                   │ (kuberuntime)
     │                       PLEG (exits) ─┘                   ▼
     │                                              runtime / images / network interfaces
     └──── pod.StatusManager (pods/status), EventRecorder,
           node.NodeStatusLoop (Node, Lease), node.NodeServer (logs, exec, stats, and the
           node's images over the OCI distribution API: the ``@nodes`` mirror)

The agent talks to the API server over HTTP only and keeps no database of its own: after a
restart it adopts whatever the runtime reports (labels carry pod identity).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from podling.agent.backoff import Backoff
from podling.agent.config import AgentConfig
from podling.agent.images_nodes import ClusterNodes
from podling.client.events import EventRecorder
from podling.agent.node.host import node_allocatable
from podling.agent.node.node_status import NodeStatusLoop
from podling.agent.node.server import NodeServer
from podling.agent.objects import ObjectCache
from podling.agent.pleg import Pleg
from podling.agent.pod.pod_workers import PodWorkers
from podling.agent.pod.status_manager import StatusManager
from podling.agent.pod.sync import PodSyncer
from podling.agent.pod.updates import needs_sync
from podling.api.resources import NODE_API_ANNOTATION, NODE_API_SOCKET_ANNOTATION, NODES
from podling.api.views import NodeView
from podling.client import ApiClient, Informer
from podling.images.interface import ImageService, NodeImageStore, RootfsService
from podling.network.interface import NetworkPlugin
from podling.runtime.interface import RuntimeService

log = logging.getLogger(__name__)
REGISTER_RETRY_SECONDS = 2.0


@dataclass
class AgentParts:
    """The node's implementations, built by the caller (cli) from their concrete modules."""

    runtime: RuntimeService
    images: ImageService
    rootfs: RootfsService
    network_for_cidr: Callable[[str], NetworkPlugin]  # pod CIDR → the pod network plugin
    runtime_version: str = "runc://unknown"


class Agent:
    """One node. ``start`` returns once the Node is registered and pods are being synced;
    ``stop`` leaves containers running (a restarted agent adopts them)."""

    def __init__(self, config: AgentConfig, client: ApiClient, parts: AgentParts) -> None:
        self.config = config
        self.client = client
        self.parts = parts
        self.recorder = EventRecorder(client, "kubelet", config.node_name)
        self.node_status: NodeStatusLoop | None = None
        self.syncer: PodSyncer | None = None
        self.workers: PodWorkers | None = None
        self.informer: Informer | None = None
        self.pleg: Pleg | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Node API up, Node registered, pod syncer, workers, PLEG and pod informer running."""
        images = self.parts.images if isinstance(self.parts.images, NodeImageStore) else None
        self.node_api = NodeServer(token=self.config.kubelet_client_token or self.config.token,
                                   pods_dir=self.config.pods_dir,
                                   runtime=self.parts.runtime, find_pod=self._find_pod,
                                   cert_dir=os.path.join(self.config.data_dir, "agent",
                                                         "node-api"),
                                   pull_token=self.config.image_pull_token, images=images)
        port = await self.node_api.start(self.config.node_api_address, self.config.node_api_port,
                                         socket_path=self._node_api_socket)
        node_status, node_ip = await self._register(port)
        if images is not None:
            self._serve_images(images, port)
        cidr = await node_status.pod_cidr() or "10.42.0.0/24"
        network = self.parts.network_for_cidr(cidr)
        self.syncer = PodSyncer(self.config, client=self.client, runtime=self.parts.runtime,
                                images=self.parts.images, rootfs=self.parts.rootfs,
                                network=network, recorder=self.recorder,
                                status=StatusManager(self.client), backoff=Backoff(),
                                node_ip=node_ip,
                                host=await asyncio.to_thread(node_allocatable, self.config))
        workers = self.workers = PodWorkers(self.syncer.sync,
                                            resync_seconds=self.config.resync_seconds)
        self.syncer.prober.notify = workers.notify  # a probe result changed: sync the pod
        self.pleg = Pleg(self.parts.runtime, workers.notify)
        self.pleg.start()
        self.informer = Informer(self.client, "pods",
                                 field_selector=f"spec.nodeName={self.config.node_name}")
        self.informer.add_handler(self._on_pod)
        self.informer.start()
        await self.informer.wait_synced()
        self._tasks.append(asyncio.create_task(self._orphans(), name="agent-orphans"))
        self.recorder.event(node_status.node or {}, "Normal", "Starting", "Starting kubelet.")

    async def _register(self, node_api_port: int) -> tuple[NodeStatusLoop, str]:
        """Register the Node (retrying until the server answers), start its status loop and
        advertise the node API; returns the loop and the node's InternalIP."""
        node_status = self.node_status = NodeStatusLoop(
            self.client, self.config, ready_check=self._ready_problems,
            runtime_version=self.parts.runtime_version, recorder=self.recorder,
            kubelet_port=node_api_port)
        while True:
            try:
                node = await node_status.register()
                break
            except Exception as exc:  # the server may not be up yet
                log.warning("registering node %s failed (%s); retrying", self.config.node_name,
                            exc)
                await asyncio.sleep(REGISTER_RETRY_SECONDS)
        self._tasks.append(asyncio.create_task(node_status.run(), name="node-status"))
        internal_ip = NodeView.from_obj(node).address("InternalIP")
        node_ip = "127.0.0.1" if internal_ip is None else internal_ip
        advertised = node_ip if self.config.node_api_address in ("0.0.0.0", "") \
            else self.config.node_api_address
        await self.client.patch(NODES, self.config.node_name, {"metadata": {"annotations": {
            NODE_API_ANNOTATION: f"https://{advertised}:{node_api_port}",
            NODE_API_SOCKET_ANNOTATION: self._node_api_socket}}})
        return node_status, node_ip

    def _serve_images(self, images: NodeImageStore, port: int) -> None:
        """``@nodes`` in registries.yaml: this node's API, then its Ready peers' (with the
        image-pull token, else — alone — its own token); registries.yaml followed."""
        address = self.config.node_api_address
        own = "127.0.0.1" if address in ("0.0.0.0", "", "::") else address
        own = f"[{own}]" if ":" in own else own
        nodes = ClusterNodes(self.client, self.config.node_name, f"https://{own}:{port}")
        images.use_nodes(nodes.urls, self.config.image_pull_token
                         or self.config.kubelet_client_token or self.config.token)
        self._tasks.append(asyncio.create_task(images.watch_registries(),
                                               name="registries-watch"))

    @property
    def _node_api_socket(self) -> str:
        return os.path.join(self.config.run_dir, "node-api.sock")

    def _find_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.informer is None:
            return None
        return next((p for p in self.informer.list() if p["metadata"]["name"] == name
                     and p["metadata"].get("namespace") == namespace), None)

    async def _ready_problems(self) -> list[str]:
        if self.syncer is None:
            return ["container runtime network not ready: NetworkReady=false "
                    "reason:NetworkPluginNotReady message:podling: network not initialized"]
        return await self.syncer.readiness_problems()

    def _on_pod(self, type_: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        assert self.workers is not None and self.syncer is not None
        if type_ == "MODIFIED" and old is not None and not needs_sync(old, pod):
            self.workers.update(pod, wake=False)  # e.g. our own status write coming back
            return
        if isinstance(self.syncer.objects, ObjectCache):
            self.syncer.objects.invalidate_pod(pod)  # a new or changed pod reads fresh objects
        self.workers.update(pod, removed=(type_ == "DELETED"))

    async def _orphans(self) -> None:
        """Periodically remove sandboxes of pods this node no longer has (level-triggered)."""
        assert self.syncer is not None and self.informer is not None
        assert self.workers is not None
        while True:
            try:
                live = {p["metadata"]["uid"] for p in self.informer.list()}
                await self.syncer.remove_orphans(live | self.workers.known())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("orphan cleanup failed")
            await asyncio.sleep(self.config.resync_seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.informer:
            await self.informer.stop()
        if self.workers:
            await self.workers.stop()
        if self.syncer:
            await self.syncer.prober.close()
            await self.syncer.status.close()
        if self.pleg:
            await self.pleg.stop()
        await self.recorder.close()
        await self.node_api.stop()
