"""--node-label / --node-taint reach the Node the agent registers (kubelet's
--register-with-taints: the taints are set when the Node is created)."""

from __future__ import annotations

from podling.agent.config import AgentConfig
from podling.agent.node.node_status import NodeStatusLoop
from podling.api.resources import NODES
from podling.apiserver.server import ServerConfig, start
from podling.cli import layers
from podling.cli.main import agent_overrides
from podling.client import ApiClient, ClientConfig
from podling.util.clock import FakeClock


async def _ready() -> list[str]:
    return []


async def test_labels_and_taints_from_flags_are_registered(tmp_path):
    (tmp_path / "config.yaml").touch()
    args = layers.parse(["agent", "--node-label", "zone=a,disk=ssd", "--node-taint",
                         "dedicated=gpu:NoSchedule", "--node-name", "n1"],
                        {"PODLING_CONFIG": str(tmp_path / "config.yaml"),
                         "PODLING_NODE_TAINT": "ignored:NoExecute"})
    config = AgentConfig(server_url="https://unused", token="", ca_file="",
                         data_dir=str(tmp_path / "agent"), **agent_overrides(args))
    assert config.node_name == "n1"
    running = await start(ServerConfig(data_dir=str(tmp_path / "server"), port=0,
                                       datastore="memory", service_account_admission=False))
    try:
        async with ApiClient(ClientConfig.from_kubeconfig(running.config.kubeconfig_path)) as api:
            loop = NodeStatusLoop(api, config, ready_check=_ready, clock=FakeClock(1e9),
                                  node_ip="127.0.0.1", pressure=lambda: _no_pressure())
            await loop.register()
            node = await api.get(NODES, "n1")
    finally:
        await running.stop()
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "gpu",
                                       "effect": "NoSchedule"}]
    labels = node["metadata"]["labels"]
    assert labels["zone"] == "a" and labels["disk"] == "ssd"


def _no_pressure():
    from podling.agent.node.host import Pressure
    return Pressure()
