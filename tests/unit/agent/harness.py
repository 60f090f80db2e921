"""The agent without root: a real API server (memory store) in-process, an ApiClient to it, and
a real ``Agent`` on fakes (FakeRuntime, FakeImageService, FakeRootfs, FakeNetwork).

Use the ``agent_harness`` fixture (import it into the test module)::

    from harness import AgentHarness, agent_harness  # noqa: F401

    async def test_x(agent_harness: AgentHarness) -> None:
        h = agent_harness
        await h.create_pod(make_pod("p").node(h.node_name).build())
        pod = await h.wait_pod("p", lambda p: p["status"].get("phase") == "Running")

The tests talk to the agent only through the API and the fakes (black box): they never import
``podling.agent`` modules other than ``agent`` and ``config``. The agent resyncs every
``RESYNC`` seconds; waits poll the API with a timeout (``wait_*``) or block on the fake's call
log (``FakeRuntime.wait_for_calls``) — no test sleeps for a fixed time.

Stopping the agent: ``Agent.stop()`` can hang for ever when a pod worker is woken in the
same loop iteration as its cancellation (an agent bug: PodWorkers waits with
``asyncio.wait_for(event.wait(), delay)``, and Python 3.11's ``wait_for`` swallows the
cancellation when the inner wait has just completed; the worker then loops on). So the
fixture deletes every pod and waits until they are gone before stopping the agent, and tests
that stop it mid-way first wait until it is quiet (:meth:`AgentHarness.quiesce`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from inprocess import wait_until

from podling.agent.agent import Agent, AgentParts
from podling.agent.config import AgentConfig
from podling.api import errors
from podling.api.resources import EVENTS, PODS
from podling.apiserver.server import RunningServer, ServerConfig, start
from podling.client import ApiClient, ClientConfig
from podling.images.fake import FakeImageService, FakeRootfs
from podling.network.fake import FakeNetwork
from podling.runtime.fake import FakeRuntime
from podling.runtime.interface import ContainerState, ContainerStatus

NODE = "harness-node"
RESYNC = 0.2
TIMEOUT = 10.0
POD_UID_LABEL = "io.kubernetes.pod.uid"  # the CRI label every runtime object carries
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
Obj = dict[str, Any]


@dataclass
class AgentHarness:
    """One node: the server, a client, the fakes and the running Agent (``agent``)."""

    server: RunningServer
    client: ApiClient
    config: AgentConfig
    runtime: FakeRuntime = field(default_factory=FakeRuntime)
    images: FakeImageService = field(default_factory=lambda: FakeImageService(
        remote=["busybox", "nginx"]))
    rootfs: FakeRootfs = field(default_factory=FakeRootfs)
    networks: list[FakeNetwork] = field(default_factory=list)
    agent: Agent | None = None

    @property
    def node_name(self) -> str:
        return self.config.node_name

    def _network(self, cidr: str) -> FakeNetwork:
        net = FakeNetwork(cidr)
        self.networks.append(net)
        return net

    async def start_agent(self) -> Agent:
        """Start a new Agent on the same fakes (the runtime keeps its containers)."""
        assert self.agent is None, "stop the running agent first"
        parts = AgentParts(runtime=self.runtime, images=self.images, rootfs=self.rootfs,
                           network_for_cidr=self._network, runtime_version="fake://0.1")
        agent = Agent(self.config, self.client, parts)
        await asyncio.wait_for(agent.start(), TIMEOUT)
        self.agent = agent
        return agent

    async def quiesce(self, pod: Obj) -> None:
        """Wait until the agent has listed ``pod``'s containers three more times (a sync of a
        pod that needs nothing lists once): two whole syncs ran after this call, so the echo
        of any status written before has arrived. With nothing changing, the pod's worker
        is then idle and nothing wakes it."""
        uid = pod["metadata"]["uid"]

        def of_pod(args: tuple[Any, ...]) -> bool:
            return any(isinstance(a, dict) and a.get(POD_UID_LABEL) == uid for a in args)
        seen = len([a for a in self.runtime.calls_of("list_containers") if of_pod(a)])
        await self.runtime.wait_for_calls("list_containers", seen + 3, where=of_pod)

    async def delete_all_pods(self, timeout: float = TIMEOUT) -> None:
        """Delete every pod (graceful: the agent stops them) and wait until none is left."""
        items, _ = await self.client.list(PODS)
        for pod in items:
            meta = pod["metadata"]
            try:
                await self.client.delete(PODS, meta["name"], meta.get("namespace"))
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise

        async def none_left() -> bool:
            return not (await self.client.list(PODS))[0]
        await wait_until(none_left, "every pod to be deleted", timeout)

    async def stop_agent(self) -> None:
        """Stop the Agent; containers keep running in the FakeRuntime."""
        agent, self.agent = self.agent, None
        if agent is not None:
            await asyncio.wait_for(agent.stop(), TIMEOUT)

    # -- the API side ----------------------------------------------------------------------

    async def create_pod(self, pod: Obj) -> Obj:
        """Create ``pod`` (built with tests/builders.py; its uid is dropped: the server
        assigns one) and return the stored object."""
        pod = dict(pod, metadata={k: v for k, v in pod["metadata"].items() if k != "uid"})
        pod.pop("status", None)
        return await self.client.create(PODS, pod, pod["metadata"].get("namespace", "default"))

    async def get_pod(self, name: str, namespace: str = "default") -> Obj | None:
        try:
            return await self.client.get(PODS, name, namespace)
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def wait_pod(self, name: str, predicate: Callable[[Obj], Any], what: str = "",
                       timeout: float = TIMEOUT) -> Obj:
        """The pod once ``predicate(pod)`` holds."""
        async def check() -> Obj | None:
            pod = await self.get_pod(name)
            return pod if pod is not None and predicate(pod) else None
        return await wait_until(check, what or f"pod {name}", timeout)

    async def wait_gone(self, name: str, timeout: float = TIMEOUT) -> None:
        async def gone() -> bool:
            return await self.get_pod(name) is None
        await wait_until(gone, f"pod {name} to be deleted", timeout)

    async def events(self, pod_name: str) -> list[Obj]:
        """The Events about pod ``pod_name``, oldest first."""
        items, _ = await self.client.list(
            EVENTS, "default", field_selector=f"involvedObject.name={pod_name}")
        return sorted(items, key=lambda e: int(e["metadata"]["resourceVersion"]))

    async def wait_event(self, pod_name: str, reason: str, message: str | None = None,
                         timeout: float = TIMEOUT) -> Obj:
        """The first Event with ``reason`` (and ``message``, when given) about the pod. The
        agent records Events asynchronously: wait for one before reading ``events``."""
        async def find() -> Obj | None:
            return next((e for e in await self.events(pod_name) if e.get("reason") == reason
                         and message in (None, e.get("message"))), None)
        return await wait_until(find, f"event {reason} {message or ''} for pod {pod_name}",
                                timeout)

    # -- the runtime side ------------------------------------------------------------------

    async def containers(self, pod: Obj, name: str | None = None) -> list[ContainerStatus]:
        """The runtime's containers of ``pod`` (by uid label), optionally by container name,
        oldest first."""
        want = {POD_UID_LABEL: pod["metadata"]["uid"]}
        if name is not None:
            want[CONTAINER_NAME_LABEL] = name
        found = await self.runtime.list_containers(labels=want)
        return sorted(found, key=lambda c: (c.created_at, c.id))

    async def running_container(self, pod: Obj, name: str) -> ContainerStatus:
        """The pod's RUNNING container ``name``, once there is one."""
        async def find() -> ContainerStatus | None:
            return next((c for c in await self.containers(pod, name)
                         if c.state is ContainerState.RUNNING), None)
        return await wait_until(find, f"container {name} running")


