"""ContentStore: ingest → verify → commit atomically; nothing half-written is visible."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading

import pytest

from podling.images.content import (BlobNotFound, ContentStore, IngestClosed, InvalidDigest,
                                    validate_digest)
from podling.images.errors import DigestMismatch, ImageError


def dg(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def ingest_files(store: ContentStore) -> list[str]:
    return os.listdir(os.path.join(store.root, "ingest"))


def test_commit_makes_blob_visible_and_readonly(store):
    data = b"hello world" * 1000
    with store.ingest(dg(data), len(data)) as ing:
        ing.write(data[:5])
        assert not store.has(dg(data))  # nothing visible before commit
        ing.write(memoryview(data)[5:])
        assert ing.commit() == dg(data)
    assert store.has(dg(data))
    assert store.read_bytes(dg(data)) == data
    assert store.size(dg(data)) == len(data)
    assert os.stat(store.path(dg(data))).st_mode & 0o777 == 0o444
    assert store.digests() == [dg(data)]
    assert ingest_files(store) == []


def test_abort_and_leaving_without_commit_leave_nothing(store):
    data = b"abc"
    ing = store.ingest(dg(data), 3)
    ing.write(data)
    ing.abort()
    ing.abort()  # idempotent
    assert ing.state == "aborted"
    with store.ingest(dg(data), 3) as ing2:
        ing2.write(data)
    assert ing2.state == "aborted"
    assert not store.has(dg(data))
    assert ingest_files(store) == []
    with pytest.raises(IngestClosed):
        ing.write(b"x")
    with pytest.raises(IngestClosed):
        ing.commit()


def test_exception_inside_context_aborts(store):
    data = b"abc"
    with pytest.raises(RuntimeError):
        with store.ingest(dg(data)) as ing:
            ing.write(data)
            raise RuntimeError("network died")
    assert not store.has(dg(data)) and ingest_files(store) == []


def test_digest_mismatch_leaves_nothing(store):
    with store.ingest(dg(b"expected"), None) as ing:
        ing.write(b"corrupted")
        with pytest.raises(DigestMismatch, match="hashes to"):
            ing.commit()
    assert ing.state == "aborted"
    assert store.digests() == [] and ingest_files(store) == []


@pytest.mark.parametrize("data,size", [(b"abc", 4), (b"abc", 2)])
def test_size_mismatch(store, data, size):
    with store.ingest(dg(data), size) as ing:
        with pytest.raises(DigestMismatch):
            ing.write(data)
            ing.commit()
    assert store.digests() == [] and ingest_files(store) == []


def test_write_past_expected_size_aborts_at_once(store):
    ing = store.ingest(dg(b"abcd"), 2)
    with pytest.raises(DigestMismatch, match="more than"):
        ing.write(b"abcd")
    assert ing.state == "aborted" and ingest_files(store) == []


def test_put_bytes(store):
    data = b'{"schemaVersion": 2}'
    assert store.put_bytes(data) == dg(data)
    assert store.put_bytes(data, dg(data)) == dg(data)  # already present: fine
    with pytest.raises(DigestMismatch):
        store.put_bytes(b"other", dg(data + b"x"))
    assert store.digests() == [dg(data)]


def test_read_bytes_reverifies(store):
    data = b"config"
    digest = store.put_bytes(data)
    path = store.path(digest)
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"tampered")
    with pytest.raises(DigestMismatch, match="corrupt"):
        store.read_bytes(digest)
    with pytest.raises(DigestMismatch):
        store.verify(digest)


def test_missing_blob(store):
    d = dg(b"nope")
    assert not store.has(d)
    with pytest.raises(BlobNotFound):
        store.read_bytes(d)
    with pytest.raises(BlobNotFound):
        store.size(d)
    with pytest.raises(BlobNotFound):
        store.verify(d)
    store.delete(d)  # idempotent


def test_delete(store):
    d = store.put_bytes(b"x")
    store.delete(d)
    assert not store.has(d) and store.digests() == []


@pytest.mark.parametrize("bad", [
    "", "sha256:", "sha256:abc", "sha256:" + "A" * 64, "sha512:" + "a" * 64,
    "sha256:" + "a" * 63 + "/", "sha256:../../../../etc/passwd", "sha256:" + "a" * 65,
    "sha256:" + "a" * 64 + "\n", "../blobs", "sha256:" + "a" * 32 + "/" + "a" * 31,
])
def test_invalid_digests_rejected(store, bad):
    for call in (store.has, store.path, store.read_bytes, store.delete, store.size,
                 store.ingest, validate_digest):
        with pytest.raises(InvalidDigest):
            call(bad)
    with pytest.raises(InvalidDigest):
        store.put_bytes(b"x", bad)
    assert isinstance(InvalidDigest("x"), ImageError)


def test_stale_ingest_cleanup_at_open(tmp_path):
    root = str(tmp_path / "c")
    store = ContentStore(root)
    ingest_dir = os.path.join(root, "ingest")
    # leftovers of a kill -9: a partial .part file and junk; they are never trusted
    stale = os.path.join(ingest_dir, "a" * 64 + ".dead.part")
    with open(stale, "wb") as f:
        f.write(b"partial")
    os.mkdir(os.path.join(ingest_dir, "junkdir"))
    os.symlink("/etc/passwd", os.path.join(ingest_dir, "link"))
    live = store.ingest(dg(b"live"), 4)  # a live ingest (flock held) survives
    live.write(b"li")
    again = ContentStore(root)
    assert os.listdir(ingest_dir) == [os.path.basename(live._tmp)]
    assert os.path.exists("/etc/passwd")
    live.write(b"ve")
    live.commit()
    assert again.has(dg(b"live"))
    assert again.cleanup_stale_ingests() == 0


def test_ingest_file_is_flocked(store):
    ing = store.ingest(dg(b"x"))
    fd = os.open(ing._tmp, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        ing.abort()


def test_concurrent_ingests_of_same_digest(store):
    data = os.urandom(1 << 20)
    digest = dg(data)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with store.ingest(digest, len(data)) as ing:
                barrier.wait()
                for i in range(0, len(data), 65536):
                    ing.write(data[i:i + 65536])
                results.append(ing.commit())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [digest] * 8
    assert store.read_bytes(digest) == data
    assert store.digests() == [digest] and ingest_files(store) == []


def test_concurrent_good_and_bad_ingest(store):
    data = b"good" * 1000
    digest = dg(data)
    bad = store.ingest(digest, len(data))
    good = store.ingest(digest, len(data))
    bad.write(b"evil" * 1000)
    good.write(data)
    with pytest.raises(DigestMismatch):
        bad.commit()
    assert good.commit() == digest
    assert store.read_bytes(digest) == data and ingest_files(store) == []
