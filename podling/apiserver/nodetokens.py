"""Where a server records the tokens it issued to nodes: the sha256 of each node's token,
never the token itself.

* :class:`FileRecords` — ``<data-dir>/server/node-tokens/<node>``: one server and its data dir
  (the SQLite datastore). Deleting a file lets the node join again.
* :class:`StoredRecords` — the datastore itself, key ``/podling.io/nodetokens/<node>``
  (``<prefix>/podling.io/nodetokens/<node>`` in etcd), so that every server sharing it
  accepts every node, whichever server issued its token. Not served by the API.

Both: :meth:`node_of` answers which node a token digest belongs to; :meth:`add` records a
node's digest, refusing (False) when the node has one and ``replace`` is false.
"""

from __future__ import annotations

import os
import re
import time
from typing import Callable, Protocol

from ..storage.interface import KeyExists, Storage
from ..util.files import atomic_write

NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
STORED_PREFIX = "/podling.io/nodetokens/"


class TokenRecords(Protocol):
    async def node_of(self, digest: str) -> str | None: ...

    async def add(self, node: str, digest: str, *, replace: bool) -> bool: ...

    def describe(self, node: str) -> str:
        """Where ``node``'s record is, for the message that tells an admin how to drop it."""
        ...


class FileRecords:
    """One file per node under ``directory`` (created 0700). Not thread-safe."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._by_digest: dict[str, str] = {}
        for name in os.listdir(directory):
            if NODE_NAME.match(name):
                with open(os.path.join(directory, name)) as f:
                    self._by_digest[f.read().strip()] = name

    async def node_of(self, digest: str) -> str | None:
        return self._by_digest.get(digest)

    async def add(self, node: str, digest: str, *, replace: bool) -> bool:
        path = os.path.join(self.directory, node)
        if os.path.exists(path) and not replace:
            return False
        atomic_write(path, digest.encode(), 0o600)
        self._by_digest = {d: n for d, n in self._by_digest.items() if n != node}
        self._by_digest[digest] = node
        return True

    def describe(self, node: str) -> str:
        return f"delete {os.path.join(self.directory, node)} on the server"


class StoredRecords:
    """Records in the shared datastore. Lookups are answered from a map of every record,
    read again on a miss (at most once per ``refresh_seconds``) and whenever it is older than
    ``max_age_seconds``: a token another server issued is known here within a second of its
    first use, and one an admin replaced elsewhere stops working here within that age."""

    def __init__(self, storage: Storage, *, location: str = STORED_PREFIX,
                 refresh_seconds: float = 1.0, max_age_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._location = location  # where the records are as the datastore's admin sees it
        self._refresh, self._max_age, self._clock = refresh_seconds, max_age_seconds, clock
        self._by_digest: dict[str, str] = {}
        self._loaded = float("-inf")

    async def node_of(self, digest: str) -> str | None:
        age = self._clock() - self._loaded
        node = self._by_digest.get(digest)
        if age > self._max_age or (node is None and age > self._refresh):
            await self._load()
            node = self._by_digest.get(digest)
        return node

    async def _load(self) -> None:
        items, _ = await self._storage.list(STORED_PREFIX)
        self._by_digest = {str(item.get("sha256")): str(item["metadata"]["name"])
                           for item in items}
        self._loaded = self._clock()

    async def add(self, node: str, digest: str, *, replace: bool) -> bool:
        key = STORED_PREFIX + node
        record = {"metadata": {"name": node}, "sha256": digest}
        try:
            await self._storage.create(key, record)
        except KeyExists:
            if not replace:
                return False
            await self._storage.guaranteed_update(key, lambda current: {**current,
                                                                        "sha256": digest})
        await self._load()
        return True

    def describe(self, node: str) -> str:
        return f"delete the key {self._location}{node} from the datastore"
