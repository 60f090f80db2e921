"""``podling purge``: remove everything podling created on this host for one node.

Stops and removes every runc container and conmon of the node's runtime, releases pod
networking (CNI DEL, iptables rules, the bridge, IP allocations), unmounts container root
filesystems and pod volumes, and deletes the runtime and agent state — with the agent's
credentials, also this data dir's server record of the node's token (``server/node-tokens/
<node>``), so that the node joins again with the join token on its next start. Images and
the rest of the API server's data stay unless ``--all`` is given. Run it with podling
stopped. :func:`inventory` describes what is there to remove (``--dry-run`` prints it and
stops; a real purge prints it afterwards as its summary).
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


def node_token_record(data_dir: str, node_name: str) -> str:
    """Where a server on ``data_dir`` keeps the hash of ``node_name``'s token."""
    return os.path.join(data_dir, "server", "node-tokens", node_name)


def _entries(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def inventory(config: AgentConfig, *, everything: bool = False) -> list[str]:
    """One line per kind of thing :func:`purge` would remove now (empty: nothing)."""
    found = []
    agent_dir = os.path.join(config.data_dir, "agent")
    runc_dir = os.path.join(config.runtime_root, "runc")
    if containers := _entries(runc_dir):
        found.append(f"{len(containers)} runc container(s) under {runc_dir}")
    roots = (config.run_dir, agent_dir, config.images_dir)
    if points := [p for root in roots if os.path.isdir(root) for p in mounts_under(root)]:
        found.append(f"{len(points)} mount(s) under {', '.join(roots)}")
    if attachments := _entries(os.path.join(config.cni_state_dir, "results")):
        found.append(f"{len(attachments)} pod network attachment(s) (CNI DEL)")
    if os.path.exists(os.path.join("/sys/class/net", config.bridge_name)):
        found.append(f"bridge {config.bridge_name} and its iptables rules")
    found += [f"directory {d}" for d in (agent_dir, config.run_dir) if os.path.isdir(d)]
    if os.path.exists(record := node_token_record(config.data_dir, config.node_name)):
        found.append(f"node token record {record}")
    if everything and os.path.isdir(config.data_dir):
        found.append(f"directory {config.data_dir} (images and API data)")
    return found


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
    with contextlib.suppress(FileNotFoundError):  # the token it recorded for the node
        os.remove(node_token_record(config.data_dir, config.node_name))
    if everything:
        shutil.rmtree(config.data_dir, ignore_errors=True)
    return problems
