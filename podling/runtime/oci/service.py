"""OciRuntime: the RuntimeService on runc + conmon with a catatonit pause sandbox.

Construction checks the host (binaries, cgroup mode) and loads the on-disk records, so a new
``OciRuntime`` over an existing root (an agent restart) sees every sandbox and container that
is still there — conmon, not Python, is the parent of the containers — and kills the exec'd
processes an earlier process left (execs.py). Container methods live in ``containers.py``,
exec / attach / port-forward in ``streaming.py``; this module holds the config, the shared
plumbing and the sandbox methods.

Concurrency: one asyncio lock per object id serialises operations on it; reads (status, list)
take no lock and derive the state from records, exit files and /proc (see state.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal as _signal
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from podling.util.files import atomic_write

from ..interface import (ContainerExit, ContainerStats, PodSandboxConfig, PodSandboxStatus,
                         RuntimeCommandError, RuntimeUnavailable, SandboxNotFound,
                         labels_match)
from . import bundle, conmon, host, proc, sandbox, state, stats
from .containers import ContainerOps
from .execs import cleanup_leftovers
from .names import new_id
from .exits import ExitRecord, ExitWatcher, read_exit_file, write_exit_file
from .runc import Runc
from .store import SandboxRecord, Store
from .streaming import StreamingOps


@dataclass
class OciRuntimeConfig:
    """Settings of one runtime instance; ``root`` must be private to it.

    ``cgroup_root``: the podling-owned cgroup parent of pods (absolute in every hierarchy);
    use a distinct one per runtime root. ``rlimits`` are requested for every container and
    clamped to the host's hard limits."""

    root: str = "/var/lib/podling/runtime"
    runc: str = "runc"
    conmon: str = "conmon"
    pause: str = "catatonit"
    cgroup_root: str = "/podling"
    command_timeout: float = 10.0
    kill_timeout: float = 10.0
    shm_size: str = "64m"
    log_size_max: int = 10 * 1024 * 1024  # per container log file, like containerLogMaxSize
    rlimits: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: dict(bundle.DEFAULT_RLIMITS))


