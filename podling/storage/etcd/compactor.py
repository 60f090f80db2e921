"""Periodic compaction of etcd's history, shared by every API server on one etcd.

etcd keeps every revision until it is compacted, so without this its database grows with
every write. Each server runs a :class:`Compactor`. Every ``interval`` seconds each one
tries the same compare-and-swap on one key (``<prefix>-compact_rev_key``): only the one
that still sees the key's version as it last did wins. The winner compacts to the revision
it saw at its own previous attempt, one interval earlier. So the servers need no leader,
etcd is compacted about once per interval, and a watch can always resume from anything less
than one interval old (kube-apiserver's compactor works the same way).
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
