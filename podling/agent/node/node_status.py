"""The node loop: registers this agent's Node, heartbeats through its Lease, reports status.

This loop is the only writer of the Node object (docs/architecture.md §4). It talks to the
API server as an ordinary client, exactly as the kubelet does::

    register() ──▶ tick() every heartbeat_seconds ─────────────────────────────┐
      create Node (or adopt it:      ├─ renew Lease kube-node-lease/<node>    │
      labels merged, status patched) └─ patch nodes/<node>/status when it     │
                                        changed, or every 5 min at the latest ◀┘

Every failure is logged and retried on the next tick: :meth:`run` never raises (except
cancellation) and never retries inline in a tight loop.

Conditions follow the kubelet's setters (:mod:`.conditions`); ``lastTransitionTime`` moves
only when a condition's status changes, ``lastHeartbeatTime`` on every status report. Host
facts come from :mod:`.host`, the Lease from :mod:`.lease`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from podling.agent.config import AgentConfig
from podling.agent.node.conditions import (condition_events, desired_conditions, merge_conditions,
                                           without_heartbeats)
from podling.agent.node.host import (Pressure, allocatable, capacity, node_info, primary_ipv4,
                                     probe_pressure)
from podling.agent.node.lease import NodeLease
from podling.api.errors import ApiError
from podling.api.resources import NODES
from podling.api.types import Obj
from podling.api.views import NodeView
from podling.client.errors import ApiConnectionError
from podling.util.timefmt import epoch_rfc3339

if TYPE_CHECKING:
    from podling.client.events import EventRecorder
    from podling.client.rest import ApiClient

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds since the epoch, like time.time
ReadyCheck = Callable[[], Awaitable[list[str]]]

STATUS_REPORT_SECONDS = 300.0  # the kubelet's nodeStatusReportFrequency


# --- the loop ----------------------------------------------------------------------------


async def _always_ready() -> list[str]:
    return []


class NodeStatusLoop:
    """Registers and maintains one Node and its Lease. Create one per agent; call
    :meth:`register` (or let :meth:`run` do it) and run :meth:`run` as a task.

    ``ready_check`` returns the problems that make the node NotReady (e.g. ``"container
    runtime network not ready: …"``); an exception from it counts as a problem. ``clock``
    gives epoch seconds (a fake one in tests). ``node_ip`` overrides the InternalIP found
    from the default route. With a ``recorder`` the kubelet's node events are recorded.
    """

    def __init__(self, client: "ApiClient", config: AgentConfig, *,
                 ready_check: ReadyCheck = _always_ready, clock: Clock = time.time,
                 runtime_version: str = "runc://unknown", kubelet_port: int = 10250,
                 node_ip: str | None = None, recorder: "EventRecorder | None" = None,
                 pressure: Callable[[], Pressure] | None = None) -> None:
        self.client = client
        self.config = config
        self.ready_check = ready_check
        self.clock = clock
        self.runtime_version = runtime_version
        self.kubelet_port = kubelet_port
        self.node_ip = node_ip
        self.recorder = recorder
        self._pressure = pressure or (lambda: probe_pressure(config.data_dir))
        self.node: Obj | None = None  # the last Node the server returned
        self.lease = NodeLease(client, config.node_name,
                               duration_seconds=config.lease_duration_seconds, clock=clock)
        self._reported: Obj | None = None  # last status sent, without heartbeats
        self._reported_at = 0.0

    @property
    def name(self) -> str:
        return self.config.node_name

    @property
    def registered(self) -> bool:
        return self.node is not None

    def labels(self) -> dict[str, str]:
        """The labels this agent owns on its Node (``config.node_labels`` win)."""
        arch = self.config.architecture
        return {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch, **self.config.node_labels}

    # -- status ----------------------------------------------------------------------------

    def _static_status(self) -> Obj:
        """Addresses, capacity, allocatable, nodeInfo, daemonEndpoints (blocking reads)."""
        cap = capacity(self.config)
        return {"addresses": [{"type": "InternalIP", "address": self.node_ip or primary_ipv4()},
                              {"type": "Hostname", "address": self.name}],
                "capacity": cap, "allocatable": allocatable(cap),
                "nodeInfo": node_info(self.config, self.runtime_version),
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}}}

    async def _problems(self) -> list[str]:
        try:
            return list(await self.ready_check())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken check must not hide the node: report it
            return [f"ready check failed: {exc}"]

    async def desired_status(self) -> Obj:
        """The status to report now, with conditions merged into the last known ones."""
        static = await asyncio.to_thread(self._static_status)
        pressure = await asyncio.to_thread(self._pressure)
        previous = ((self.node or {}).get("status") or {}).get("conditions") or []
        conditions = merge_conditions(previous, desired_conditions(await self._problems(),
                                                                   pressure),
                                      epoch_rfc3339(self.clock()))
        return dict(static, conditions=conditions)

    # -- registration ----------------------------------------------------------------------

    async def register(self) -> Obj:
        """Create the Node, or adopt an existing one (its labels merged with ours, ours
        winning); then report the full status. Idempotent. Raises ApiError /
        ApiConnectionError (the caller retries later)."""
        status = await self.desired_status()
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": self.labels()},
                "spec": {"taints": [dict(t) for t in self.config.node_taints]}
                if self.config.node_taints else {}, "status": status}
        try:
            created = await self.client.create(NODES, node)
            self._remember(created, {"conditions": []}, status)
            log.info("registered node %s", self.name)
            return created
        except ApiError as exc:
            if exc.code != 409:
                raise
        await self.client.patch(NODES, self.name, {"metadata": {"labels": self.labels()}})
        existing = await self.client.get(NODES, self.name)
        self.node = existing
        status = await self.desired_status()  # transitions measured against the old node
        await self._report(status)
        log.info("adopted existing node %s", self.name)
        return self.node

    def _remember(self, node: Obj, previous_status: Obj, sent: Obj) -> None:
        self.node = node
        self._reported = without_heartbeats(sent)
        self._reported_at = self.clock()
        self._record_events(previous_status.get("conditions") or [],
                            sent.get("conditions") or [])

    def _record_events(self, previous: list[Obj], current: list[Obj]) -> None:
        if self.recorder is None or self.node is None:
            return
        for type_, reason in condition_events(previous, current):
            self.recorder.event(self.node, type_, reason,
                                f"Node {self.name} status is now: {reason}")

    async def _report(self, status: Obj) -> None:
        previous = (self.node or {}).get("status") or {}
        patched = await self.client.patch(NODES, self.name, {"status": status},
                                          patch_type="strategic", subresource="status")
        self._remember(patched, previous, status)

    # -- the periodic work -----------------------------------------------------------------

    async def sync_status(self) -> bool:
        """Patch nodes/status if anything but heartbeats changed, or if the last report is
        STATUS_REPORT_SECONDS old. Returns whether a patch was sent. Raises on API errors."""
        status = await self.desired_status()
        due = self.clock() - self._reported_at >= STATUS_REPORT_SECONDS
        if not due and without_heartbeats(status) == self._reported \
                and not await self._server_drifted(status):
            return False
        await self._report(status)
        return True

    async def _server_drifted(self, status: Obj) -> bool:
        """Whether the server's Node shows other condition statuses than ours (e.g. the node
        lifecycle controller set them Unknown while we were away): then report at once."""
        self.node = await self.client.get(NODES, self.name)
        def statuses(conditions: list[Obj] | None) -> dict[Any, Any]:
            return {c.get("type"): c.get("status") for c in conditions or []}
        return statuses(((self.node or {}).get("status") or {}).get("conditions")) != \
            statuses(status.get("conditions"))

    async def renew_lease(self) -> Obj:
        """Create or renew ``kube-node-lease/<node>`` (see :class:`.lease.NodeLease`)."""
        return await self.lease.renew(NodeView.from_obj(self.node).metadata.uid)

    async def tick(self) -> None:
        """One pass: register if needed, renew the lease, report status. Never raises
        (except cancellation); failures are logged and retried on the next pass."""
        steps = ([] if self.registered else [("register node", self.register)]) + \
            [("renew lease", self.renew_lease), ("update node status", self.sync_status)]
        for what, step in steps:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError, OSError) as exc:
                log.warning("node %s: %s failed (retrying in %ss): %s", self.name, what,
                            self.config.heartbeat_seconds, exc)
                if not self.registered:
                    return
            except Exception:
                log.exception("node %s: %s failed unexpectedly", self.name, what)
                if not self.registered:
                    return

    async def run(self) -> None:
        """Tick every ``heartbeat_seconds`` until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.config.heartbeat_seconds)

    async def pod_cidr(self) -> str | None:
        """The Node's ``spec.podCIDR`` as the API server assigned it (None until then).
        Reads the Node; on an API failure answers from the last Node seen."""
        try:
            self.node = await self.client.get(NODES, self.name)
        except (ApiError, ApiConnectionError) as exc:
            log.warning("node %s: reading spec.podCIDR failed: %s", self.name, exc)
        return NodeView.from_obj(self.node).pod_cidr or None
