"""Wiring of a node agent: the concrete runtime, image store and network behind the agent.

Used by ``podling agent`` (one more node) and by ``podling server`` (its local agent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import re
import subprocess

from ..agent import bootstrap
from ..agent.agent import Agent, AgentParts
from ..agent.config import AgentConfig
from ..client import ApiClient, ClientConfig
from ..images.rootfs import SnapshotRootfs
from ..images.service import ImageStoreConfig, LocalImageService
from ..network.cni import CniNetwork
from ..network.cni_config import CniConfig
from ..runtime.oci import OciRuntime, OciRuntimeConfig
from .errors import CliError
from .tuning import tune_process

log = logging.getLogger(__name__)


def _runc_version() -> str:
    try:
        out = subprocess.run(["runc", "--version"], capture_output=True, text=True, timeout=5)
        match = re.search(r"runc version (\S+)", out.stdout)
        return f"runc://{match.group(1)}" if match else "runc://unknown"
    except (OSError, subprocess.SubprocessError):
        return "runc://unknown"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def network_name(config: AgentConfig) -> str:
    """The node's CNI network (it tags the node's iptables rules): named after its bridge,
    which is unique on a host even when two clusters use the same node names."""
    return f"podling-{_safe(config.bridge_name)}"


def build_parts(config: AgentConfig) -> AgentParts:
    """The real implementations, each with state private to this node."""
    runtime = OciRuntime(OciRuntimeConfig(root=config.runtime_root,
                                          cgroup_root=f"/podling/{_safe(config.node_name)}"))
    images = LocalImageService(ImageStoreConfig.for_data_dir(config.data_dir))
    rootfs = SnapshotRootfs(images, os.path.join(config.data_dir, "agent", "rootfs"))

    def network_for_cidr(cidr: str) -> CniNetwork:
        return CniNetwork(CniConfig(state_dir=config.cni_state_dir, pod_cidr=cidr,
                                    bridge_name=config.bridge_name,
                                    network_name=network_name(config)))

    return AgentParts(runtime=runtime, images=images, rootfs=rootfs,
                      network_for_cidr=network_for_cidr, runtime_version=_runc_version())


async def with_credentials(config: AgentConfig) -> AgentConfig:
    """``config`` with the credentials its token yields (a join token is exchanged for a
    node token; see :mod:`podling.agent.bootstrap`) from the first of its servers that can
    be reached. Raises bootstrap.JoinError."""
    servers = (config.server_url, *config.fallback_servers)
    for server in servers:
        try:
            creds = await bootstrap.resolve(server, config.token, node_name=config.node_name,
                                            data_dir=config.data_dir, ca_file=config.ca_file)
            break
        except bootstrap.Unreachable:
            if server == servers[-1]:
                raise
    return dataclasses.replace(config, token=creds.token, ca_file=creds.ca_file,
                               kubelet_client_token=creds.kubelet_client_token,
                               image_pull_token=creds.image_pull_token)


async def start_agent(config: AgentConfig) -> Agent:
    """Start an agent against ``config.server_url``; returns once its Node is registered."""
    client = ApiClient(ClientConfig(server=config.server_url, token=config.token,
                                    ca_file=config.ca_file,
                                    fallback_servers=config.fallback_servers))
    agent = Agent(config, client, build_parts(config))
    await agent.start()
    return agent


async def stop_agent(agent: Agent) -> None:
    await agent.stop()
    await agent.parts.runtime.close()
    await agent.parts.images.close()
    await agent.client.close()


async def run_agent(config: AgentConfig) -> None:
    """``podling agent``: join (when given a join token), then run until cancelled
    (SIGINT / SIGTERM)."""
    tune_process()
    config = await with_credentials(config)
    try:
        agent = await start_agent(config)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise CliError(f"podling agent: cannot listen on {config.node_api_address}:"
                       f"{config.node_api_port} (the node API): {os.strerror(exc.errno)} "
                       "(choose --node-api-port)") from None
    servers = ", ".join((config.server_url, *config.fallback_servers))
    print(f"podling: agent for node {config.node_name} running against {servers}",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await stop_agent(agent)
