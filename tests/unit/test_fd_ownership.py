"""File-descriptor ownership: every raw fd podling opens is closed exactly once, on every path.

A second close of a number that was reused meanwhile (by another thread, or an asyncio
socket) kills an unrelated descriptor; a missed close leaks it (and any flock on it). Each test
drives one error path, then checks via /proc/self/fd that nothing leaked, that no fd was
closed twice, and that an unrelated fd opened before the call is still the same file."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import threading
from typing import Iterator

import pytest

from podling.agent.kuberuntime import volumes
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.images import content as content_mod
from podling.images import service as service_mod
from podling.images import tarsafe
from podling.images.content import ContentStore
from podling.images.service import ImageStoreConfig, LocalImageService
from podling.runtime.oci import exits as exits_mod
from podling.runtime.oci.exits import ExitWatcher
from podling.util import files as files_mod
from podling.util.files import atomic_write


def _fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


class _Sentinel:
    """An unrelated fd (on /dev/null) that must survive the code under test."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)

    def check(self) -> None:
        st = os.fstat(self.fd)  # EBADF if someone closed it
        assert (st.st_dev, st.st_ino) == self.ident

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def fd_guard() -> Iterator[_Sentinel]:
    sentinel = _Sentinel()
    before = _fds()
    yield sentinel
    sentinel.check()
    assert _fds() - before == set(), "descriptor leaked"
    sentinel.close()


