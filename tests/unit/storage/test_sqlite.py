"""SQLite-specific behaviour: restarts, bounded history on disk, cancellation, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from podling.storage.interface import Compacted, KeyNotFound, StorageError, WatchEvent
from podling.storage.sqlite import TRIM_BATCH, SqliteStore

REPO = Path(__file__).resolve().parents[3]
TIMEOUT = 10.0


def obj(name: str, **spec: object) -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": dict(spec)}


def rv(o: dict) -> int:
    return int(o["metadata"]["resourceVersion"])


def count_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def take(stream, n: int) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await stream.__anext__() for _ in range(n)]
    return await asyncio.wait_for(collect(), TIMEOUT)


async def test_data_and_revision_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = await SqliteStore.open(path)
    await store.create("/p/a", obj("a", v=1))
    await store.create("/p/b", obj("b"))
    updated = await store.guaranteed_update("/p/a", lambda c: {**c, "spec": {"v": 2}})
    await store.delete("/p/b")  # the last write is a delete: the revision must not go back
    revision = store.revision
    await store.close()

    store = await SqliteStore.open(path)
    try:
        assert store.revision == revision
        assert await store.get("/p/a") == updated
        with pytest.raises(KeyNotFound):
            await store.get("/p/b")
        assert (await store.list("/p/"))[0] == [updated]
        assert rv(await store.create("/p/c", obj("c"))) == revision + 1
    finally:
        await store.close()


async def test_watch_from_pre_restart_revision(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = await SqliteStore.open(path, history=50)
    start = store.revision
    stream = await store.watch("/p/", start)
    await store.create("/p/a", obj("a"))
    await store.create("/q/x", obj("x"))
    await store.guaranteed_update("/p/a", lambda c: {**c, "spec": {"v": 2}})
    await store.delete("/p/a")
    before = await take(stream, 3)
    await store.close()

    store = await SqliteStore.open(path, history=50)
    try:
        after = await take(await store.watch("/p/", start), 3)
        assert after == before
        assert after[1].prev == after[0].obj and after[2].prev == after[1].obj
    finally:
        await store.close()


async def test_old_revision_compacted_after_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = await SqliteStore.open(path, history=10)
    for i in range(30):
        await store.create(f"/k/{i}", obj(str(i)))
    await store.close()

    store = await SqliteStore.open(path, history=10)
    try:
        with pytest.raises(Compacted):
            await store.watch("/k/", 5)
        events = await take(await store.watch("/k/", 20), 10)
        assert [e.rev for e in events] == list(range(21, 31))
    finally:
        await store.close()


async def test_event_log_stays_bounded_under_churn(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    history = 200
    store = await SqliteStore.open(str(path), history=history)
    for i in range(5):
        await store.create(f"/k/{i}", obj(str(i), n=0, pad="x" * 500))
    for n in range(5000):
        await store.guaranteed_update(f"/k/{n % 5}", lambda c: {**c, "spec": {**c["spec"], "n": n}})
        if n % 1000 == 0:
            assert count_rows(path, "events") <= history + TRIM_BATCH
    revision = store.revision
    await store.close()

    assert count_rows(path, "events") <= history + TRIM_BATCH
    assert count_rows(path, "objects") == 5
    assert path.stat().st_size < 2_000_000, "the database file grew under churn"
    store = await SqliteStore.open(str(path), history=history)
    try:
        assert store.revision == revision
        assert len(await take(await store.watch("/k/", revision - history), history)) == history
    finally:
        await store.close()


async def test_smaller_history_at_reopen_is_trimmed_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(str(path), history=2000)
    for i in range(1000):
        await store.create(f"/k/{i}", obj(str(i)))
    await store.close()

    store = await SqliteStore.open(str(path), history=10)
    try:
        with pytest.raises(Compacted):
            await store.watch("/k/", store.revision - 11)
        for i in range(10):
            await store.guaranteed_update(f"/k/{i}", lambda c: {**c, "spec": {"v": 1}})
    finally:
        await store.close()
    assert count_rows(path, "events") <= 10 + TRIM_BATCH


async def test_cancelled_write_keeps_memory_and_disk_in_step(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = await SqliteStore.open(path)
    task = asyncio.create_task(store.create("/k/a", obj("a")))
    await asyncio.sleep(0)  # the task is now waiting for the writer thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The commit was already under way: it is applied, and the next write follows it.
    got = await store.get("/k/a")
    assert rv(got) == store.revision
    nxt = await store.create("/k/b", obj("b"))
    assert rv(nxt) == rv(got) + 1
    await store.close()

    store = await SqliteStore.open(path)
    try:
        assert [rv(o) for o in (await store.list("/k/"))[0]] == [rv(got), rv(nxt)]
    finally:
        await store.close()


async def test_writes_after_close_fail_and_reads_still_answer(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "s.db"))
    created = await store.create("/k", obj("a"))
    await store.close()
    with pytest.raises(StorageError):
        await store.create("/k2", obj("b"))
    with pytest.raises(StorageError):
        await store.watch("/", store.revision)
    assert await store.get("/k") == created
    await store.close()


async def test_open_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        await SqliteStore.open(str(path))


_WRITER = textwrap.dedent("""
    import asyncio, sys
    from podling.storage.sqlite import SqliteStore

    async def main(path):
        store = await SqliteStore.open(path, history=100)
        i = 0
        while True:
            key = f"/k/{i:07}"
            created = await store.create(key, {"metadata": {"name": str(i)}, "pad": "x" * 300})
            sys.stdout.write(f"{key} {created['metadata']['resourceVersion']}\\n")
            sys.stdout.flush()
            i += 1

    asyncio.run(main(sys.argv[1]))
""")


async def _read_acks(proc: asyncio.subprocess.Process, wanted: int) -> list[str]:
    assert proc.stdout is not None
    lines = []
    while len(lines) < wanted:
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        if not line:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"writer exited early: {err.decode()[-2000:]}")
        lines.append(line.decode())
    return lines


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(path), cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        lines = await _read_acks(proc, 500)  # well past several log trims (history=100)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.stdout is not None
    rest = await asyncio.wait_for(proc.stdout.read(), TIMEOUT)  # acks printed before the kill
    assert await asyncio.wait_for(proc.wait(), TIMEOUT) == -signal.SIGKILL
    lines += rest.decode().splitlines(keepends=True)
    acks = [line.split() for line in lines if line.endswith("\n")]

    store = await SqliteStore.open(str(path), history=100)
    try:
        assert store.revision >= int(acks[-1][1])
        for key, rev in acks:
            assert (await store.get(key))["metadata"]["resourceVersion"] == rev
        assert (await store.create("/after", obj("after")))["metadata"]["resourceVersion"] \
            == str(store.revision)
    finally:
        await store.close()
