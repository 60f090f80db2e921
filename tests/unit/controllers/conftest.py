"""A real in-process API server (memory datastore) and an admin client, per test: the
controllers under test talk to it over HTTPS exactly as in ``podling server``."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from podling.apiserver.server import RunningServer, ServerConfig, start
from podling.client import ApiClient, ClientConfig


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[RunningServer]:
    running = await start(ServerConfig(data_dir=str(tmp_path / "server"), port=0,
                                       datastore="memory"))
    yield running
    await running.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        yield api
