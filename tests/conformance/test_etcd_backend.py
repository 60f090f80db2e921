"""The etcd backend beyond the storage conformance suite, against a real etcd on loopback:
two stores on one prefix (two API servers), the key layout, re-listing after etcd compacted
what a store had not seen, and a clear error when etcd is gone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

from podling.storage.etcd import EtcdClient, EtcdStore
from podling.storage.etcd.client import EtcdError, b64, prefix_end
from podling.storage.etcd.compactor import Compactor
from podling.storage.etcd.store import NO_SPACE, etcd_key, storage_key
from podling.storage.etcd.testing import EtcdProcess
from podling.storage.interface import Compacted, KeyNotFound, StorageError, TooLarge
from podling.util import failpoints

TIMEOUT = 10.0


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "labels": labels}}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    with EtcdProcess(str(tmp_path_factory.mktemp("etcd"))) as process:
        yield process


@pytest.fixture
async def pair(etcd: EtcdProcess) -> AsyncIterator[tuple[EtcdStore, EtcdStore, str]]:
    """Two stores on one fresh prefix, as two API servers on one etcd."""
    prefix = f"/podling-test/{uuid.uuid4().hex}"
    a = await EtcdStore.open(EtcdClient([etcd.url]), prefix=prefix)
    b = await EtcdStore.open(EtcdClient([etcd.url]), prefix=prefix)
    try:
        yield a, b, prefix
    finally:
        await a.close()
        await b.close()


async def eventually_get(store: EtcdStore, key: str) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                return await store.get(key)
            except KeyNotFound:
                await asyncio.sleep(0.01)


def test_keys_are_laid_out_like_kubernetes_and_map_back() -> None:
    cases = {"/core/pods/ns/p": "/registry/pods/ns/p",
             "/core/namespaces/default": "/registry/namespaces/default",
             "/coordination.k8s.io/leases/ns/l": "/registry/coordination.k8s.io/leases/ns/l",
             "/apps/deployments/ns/d": "/registry/-/apps/deployments/ns/d",
             "/w/a": "/registry/-/w/a"}
    for key, expected in cases.items():
        assert etcd_key("/registry", key) == expected
        assert storage_key("/registry", expected) == key


async def test_a_write_through_one_store_is_seen_by_the_others_watch_and_reads(pair) -> None:
    a, b, prefix = pair
    stream = await b.watch("/core/pods/", b.revision)
    created = await a.create("/core/pods/ns/web", pod("web"))
    async with asyncio.timeout(TIMEOUT):
        event = await stream.__anext__()
    assert (event.type, rv(event.obj)) == ("ADDED", rv(created))
    assert await eventually_get(b, "/core/pods/ns/web") == created
    kvs, _ = await a._client.range(prefix + "/", end=prefix_end(prefix + "/"))
    assert [(kv.key, kv.mod_revision) for kv in kvs] == [(prefix + "/pods/ns/web", rv(created))]
    assert b'"resourceVersion"' not in kvs[0].value  # the version is etcd's, not stored
    stream.close()


async def test_a_write_through_one_store_is_read_through_the_other_at_once(pair) -> None:
    """Consistent reads: each read (and the read an update or delete starts from) first
    catches up with what etcd had committed, so none through one store, however soon after
    the other's write, misses it."""
    a, b, _ = pair

    def relabel(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["labels"]["seen"] = "b"
        return obj
    for i in range(20):
        key = f"/core/pods/ns/r{i}"
        created = await a.create(key, pod(f"r{i}"))
        assert await b.get(key) == created
        updated = await b.guaranteed_update(key, relabel)
        items, _ = await a.list("/core/pods/ns/")
        assert updated in items and len(items) == i + 1
        encoded, _ = await b.list_encoded("/core/pods/ns/")
        assert len(encoded) == i + 1
    gone = await a.create("/core/pods/ns/gone", pod("gone"))
    assert rv(await b.delete("/core/pods/ns/gone")) > rv(gone)
    with pytest.raises(KeyNotFound):  # the deletion, read at once through the other store
        await a.get("/core/pods/ns/gone")
    got = await asyncio.gather(*(b.get(f"/core/pods/ns/r{i}") for i in range(20)))
    assert [o["metadata"]["labels"]["seen"] for o in got] == ["b"] * 20
    everything, _ = await b.list("")  # a prefix inside the first segment: the whole store
    assert len(everything) == 20


async def test_updates_from_two_stores_on_one_object_never_lose_one(pair) -> None:
    """Each store computes from what it has seen; etcd's compare-and-swap makes the loser
    compute again from the winner's version, so every increment survives."""
    a, b, _ = pair
    await a.create("/core/pods/ns/c", pod("c", n="0"))
    await eventually_get(b, "/core/pods/ns/c")

    def bump(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["labels"]["n"] = str(int(obj["metadata"]["labels"]["n"]) + 1)
        return obj

    written = await asyncio.gather(*(store.guaranteed_update("/core/pods/ns/c", bump)
                                     for _ in range(10) for store in (a, b)))
    # each update won on its own version: 1 to 20, none lost or counted twice
    assert sorted(int(o["metadata"]["labels"]["n"]) for o in written) == list(range(1, 21))
    async with asyncio.timeout(TIMEOUT):  # each store's watch may still be behind the other's
        for store in (a, b):
            while (await store.get("/core/pods/ns/c"))["metadata"]["labels"]["n"] != "20":
                await asyncio.sleep(0.01)


async def test_a_store_behind_a_compaction_relists_and_ends_its_watches(pair, etcd) -> None:
    """Store b's watch is cut while a writes and etcd compacts past b's revision: b re-lists
    to etcd's state, and its open watches end (their clients re-watch and get 410 for what
    is gone)."""
    a, b, _ = pair
    await a.create("/core/pods/ns/old", pod("old"))
    await eventually_get(b, "/core/pods/ns/old")
    seen = b.revision
    stream = await b.watch("/core/pods/", seen)
    assert b._watcher is not None
    b._watcher.cancel()  # b stops following etcd, as if its watch stream were cut
    await asyncio.gather(b._watcher, return_exceptions=True)
    await a.delete("/core/pods/ns/old")
    new = await a.create("/core/pods/ns/new", pod("new"))
    compacting = EtcdClient([etcd.url])
    await compacting.compact(rv(new))
    await compacting.close()
    b._watcher = asyncio.create_task(b._follow(seen))  # resumes from what it saw
    assert (await eventually_get(b, "/core/pods/ns/new")) == new
    with pytest.raises(KeyNotFound):
        await b.get("/core/pods/ns/old")
    async with asyncio.timeout(TIMEOUT):
        assert [e async for e in stream] == []  # ended, not silently gapped
    with pytest.raises(Compacted):
        await b.watch("/core/pods/", seen)


async def test_writes_fail_with_a_storage_error_when_etcd_is_gone(tmp_path: Path) -> None:
    with EtcdProcess(str(tmp_path / "etcd")) as etcd:
        store = await EtcdStore.open(EtcdClient([etcd.url], timeout=2.0), prefix="/gone")
        await store.create("/core/pods/ns/a", pod("a"))
        etcd.stop()
        try:
            async with asyncio.timeout(TIMEOUT):
                with pytest.raises(StorageError, match="no endpoint answered"):
                    await store.create("/core/pods/ns/b", pod("b"))
            assert (await store.get("/core/pods/ns/a"))["metadata"]["name"] == "a"
            with pytest.raises(KeyNotFound):
                await store.get("/core/pods/ns/b")  # nothing applied that etcd did not commit
        finally:
            await store.close()


async def test_the_servers_compact_etcd_once_per_interval_to_a_revision_one_interval_old(
        etcd: EtcdProcess) -> None:
    """Two compactors (two servers) on one key: per round exactly one wins, and it compacts
    to the revision it saw at its previous attempt, never to the current one."""
    prefix = f"/podling-test/{uuid.uuid4().hex}"
    clients = [EtcdClient([etcd.url]) for _ in range(2)]
    writer = clients[0]

    async def write() -> int:
        _, revision, _ = await writer.txn(
            [], [{"request_put": {"key": b64(prefix + "/x"), "value": ""}}], [])
        return revision
    try:
        first, second = (Compactor(c, prefix, interval=3600) for c in clients)
        await write()
        assert await first.step() == 0  # won, but made no attempt before: nothing to compact
        assert await second.step() == 0  # lost this round: learns the key's version
        before = await write()
        compacted = await second.step()  # wins: compacts to its previous attempt's revision
        assert before > compacted > 0
        assert await first.step() == 0  # the other one lost this round
        with pytest.raises(EtcdError, match="compacted"):
            await writer.call("kv/range", {"key": b64(prefix + "/x"),
                                           "revision": str(compacted - 1)})
        await writer.call("kv/range", {"key": b64(prefix + "/x"), "revision": str(before)})
    finally:
        for client in clients:
            await client.close()


async def test_a_stores_compaction_compacts_only_between_start_and_stop(pair, etcd) -> None:
    """What the leading server runs: compaction rounds while started, none after stop."""
    a, _, prefix = pair
    key = prefix + "-compact_rev_key"

    async def compacted_to() -> int:
        kvs, _ = await a._client.range(key)
        return int(kvs[0].value or 0) if kvs else 0
    compaction = a.compaction(interval=0.05)
    await a.create("/core/pods/ns/x", pod("x"))
    compaction.start()
    running = compaction._task
    try:
        async with asyncio.timeout(TIMEOUT):
            while await compacted_to() == 0:  # the second round compacts to the first's
                await asyncio.sleep(0.05)
    finally:
        await compaction.stop()
    assert running is not None and running.done() and compaction._task is None


async def test_an_object_larger_than_etcd_takes_is_too_large_and_nothing_is_lost(pair) -> None:
    a, _, _ = pair
    kept = await a.create("/core/configmaps/ns/big", {"metadata": {"name": "big"}, "data": {}})
    for size in (1_700_000, 2_500_000):  # over etcd's limit; over its gateway's too
        big = {"metadata": {"name": "big"}, "data": {"k": "x" * size}}
        with pytest.raises(TooLarge, match="larger than etcd accepts"):
            await a.create("/core/configmaps/ns/huge", big)
        with pytest.raises(TooLarge):
            await a.guaranteed_update("/core/configmaps/ns/big", lambda _, big=big: big)
    assert await a.get("/core/configmaps/ns/big") == kept


async def test_a_full_etcd_refuses_writes_loses_nothing_and_heals(tmp_path: Path) -> None:
    """etcd out of space (its backend quota reached, as on a full disk: the NOSPACE alarm):
    every write fails with etcd's message, nothing stored is lost or changed, the watch
    misses nothing; once an operator frees space (delete, compact, defragment, disarm the
    alarm with etcdctl) writes work again."""
    quota = ("--quota-backend-bytes", str(256 * 1024))
    with EtcdProcess(str(tmp_path / "etcd"), extra_args=quota) as etcd:
        store = await EtcdStore.open(EtcdClient([etcd.url]), prefix="/full")
        stream = await store.watch("/core/configmaps/", store.revision)
        stored: dict[str, dict[str, Any]] = {}
        try:
            with pytest.raises(StorageError, match="etcdserver: mvcc: database space exceeded"):
                for i in range(1000):
                    key = f"/core/configmaps/ns/c{i}"
                    stored[key] = await store.create(key, {"metadata": {"name": f"c{i}"},
                                                           "data": {"k": "x" * 2000}})
            # the write that crossed the quota may have been applied all the same (etcd
            # applies it, then answers NOSPACE): then the store and its watch have it too
            crossing = f"/core/configmaps/ns/c{len(stored)}"
            if await _etcd_count(etcd, etcd_key("/full", crossing)):
                stored[crossing] = await eventually_get(store, crossing)
            refused = "/core/configmaps/ns/refused"  # once NOSPACE is raised, nothing applies
            with pytest.raises(StorageError, match="database space exceeded"):
                await store.create(refused, {"metadata": {"name": "refused"}})
            first = next(iter(stored))
            with pytest.raises(StorageError, match="database space exceeded"):
                await store.guaranteed_update(first, lambda cur: {**cur, "data": {}})
            assert not await _etcd_count(etcd, etcd_key("/full", refused))
            with pytest.raises(KeyNotFound):
                await store.get(refused)
            assert len(stored) > 10 and all([await store.get(k) == v for k, v in stored.items()])
            async with asyncio.timeout(TIMEOUT):
                seen = [await stream.__anext__() for _ in stored]
            assert [e.obj for e in seen] == list(stored.values())
            stream.close()
            for key in list(stored)[:-5]:
                await store.delete(key)
            _etcdctl(etcd, "compaction", str(store.revision))
            _etcdctl(etcd, "defrag")
            _etcdctl(etcd, "alarm", "disarm")
            await store.create(refused, {"metadata": {"name": "after"}})
            assert (await store.get(refused))["metadata"]["name"] == "after"
        finally:
            await store.close()


async def _etcd_count(etcd: EtcdProcess, key: str) -> int:
    """How many keys etcd holds at ``key`` (0 or 1), read from etcd itself."""
    client = EtcdClient([etcd.url])
    try:
        return int((await client.call("kv/range", {"key": b64(key)})).get("count") or 0)
    finally:
        await client.close()


def _etcdctl(etcd: EtcdProcess, *args: str) -> None:
    done = subprocess.run(["etcdctl", "--endpoints", etcd.url, *args], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    assert done.returncode == 0, done.stderr


async def test_the_storage_write_failpoint_fails_one_etcd_write_as_a_full_etcd(
        pair, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = pair
    kept = await a.create("/core/pods/ns/kept", pod("kept"))
    monkeypatch.setenv(failpoints.ENV, "storage.write=1*enospc")
    failpoints.reload()
    try:
        with pytest.raises(StorageError, match=f"^etcd: {NO_SPACE}$"):
            await a.create("/core/pods/ns/refused", pod("refused"))
        await a.create("/core/pods/ns/next", pod("next"))
    finally:
        monkeypatch.delenv(failpoints.ENV)
        failpoints.reload()
    with pytest.raises(KeyNotFound):
        await b.get("/core/pods/ns/refused")
    assert await eventually_get(b, "/core/pods/ns/kept") == kept
