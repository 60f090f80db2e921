"""Helpers shared by the scheduler's server-backed tests (node bodies, polling)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

NODE_NAMES = ("172.31.2.11", "172.31.2.12", "172.31.2.13")


def node_body(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              labels: dict[str, str] | None = None, taints: list[dict] | None = None
              ) -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints} if taints else {},
            "status": {"capacity": resources, "allocatable": resources,
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}]}}


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                   what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