class _CloseRecorder:
    """Wraps os.close: counts closes and records any close of a number that is not open (a
    double close; in production the number may have been reused by then). ``fail_on``: that
    call closes, then raises (like EINTR/EIO: Linux releases the number even then)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.count = 0
        self.not_open: list[int] = []
        self.fail_on = fail_on
        self._real = os.close

    def __call__(self, fd: int) -> None:
        self.count += 1
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            self.not_open.append(fd)
        self._real(fd)
        if self.count == self.fail_on:
            raise OSError(errno.EIO, "simulated close failure")

    def assert_once(self) -> None:
        assert not self.not_open, f"closed while not open (double close): {self.not_open}"


# -- images/tarsafe.py ---------------------------------------------------------------------

def test_safetree_open_dir_close_failure_mid_walk_closes_each_fd_once(tmp_path, monkeypatch,
                                                                      fd_guard):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    tree = tarsafe.SafeTree(str(tmp_path))
    rec = _CloseRecorder(fail_on=2)  # the close of "a" while stepping into "b" fails
    monkeypatch.setattr(tarsafe.os, "close", rec)
    with pytest.raises(OSError):
        tree.open_dir(("a", "b", "c"), "x", create=False)
    monkeypatch.undo()
    rec.assert_once()
    tree.close()
    tree.close()  # idempotent


def test_safetree_close_failure_is_not_retried(tmp_path, monkeypatch, fd_guard):
    tree = tarsafe.SafeTree(str(tmp_path))
    rec = _CloseRecorder(fail_on=1)
    monkeypatch.setattr(tarsafe.os, "close", rec)
    with pytest.raises(OSError):
        tree.close()
    tree.close()  # must not close the (released, maybe reused) number again
    rec.assert_once()


# -- agent/volumes.py ----------------------------------------------------------------------

def test_safe_subpath_close_failure_mid_walk_closes_each_fd_once(tmp_path, monkeypatch,
                                                                 fd_guard):
    (tmp_path / "vol" / "a" / "b").mkdir(parents=True)
    rec = _CloseRecorder(fail_on=1)  # closing the volume root after opening "a" fails
    monkeypatch.setattr(volumes.os, "close", rec)
    with pytest.raises(OSError):
        volumes.safe_subpath(str(tmp_path / "vol"), "a/b", vm_name="v", container="c",
                             bind_target=None)
    monkeypatch.undo()
    rec.assert_once()


def test_open_component_fchmod_failure_does_not_leak(tmp_path, monkeypatch, fd_guard):
    (tmp_path / "vol").mkdir()

    def fchmod(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, "simulated")
    monkeypatch.setattr(volumes.os, "fchmod", fchmod)
    with pytest.raises(ContainerConfigError):
        volumes.safe_subpath(str(tmp_path / "vol"), "new/dir", vm_name="v", container="c",
                             bind_target=None)


def test_check_host_path_file_or_create_fchmod_failure_does_not_leak(tmp_path, monkeypatch,
                                                                     fd_guard):
    def fchmod(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, "simulated")
    monkeypatch.setattr(volumes.os, "fchmod", fchmod)
    with pytest.raises(PermissionError):
        volumes.check_host_path(str(tmp_path / "f"), "FileOrCreate")


# -- util/files.py -------------------------------------------------------------------------

def test_atomic_write_fchmod_failure_does_not_leak(tmp_path, monkeypatch, fd_guard):
    def fchmod(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, "simulated")
    monkeypatch.setattr(files_mod.os, "fchmod", fchmod)
    with pytest.raises(PermissionError):
        atomic_write(str(tmp_path / "f"), b"data")
    assert os.listdir(tmp_path) == []


# -- images/content.py ---------------------------------------------------------------------

def _flock_fails(fd: int, op: int) -> None:
    raise OSError(errno.ENOLCK, "simulated")


def test_create_part_flock_failure_does_not_leak(tmp_path, monkeypatch):
    store = ContentStore(str(tmp_path / "content"))
    sentinel, before = _Sentinel(), _fds()
    monkeypatch.setattr(content_mod.fcntl, "flock", _flock_fails)
    with pytest.raises(OSError):
        store.ingest("sha256:" + "0" * 64)
    assert _fds() - before == set()
    sentinel.check()
    sentinel.close()


def test_remove_if_stale_flock_failure_does_not_leak(tmp_path, monkeypatch):
    store = ContentStore(str(tmp_path / "content"))
    (tmp_path / "content" / "ingest" / "x.part").write_bytes(b"")
    sentinel, before = _Sentinel(), _fds()
    monkeypatch.setattr(content_mod.fcntl, "flock", _flock_fails)
    with pytest.raises(OSError):
        store.cleanup_stale_ingests()
    assert _fds() - before == set()
    sentinel.check()
    sentinel.close()


def test_abort_while_commit_runs_in_a_thread_leaves_the_fd_to_the_commit(tmp_path, monkeypatch,
                                                                         fd_guard):
    """A cancelled ``with store.ingest(...): await to_thread(ingest.commit)`` runs abort() on
    the loop while commit() still uses the fd in its thread: abort must neither close the
    fd under the commit nor let the commit close it a second time."""
    store = ContentStore(str(tmp_path / "content"))
    data = b"blob" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        in_fsync.set()
        assert release.wait(10)
        real_fsync(fd)
    monkeypatch.setattr(content_mod.os, "fsync", slow_fsync)
    rec = _CloseRecorder()
    monkeypatch.setattr(content_mod.os, "close", rec)

    ing = store.ingest(digest, len(data))
    ing.write(data)
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(ing.commit()))
    worker.start()
    assert in_fsync.wait(10)
    ing.abort()  # what the with-exit of the cancelled task does
    fcntl.fcntl(ing._fd, fcntl.F_GETFD)  # still open: the commit owns it
    assert rec.count == 0
    release.set()
    worker.join(10)
    assert result == [digest] and ing.state == "committed"
    ing.abort()  # a no-op afterwards
    rec.assert_once()
    assert store.read_bytes(digest) == data


async def test_cancelled_commit_in_thread_closes_fd_once(tmp_path, monkeypatch, fd_guard):
    """The service's pattern, end to end on an event loop, cancelled mid-commit."""
    store = ContentStore(str(tmp_path / "content"))
    data = b"layer" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        in_fsync.set()
        assert release.wait(10)
        real_fsync(fd)
    monkeypatch.setattr(content_mod.os, "fsync", slow_fsync)
    rec = _CloseRecorder()
    monkeypatch.setattr(content_mod.os, "close", rec)

    async def fetch_and_commit() -> None:
        with store.ingest(digest, len(data)) as ingest:
            ingest.write(data)
            await asyncio.to_thread(ingest.commit)

    task = asyncio.ensure_future(fetch_and_commit())
    assert await asyncio.to_thread(in_fsync.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.count == 0  # abort() left the fd to the running commit
    release.set()
    for _ in range(500):
        if rec.count:
            break
        await asyncio.sleep(0.01)
    rec.assert_once()
    assert store.has(digest)


# -- images/service.py ---------------------------------------------------------------------

def test_service_init_failure_releases_the_owner_lock(tmp_path, monkeypatch, fd_guard):
    class Broken:
        def __init__(self, root: str) -> None:
            raise OSError(errno.EIO, "simulated")
    monkeypatch.setattr(service_mod, "MetadataStore", Broken)
    with pytest.raises(OSError):
        LocalImageService(ImageStoreConfig(root=str(tmp_path / "images")))
    lock = os.open(str(tmp_path / "images" / "service.lock"), os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it any more
    finally:
        os.close(lock)


async def test_service_close_releases_lock_when_client_close_fails(tmp_path, fd_guard):
    svc = LocalImageService(ImageStoreConfig(root=str(tmp_path / "images")))
    assert svc._owner_fd is not None

    class Client:
        async def close(self) -> None:
            raise RuntimeError("simulated")
    svc._client = Client()  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        await svc.close()
    assert svc._owner_fd is None
    await svc.close()  # idempotent, closes nothing twice


# -- runtime/oci/exits.py ------------------------------------------------------------------

def test_exit_watcher_close_outside_the_loop_unregisters_the_reader(tmp_path, fd_guard):
    watcher = ExitWatcher(str(tmp_path))
    loop = asyncio.new_event_loop()
    try:
        async def start() -> None:
            watcher.start()
        loop.run_until_complete(start())
        fd = watcher._fd
        assert fd in loop._selector.get_map()  # type: ignore[attr-defined]
        watcher.close()  # no running loop here
        assert fd not in loop._selector.get_map()  # type: ignore[attr-defined]
        watcher.close()
    finally:
        loop.close()


def test_exit_watcher_start_without_loop_does_not_leak(tmp_path, fd_guard):
    watcher = ExitWatcher(str(tmp_path))
    with pytest.raises(RuntimeError):
        watcher.start()
    assert not watcher.started


async def test_exit_watcher_close_failure_is_not_retried(tmp_path, monkeypatch, fd_guard):
    watcher = ExitWatcher(str(tmp_path))
    watcher.start()
    rec = _CloseRecorder(fail_on=1)
    monkeypatch.setattr(exits_mod.os, "close", rec)
    with pytest.raises(OSError):
        watcher.close()
    watcher.close()
    rec.assert_once()
