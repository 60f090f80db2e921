"""`podling purge` forgets the node's token record with the agent's credentials, so that a
later start on the same data dir joins again instead of failing with "node already has a
token" (the runtime and network parts are stubbed: they have their own tests)."""

from __future__ import annotations

import os

from podling.agent.config import AgentConfig
from podling.cli import purge as purge_cli


async def test_purge_removes_the_node_token_record_and_keeps_others(tmp_path, monkeypatch):
    async def nothing(*args, **kwargs):
        return []
    monkeypatch.setattr(purge_cli, "purge_runtime", nothing)
    monkeypatch.setattr(purge_cli.CniNetwork, "purge", nothing)
    data = tmp_path / "data"
    (data / "agent" / "credentials").mkdir(parents=True)
    (data / "agent" / "credentials" / "n1.token").write_text("secret")
    records = data / "server" / "node-tokens"
    records.mkdir(parents=True)
    (records / "n1").write_text("hash1")
    (records / "n2").write_text("hash2")
    config = AgentConfig(server_url="https://127.0.0.1:1", token="", ca_file="", node_name="n1",
                         data_dir=str(data), run_dir=str(tmp_path / "run"))
    assert await purge_cli.purge(config) == []
    assert not os.path.exists(data / "agent")
    assert sorted(os.listdir(records)) == ["n2"]
    assert await purge_cli.purge(config) == []  # again: nothing left to remove is fine
