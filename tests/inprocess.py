"""An API server in the test's own process, on the memory store, and the wait that tests
against it share.

Import the fixtures into a ``conftest.py`` (``from inprocess import client, server  #
noqa: F401``): ``server`` is a started :class:`~podling.apiserver.server.RunningServer`
(random port on 127.0.0.1, stopped after the test; no controllers run, so pods skip the
ServiceAccount admission, which needs a ``default`` ServiceAccount), ``client`` an admin
:class:`~podling.client.ApiClient` for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from podling.apiserver.server import RunningServer, ServerConfig, start
from podling.client import ApiClient, ClientConfig

TIMEOUT = 10.0


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[RunningServer]:
    running = await start(ServerConfig(data_dir=str(tmp_path / "server"), port=0,
                                       datastore="memory", service_account_admission=False))
    yield running
    await running.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClientConfig.from_kubeconfig(server.config.kubeconfig_path)) as api:
        yield api


async def wait_until(check: Callable[[], Awaitable[Any]], what: str,
                     timeout: float = TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy (returned); AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
