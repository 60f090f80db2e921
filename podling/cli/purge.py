"""``podling purge``: remove everything podling created on this host for one node.

Stops and removes every runc container and conmon of the node's runtime, releases pod
networking (CNI DEL, iptables rules, the bridge, IP allocations), unmounts container root
filesystems and pod volumes, and deletes the runtime and agent state. Images and the API
server's data stay unless ``--all`` is given. Run it with podling stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil

from ..agent.config import AgentConfig
from ..network.cni import CniNetwork
from ..network.cni_config import CniConfig
from ..runtime.oci import purge as purge_runtime
from ..util.mounts import mounts_under, unmount
from .agent import network_name


def _unmount_all(root: str) -> None:
    """Unmount everything at or below ``root``, deepest first; best effort."""
    for point in mounts_under(root):
        with contextlib.suppress(OSError):
            unmount(point, lazy=False)


async def purge(config: AgentConfig, *, everything: bool = False) -> list[str]:
    """Remove the node's runtime objects, network and mounts; the problems left, if any."""
    problems = list(await purge_runtime(config.runtime_root))
    cni_dir = config.cni_state_dir
    network = CniNetwork(CniConfig(state_dir=cni_dir, bridge_name=config.bridge_name,
                                   network_name=network_name(config)))
    await network.purge()
    agent_dir = os.path.join(config.data_dir, "agent")
    for root in (agent_dir, os.path.join(config.data_dir, "images")):
        if os.path.isdir(root):
            await asyncio.to_thread(_unmount_all, root)
    shutil.rmtree(agent_dir, ignore_errors=True)
    shutil.rmtree(config.run_dir, ignore_errors=True)
    if everything:
        shutil.rmtree(config.data_dir, ignore_errors=True)
    return problems
