"""Periodic compaction of etcd's history.

etcd keeps every revision until it is compacted, so without this its database grows with
every write. The API server that holds the controllers' Lease runs a :class:`Compaction`
(see ``podling.cli.server``). Every ``interval`` seconds it tries a compare-and-swap on one
key (``<prefix>-compact_rev_key``), which succeeds only if the key's version is still the
one it last saw, and compacts to the revision it saw at its own previous attempt, one
interval earlier: so a watch can always resume from anything less than one interval old,
and two servers that both believe they lead for a moment (a takeover) still compact once
per interval (kube-apiserver's compactor uses the same compare-and-swap).
"""

from __future__ import annotations

import asyncio
import logging

from .client import EtcdClient, EtcdError, b64

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0  # kube-apiserver's --etcd-compaction-interval


class Compactor:
    """See the module docstring. :meth:`step` is one attempt; :meth:`run` loops forever."""

    def __init__(self, client: EtcdClient, prefix: str,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self._client = client
        self._key = b64(prefix.rstrip("/") + "-compact_rev_key")
        self._interval = interval
        self._version = 0  # of the key, as this server last saw it
        self._pending = 0  # the store's revision at this server's last attempt

    async def step(self) -> int:
        """One attempt. Returns the revision compacted to: the store's revision at this
        server's previous attempt (0 when it lost this one, or made none before)."""
        target = self._pending
        won, revision, responses = await self._client.txn(
            [{"key": self._key, "target": "VERSION", "version": str(self._version)}],
            [{"request_put": {"key": self._key, "value": b64(str(target))}}],
            [{"request_range": {"key": self._key}}])
        self._pending = revision
        if not won:
            kvs = responses[0].get("response_range", {}).get("kvs", []) if responses else []
            self._version = int(kvs[0].get("version", 0)) if kvs else 0
            return 0
        self._version += 1
        if target:
            await self._client.compact(target)
        return target

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                compacted = await self.step()
                if compacted:
                    log.info("compacted etcd up to revision %d", compacted)
            except EtcdError as exc:
                if "compacted" not in str(exc):  # someone compacted further already
                    log.warning("etcd compaction: %s", exc)


class Compaction:
    """A :class:`Compactor` running in a task between :meth:`start` and :meth:`stop`: the
    shape of the components a leader runs."""

    def __init__(self, compactor: Compactor) -> None:
        self._compactor = compactor
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._compactor.run(), name="etcd-compactor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