def container_status(pod: Obj, name: str) -> Obj:
    """``status.containerStatuses[name]`` of ``pod`` ({} when absent)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == name:
            return cs
    return {}


def waiting_reason(pod: Obj, name: str) -> str:
    return ((container_status(pod, name).get("state") or {}).get("waiting") or {}) \
        .get("reason", "")


@pytest.fixture
async def agent_harness(tmp_path: Path) -> AsyncIterator[AgentHarness]:
    """A started AgentHarness; everything is stopped at the end of the test."""
    server = await start(ServerConfig(data_dir=str(tmp_path / "server"), port=0,
                                      datastore="memory", service_account_admission=False))
    run_dir = tempfile.mkdtemp(prefix="pdl-h-", dir="/tmp")  # short: a Unix socket lives here
    client = ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path))
    config = AgentConfig(server_url=server.url, token=server.admin_token,
                         ca_file=server.ca_file, node_name=NODE,
                         data_dir=str(tmp_path / "agent"), run_dir=run_dir,
                         resync_seconds=RESYNC, heartbeat_seconds=1.0,
                         node_api_address="127.0.0.1", node_api_port=0)
    harness = AgentHarness(server=server, client=client, config=config)
    try:
        await harness.start_agent()
        yield harness
        if harness.agent is not None:
            await harness.delete_all_pods()  # see the module docstring
    finally:
        await harness.stop_agent()
        await harness.runtime.close()
        await client.close()
        await server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
