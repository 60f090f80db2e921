"""A real in-process API server (memory datastore) per test, and clients built from the
kubeconfig it writes. The server runs in the test's own event loop and is stopped at the end.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from podling.apiserver.server import RunningServer, ServerConfig, start
from podling.apiserver.watch import WatchOptions
from podling.client import ApiClient, ClientConfig

StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(tmp_path) -> AsyncIterator[StartServer]:
    """``await start_server(history=5, datastore="sqlite", port=0, data_dir=...)``."""
    running: list[RunningServer] = []

    async def _start(**overrides: Any) -> RunningServer:
        fields: dict[str, Any] = dict(data_dir=str(tmp_path / f"server{len(running)}"),
                                      port=0, datastore="memory", history=1000,
                                      watch=WatchOptions(bookmark_interval=0.2),
                                      service_account_admission=False)
        fields.update(overrides)
        server = await start(ServerConfig(**fields))
        running.append(server)
        return server

    yield _start
    for server in running:
        await server.stop()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        yield api