class OciRuntime(ContainerOps, StreamingOps):
    """RuntimeService implementation (see interface.py for the contracts)."""

    def __init__(self, config: OciRuntimeConfig) -> None:
        self.config = config
        self.root = os.path.abspath(config.root)
        self.runc_path = sandbox.find_binary(config.runc)
        self.conmon_path = sandbox.find_binary(config.conmon)
        self.pause_path = sandbox.find_binary(config.pause)
        self.cgroup_mode = host.cgroup_mode()
        problem = host.check_runtime_supports(self.runc_path, self.cgroup_mode)
        if problem:
            raise RuntimeUnavailable(problem)
        self.store = Store(self.root)
        self.store.ensure_layout()
        self.store.write_settings({"runc": self.runc_path, "cgroup_root": config.cgroup_root})
        self.store.load()
        cleanup_leftovers(self.store.path("execs"))  # execs of an earlier (crashed) process
        self.pause_rootfs = sandbox.ensure_pause_rootfs(self.root)
        self.exit_dir = self.store.path("exits")
        self.runc = Runc(self.runc_path, self.store.path("runc"),
                         timeout=config.command_timeout)
        self.watcher = ExitWatcher(self.exit_dir)
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._rlimits = bundle.clamp_rlimits(
            config.rlimits, bundle.host_rlimits(list(config.rlimits)))

    # -- plumbing ----------------------------------------------------------------------------

    def _ensure_watching(self) -> None:
        if not self.watcher.started:
            self.watcher.start()

    def _lock(self, oid: str) -> asyncio.Lock:
        return self._locks[oid]

    def _conmon_spec(self, oid: str, directory: str, *, name: str, log_path: str,
                     terminal: bool = False, stdin: bool = False,
                     leave_stdin_open: bool = False) -> conmon.ConmonLaunch:
        return conmon.ConmonLaunch(
            conmon=self.conmon_path, runtime=self.runc_path, runtime_root=self.runc.root,
            cid=oid, name=name, bundle=directory, pid_file=os.path.join(directory, "pid"),
            conmon_pid_file=os.path.join(directory, "conmon.pid"), log_path=log_path,
            exit_dir=self.exit_dir, socket_dir=self.store.path("sockets"),
            persist_dir=directory, terminal=terminal, stdin=stdin,
            leave_stdin_open=leave_stdin_open, timeout=self.config.command_timeout,
            log_size_max=self.config.log_size_max)

    @staticmethod
    def _write_spec(directory: str, spec: dict[str, Any]) -> None:
        os.makedirs(directory, exist_ok=True)
        atomic_write(os.path.join(directory, "config.json"),
                     json.dumps(spec, indent=1).encode())

    async def _kill_and_wait(self, oid: str, *, pid: int, start_time: int,
                             conmon_pid: int) -> None:
        """SIGKILL every process of ``oid`` and wait for its exit file. If the monitor is
        gone too (nobody will write the file), record exit 137 ourselves."""
        if read_exit_file(self.exit_dir, oid) is not None:
            return
        with contextlib.suppress(RuntimeCommandError):
            await self.runc.kill(oid, "KILL", all_processes=True)
        monitor = proc.pid_alive(conmon_pid) and _is_conmon(conmon_pid)
        if monitor and await self.watcher.wait(oid, self.config.kill_timeout) is not None:
            return
        if read_exit_file(self.exit_dir, oid) is not None:
            return
        if proc.same_process(pid, start_time):
            raise RuntimeCommandError(f"{oid} did not die after SIGKILL")
        write_exit_file(self.exit_dir, oid, 128 + _signal.SIGKILL)

    async def _forget_process(self, oid: str, *, conmon_pid: int) -> None:
        """runc delete, then make sure conmon is gone and the exit file removed."""
        await self.runc.delete(oid, force=True)
        if conmon_pid and proc.pid_alive(conmon_pid) and _is_conmon(conmon_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(conmon_pid, _signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.exit_dir, oid))

    # -- sandboxes ---------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        self._ensure_watching()
        sid = new_id()
        directory = self.store.sandbox_dir(sid)
        parent = config.cgroup_parent or f"{self.config.cgroup_root}/pod-{sid}"
        record = SandboxRecord(sid, config, time.time(), cgroup_parent=parent,
                               owns_cgroup_parent=not config.cgroup_parent)
        async with contextlib.AsyncExitStack() as undo:
            undo.callback(self.store.delete_sandbox, sid)
            undo.callback(self._release_sandbox_host, record)
            record.netns_path = await sandbox.create_netns(
                self.root, sid, config.namespace_options, timeout=self.config.command_timeout)
            os.makedirs(directory, exist_ok=True)
            record.shm_path = sandbox.create_shm(directory, config.namespace_options,
                                                 size=self.config.shm_size)
            self.store.save_sandbox(record)
            await self._start_pause(record, undo)
            undo.pop_all()
        return sid

    async def _start_pause(self, record: SandboxRecord,
                           undo: contextlib.AsyncExitStack) -> None:
        directory = self.store.sandbox_dir(record.id)
        spec = bundle.sandbox_spec(
            record.config, netns_path=record.netns_path, pause_rootfs=self.pause_rootfs,
            pause_binary=self.pause_path, shm_path=record.shm_path,
            cgroups_path=f"{record.cgroup_parent}/{record.id}", rlimits=self._rlimits)
        self._write_spec(directory, spec)
        launched = await conmon.launch(self._conmon_spec(
            record.id, directory, name=f"pause-{record.config.name}",
            log_path=os.path.join(directory, "pause.log")))
        undo.push_async_callback(self._forget_process, record.id,
                                 conmon_pid=launched.conmon_pid)
        await self.runc.start(record.id)
        record.pause_pid, record.conmon_pid = launched.pid, launched.conmon_pid
        record.pause_start_time = proc.pid_start_time(launched.pid)
        self.store.save_sandbox(record)

    def _release_sandbox_host(self, record: SandboxRecord) -> None:
        sandbox.release(shm_path=record.shm_path, netns=record.netns_path)
        if record.owns_cgroup_parent:
            host.remove_cgroup(record.cgroup_parent)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._ensure_watching()
        async with self._lock(sandbox_id):
            record = self.store.sandboxes.get(sandbox_id)
            if record is None:
                return
            for cid in self._containers_of(sandbox_id):
                await self.stop_container(cid, 0)
            if record.pause_pid:
                await self._kill_and_wait(sandbox_id, pid=record.pause_pid,
                                          start_time=record.pause_start_time,
                                          conmon_pid=record.conmon_pid)
            if not record.stopped:
                record.stopped = True
                self.store.save_sandbox(record)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._ensure_watching()
        async with self._lock(sandbox_id):
            record = self.store.sandboxes.get(sandbox_id)
            if record is None:
                return
            for cid in self._containers_of(sandbox_id):
                await self.remove_container(cid)
            if record.pause_pid:
                await self._kill_and_wait(sandbox_id, pid=record.pause_pid,
                                          start_time=record.pause_start_time,
                                          conmon_pid=record.conmon_pid)
            await self._forget_process(sandbox_id, conmon_pid=record.conmon_pid)
            self._release_sandbox_host(record)
            self.store.delete_sandbox(sandbox_id)
        self._locks.pop(sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        record = self.store.sandboxes.get(sandbox_id)
        if record is None:
            raise SandboxNotFound(sandbox_id)
        return state.sandbox_status(record, exit_dir=self.exit_dir)

    async def list_pod_sandbox(self, labels: dict[str, str] | None = None
                               ) -> list[PodSandboxStatus]:
        records = sorted(self.store.sandboxes.values(), key=lambda r: r.created_at)
        return [state.sandbox_status(r, exit_dir=self.exit_dir) for r in records
                if labels_match(r.config.labels, labels)]

    def _containers_of(self, sandbox_id: str) -> list[str]:
        return [c.id for c in self.store.containers.values() if c.sandbox_id == sandbox_id]

    async def container_stats(self, container_id: str) -> ContainerStats:
        """Read from the container's cgroup (stats.py); raises ContainerNotFound."""
        return stats.container_stats(container_id, self._record(container_id).cgroups_path)

    # -- events and lifetime -----------------------------------------------------------------

    def exit_events(self) -> AsyncIterator[ContainerExit]:
        self._ensure_watching()
        return self._container_exits(self.watcher.subscribe())

    async def _container_exits(self, stream: AsyncIterator[ExitRecord]
                               ) -> AsyncIterator[ContainerExit]:
        async for record in stream:
            container = self.store.containers.get(record.id)
            if container is not None:
                yield ContainerExit(record.id, container.sandbox_id, record.exit_code,
                                    record.finished_at)

    async def close(self) -> None:
        self.watcher.close()

    async def __aenter__(self) -> "OciRuntime":
        self._ensure_watching()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _is_conmon(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "conmon"
    except OSError:
        return False
