"""A real in-process API server (memory datastore), a client, three agent-less nodes and a
running scheduler, per test."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from inprocess import client, server  # noqa: F401 - fixtures
from sched_cluster import NODE_NAMES, ready_node

from podling.client import ApiClient
from podling.scheduler import Scheduler


@pytest.fixture
async def cluster(client: ApiClient) -> AsyncIterator[ApiClient]:
    """Three Ready nodes (4 cpu, 8Gi, 110 pods) and a started scheduler."""
    for name in NODE_NAMES:
        await client.create("nodes", ready_node(name).build())
    scheduler = Scheduler(client)
    scheduler.start()
    assert await scheduler.wait_synced(10)
    client.scheduler = scheduler  # type: ignore[attr-defined]
    yield client
    await scheduler.stop()
