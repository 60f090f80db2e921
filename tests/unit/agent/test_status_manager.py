"""The status manager coalesces status writes per pod: one write in flight, the latest
waiting status written after it, an unchanged status never written, a failed write retried."""

from __future__ import annotations

import asyncio
from typing import Any

from podling.agent.pod.status_manager import StatusManager
from podling.api.errors import ApiError

POD: dict[str, Any] = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}}


class Client:
    """pods/status PATCHes, each held until ``release`` (when ``hold``) or failing with the
    queued ``failures``."""

    def __init__(self, *, hold: bool = False) -> None:
        self.written: list[str] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()
        self.failures: list[Exception] = []

    async def patch(self, resource: Any, name: str, patch: Any, namespace: str | None = None,
                    *, patch_type: str, subresource: str | None = None) -> dict[str, Any]:
        assert (resource.name, subresource, patch["metadata"]) == ("pods", "status",
                                                                   {"uid": "u1"})
        self.started.set()
        await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.written.append(patch["status"]["phase"])
        return {}


async def test_statuses_set_during_a_write_are_coalesced_into_the_latest() -> None:
    client = Client(hold=True)
    manager = StatusManager(client)
    assert await manager.set_status(POD, {"phase": "Pending"})
    await client.started.wait()  # the first write is in flight
    for phase in ("Running", "Failed", "Succeeded"):
        assert await manager.set_status(POD, {"phase": phase})
    assert manager.previous(POD, own_conditions=()) == {"phase": "Succeeded", "conditions": []}
    client.gate.set()
    await manager.flush()
    assert client.written == ["Pending", "Succeeded"]


async def test_an_unchanged_status_is_not_written_again() -> None:
    client = Client()
    manager = StatusManager(client)
    assert await manager.set_status(POD, {"phase": "Running"})
    assert not await manager.set_status(POD, {"phase": "Running"})  # waiting already
    await manager.flush()
    assert not await manager.set_status(POD, {"phase": "Running"})  # written already
    await manager.flush()
    assert client.written == ["Running"]


async def test_a_failed_write_is_retried_and_a_gone_pod_is_not() -> None:
    client = Client()
    client.failures = [ApiError(500, "InternalError", "boom")]
    manager = StatusManager(client, retry_seconds=0.0)
    await manager.set_status(POD, {"phase": "Running"})
    await manager.flush()
    assert client.written == ["Running"]
    client.failures = [ApiError(404, "NotFound", "gone")]
    await manager.set_status(POD, {"phase": "Failed"})
    await manager.flush()
    assert client.written == ["Running"] and not client.failures


async def test_forget_abandons_the_waiting_write() -> None:
    client = Client(hold=True)
    manager = StatusManager(client)
    await manager.set_status(POD, {"phase": "Pending"})
    await client.started.wait()
    await manager.set_status(POD, {"phase": "Running"})
    manager.forget("u1")
    client.gate.set()
    await manager.flush()
    assert client.written == []
    assert manager.previous(POD, own_conditions=()) == {}
