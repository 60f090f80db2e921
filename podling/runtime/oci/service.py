"""OciRuntime: the RuntimeService on runc + conmon with a catatonit pause sandbox.

Construction checks the host (binaries, cgroup mode) and loads the on-disk records, so a new
``OciRuntime`` over an existing root (an agent restart) sees every sandbox and container that
is still there — conmon, not Python, is the parent of the containers — and kills the exec'd
processes an earlier process left (execs.py). The config, the shared state and plumbing live
in ``core.py``, container methods in ``containers.py``, exec / attach / port-forward in
``streaming.py``; this module holds the sandbox methods and the lifetime.

The pause runs without a monitor: ``runc run --detach`` (one runc call, no conmon), after
which it is the host init's child, reaped by init like any orphan (and like conmon itself).
Its exit is seen through a pidfd (pidwatch.py), which writes the exit file conmon would have
written; a new OciRuntime re-watches the pauses of the records it loads (a pause that died
while nobody watched gets its exit file then). Records of sandboxes an older version started
under conmon (``conmon_pid`` set) keep the conmon path.

Concurrency: one asyncio lock per object id serialises operations on it (nothing is global:
different pods never wait for each other here); stopping and removing a sandbox handle its
containers concurrently; reads (status, list) take no lock and derive the state from
records, exit files and /proc (see state.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import AsyncIterator, Awaitable, Iterable

from ...util import timeline
from ..interface import (ContainerExit, ContainerStats, CreatedCallback, NamespaceMode,
                         NetnsCallback, PodSandboxConfig, PodSandboxStatus,
                         RuntimeCommandError, SandboxNotFound, labels_match)
from . import bundle, conmon, host, proc, sandbox, state, stats
from .containers import ContainerOps
from .core import PAUSE_EXIT_UNKNOWN, OciRuntimeConfig
from .exits import ExitRecord
from .names import new_id
from .store import SandboxRecord
from .streaming import StreamingOps


__all__ = ["OciRuntime", "OciRuntimeConfig"]


class OciRuntime(ContainerOps, StreamingOps):
    """RuntimeService implementation (see interface.py for the contracts)."""

    # -- sandboxes ---------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              on_network_namespace: NetnsCallback | None = None,
                              on_created: CreatedCallback | None = None) -> str:
        self._ensure_watching()
        sid = new_id()
        directory = self.store.sandbox_dir(sid)
        parent = config.cgroup_parent or f"{self.config.cgroup_root}/pod-{sid}"
        record = SandboxRecord(sid, config, time.time(), cgroup_parent=parent,
                               owns_cgroup_parent=not config.cgroup_parent)
        async with contextlib.AsyncExitStack() as undo:
            undo.callback(self.store.delete_sandbox, sid)
            undo.callback(self._release_sandbox_host, record)
            # written ahead, with the paths about to be made: a process killed from here on
            # leaves a record, so the sandbox is stopped and removed, its network torn down
            if config.namespace_options.network is not NamespaceMode.NODE:
                record.netns_path = sandbox.netns_path(self.root, sid)
            record.pinned_ns = sandbox.pinned_paths(self.root, sid, config.namespace_options)
            os.makedirs(directory, exist_ok=True)
            self.store.save_sandbox(record)
            await sandbox.create_netns(self.root, sid, config.namespace_options,
                                       timeout=self.config.command_timeout)
            timeline.mark(config.uid, "sandbox.netns")
            if on_network_namespace is not None and record.netns_path:
                on_network_namespace(sid, record.netns_path)
            await sandbox.pin_namespaces(record.pinned_ns)
            record.shm_path = sandbox.create_shm(directory, config.namespace_options,
                                                 size=self.config.shm_size)
            if config.pids_limit > 0 and record.owns_cgroup_parent:
                host.limit_pids(parent, config.pids_limit)
            self.store.save_sandbox(record)
            # the containers join the pinned namespaces: they can be created meanwhile,
            # unless they share the pause's PID namespace
            early = config.namespace_options.pid is not NamespaceMode.POD
            if on_created is not None and early:
                self._starting.add(sid)
                undo.push_async_callback(self._abandon_containers, sid)
                on_created(sid)
            try:
                await self._start_pause(record, undo)
            finally:
                self._starting.discard(sid)
            undo.pop_all()
        if on_created is not None and not early:
            on_created(sid)
        return sid

    async def _find_unrecorded_pause(self, record: SandboxRecord) -> None:
        """A pause runc started but nobody recorded (the process that asked was killed in
        between): its pid from runc, so that stopping the sandbox reaches it."""
        if record.pause_pid or record.stopped:
            return
        found = await self.runc.state(record.id)
        if found is not None and found.pid and found.status in ("created", "running"):
            record.pause_pid = found.pid
            record.pause_start_time = proc.pid_start_time(found.pid)
            self.store.save_sandbox(record)

    async def _abandon_containers(self, sandbox_id: str) -> None:
        """Remove the containers created in a sandbox whose pause did not start (creates
        still running are waited for; no new one is accepted)."""
        self._starting.discard(sandbox_id)
        await _all(self.remove_container(cid) for cid in self._containers_of(sandbox_id))

    async def _start_pause(self, record: SandboxRecord,
                           undo: contextlib.AsyncExitStack) -> None:
        directory = self.store.sandbox_dir(record.id)
        spec = bundle.sandbox_spec(
            record.config, netns_path=record.netns_path, pause_rootfs=self.pause_rootfs,
            pause_binary=self.pause_path, shm_path=record.shm_path,
            cgroups_path=f"{record.cgroup_parent}/{record.id}", rlimits=self._rlimits,
            pinned=record.pinned_ns)
        self._write_spec(directory, spec)
        pid_file = os.path.join(directory, "pid")
        undo.push_async_callback(self._forget_process, record.id, conmon_pid=0)
        await self.runc.run_detached(record.id, directory, pid_file=pid_file,
                                     log_path=os.path.join(directory, "pause.log"))
        timeline.mark(record.config.uid, "sandbox.created")  # created and started
        pid = conmon.read_pid_file(pid_file)
        if pid <= 0:
            raise RuntimeCommandError(f"runc run {record.id} left no pid file")
        record.pause_pid, record.conmon_pid = pid, 0
        record.pause_start_time = proc.pid_start_time(pid)
        self.store.save_sandbox(record)
        self._watch_pause(record.id, pid, record.pause_start_time)

    def _release_sandbox_host(self, record: SandboxRecord) -> None:
        sandbox.release(shm_path=record.shm_path, netns=record.netns_path,
                        pinned=record.pinned_ns.values())
        if record.owns_cgroup_parent:
            host.remove_cgroup(record.cgroup_parent)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._ensure_watching()
        async with self._lock(sandbox_id):
            record = self.store.sandboxes.get(sandbox_id)
            if record is None:
                return
            await _all(self.stop_container(cid, 0) for cid in self._containers_of(sandbox_id))
            await self._find_unrecorded_pause(record)
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
            await _all(self.remove_container(cid) for cid in self._containers_of(sandbox_id))
            if record.pause_pid:
                await self._kill_and_wait(sandbox_id, pid=record.pause_pid,
                                          start_time=record.pause_start_time,
                                          conmon_pid=record.conmon_pid)
            self.pids.unwatch(sandbox_id)
            await self._forget_process(sandbox_id, conmon_pid=record.conmon_pid)
            await asyncio.to_thread(self._release_sandbox_host, record)  # unmounts, rmdirs
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
            elif record.exit_code == PAUSE_EXIT_UNKNOWN and record.id in self.store.sandboxes:
                # a pause that died on its own (not stopped by us): the pod must resync
                yield ContainerExit(record.id, record.id, record.exit_code, record.finished_at)

    async def close(self) -> None:
        self.watcher.close()
        self.pids.close()

    async def __aenter__(self) -> "OciRuntime":
        self._ensure_watching()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Run ``calls`` concurrently (a pod's containers are independent: one lock each); all
    of them finish, then the first failure is raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
