"""The base of OciRuntime: its config, its state and the plumbing every half of it uses.

    RuntimeCore (this module: config, store, runc, exit watcher, locks, kill / forget)
      ├── ContainerOps (containers.py)   create / start / stop / remove / status
      └── StreamingOps (streaming.py)    exec / exec_sync / attach / port_forward
    OciRuntime(ContainerOps, StreamingOps) (service.py)   + the sandbox methods

The halves import this module, never service.py, so the package has no import cycle.
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
from typing import Any, Mapping

from podling.util.files import atomic_write

from ..interface import (ContainerNotFound, ContainerStatus, RuntimeCommandError,
                         RuntimeUnavailable, exit_reason)
from . import bundle, conmon, host, pidwatch, proc, sandbox, state
from .execs import cleanup_leftovers
from .exits import ExitWatcher, read_exit_file, write_exit_file
from .runc import Runc
from .store import ContainerRecord, Store

#: the message of a container killed because its conmon died (nothing would report its end)
MONITOR_LOST = "conmon, the container's monitor, died: the container was killed"
MONITOR_PREFIX = "monitor-"  # PidWatcher keys of the conmon watches
RELEASING = "releasing_at"  # ContainerRecord.extra: when a start began (see start_container)


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


PAUSE_EXIT_UNKNOWN = -1
"""The exit status recorded for a monitorless pause that died on its own."""


class RuntimeCore:
    """The state and plumbing shared by the sandbox, container and streaming methods.

    Construction checks the host and loads the on-disk records (see service.py). Not a
    RuntimeService by itself: :class:`~podling.runtime.oci.service.OciRuntime` is."""

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
        self.pids = pidwatch.PidWatcher()  # the pause processes (no conmon)
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._starting: set[str] = set()  # sandboxes taking containers while the pause starts
        self._rlimits = bundle.clamp_rlimits(
            config.rlimits, bundle.host_rlimits(list(config.rlimits)))
        self._settle_interrupted_starts()

    def _settle_interrupted_starts(self) -> None:
        """Containers whose start an earlier process began and never recorded (it was
        killed): one runc let go ran, so it is started (since the start began) and its exit
        file, if any, tells how it ended; one whose init still waits was never started."""
        for record in self.store.containers.values():
            began = record.extra.pop(RELEASING, None)
            if began is None:
                continue
            if record.pid and not record.finished_at and self.runc.released(
                    record.id, pid=record.pid, start_time=record.pid_start_time):
                record.started_at = float(began)
            self.store.save_container(record)

    # -- plumbing ----------------------------------------------------------------------------

    def _ensure_watching(self) -> None:
        if not self.watcher.started:
            self.watcher.start()
            self._adopt_pauses()
            for record in self.store.containers.values():
                if record.conmon_pid and record.started_at and not record.finished_at:
                    self._watch_monitor(record)

    def _adopt_pauses(self) -> None:
        """Watch the monitorless pause of every sandbox (those an earlier process started
        too); one that died meanwhile gets its exit file now."""
        for record in self.store.sandboxes.values():
            if record.pause_pid and not record.conmon_pid:
                self._watch_pause(record.id, record.pause_pid, record.pause_start_time)

    def _watch_pause(self, sid: str, pid: int, start_time: int) -> None:
        if read_exit_file(self.exit_dir, sid) is None \
                and not self.pids.watch(sid, pid, start_time, self._pause_exited):
            self._pause_exited(sid)

    def _pause_exited(self, sid: str, code: int = PAUSE_EXIT_UNKNOWN) -> None:
        """Write the exit file conmon would have written (once; the inotify watcher and
        every status read see it). The status of a process that is not our child is not
        ours to read: ``code`` is 137 after our SIGKILL, else unknown (-1)."""
        if sid in self.store.sandboxes and read_exit_file(self.exit_dir, sid) is None:
            write_exit_file(self.exit_dir, sid, code)

    def _watch_monitor(self, record: ContainerRecord) -> None:
        """Watch the conmon of a started container: one that ends without having written
        the container's exit file was killed, and nothing would ever report the container's
        end; then the container is killed and finished with :data:`MONITOR_LOST`."""
        key = MONITOR_PREFIX + record.id
        if not self.pids.watch(key, record.conmon_pid, record.conmon_start_time,
                               self._monitor_exited):
            self._monitor_exited(key)

    def _monitor_exited(self, key: str) -> None:
        cid = key[len(MONITOR_PREFIX):]
        if self._monitor_lost(cid):
            asyncio.get_running_loop().create_task(self._finish_unmonitored(cid))

    def _monitor_lost(self, cid: str) -> bool:
        record = self.store.containers.get(cid)
        return record is not None and not record.finished_at and \
            read_exit_file(self.exit_dir, cid) is None

    async def _finish_unmonitored(self, cid: str) -> None:
        async with self._lock(cid):
            if not self._monitor_lost(cid):
                return
            record = self.store.containers[cid]
            with contextlib.suppress(RuntimeCommandError):
                await self._kill_and_wait(cid, pid=record.pid, start_time=record.pid_start_time,
                                          conmon_pid=record.conmon_pid)
            code = 128 + _signal.SIGKILL
            record.finished_at, record.exit_code = time.time(), code
            record.reason, record.message = exit_reason(code), MONITOR_LOST
            self.store.save_container(record)
            write_exit_file(self.exit_dir, cid, code)

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
                     json.dumps(spec, indent=1).encode(), sync=False)  # see store.py

    async def _kill_and_wait(self, oid: str, *, pid: int, start_time: int,
                             conmon_pid: int, own_pid_ns: bool = False) -> None:
        """SIGKILL every process of ``oid`` and wait for its exit file. If the monitor is
        gone too (nobody will write the file), record exit 137 ourselves. ``conmon_pid`` 0:
        a monitorless pause, killed and awaited through its pidfd. ``own_pid_ns``: ``pid`` is
        the init of a PID namespace of the container's own, so SIGKILL to it (through a
        pidfd) kills every process of the container, as ``runc kill --all`` would."""
        if read_exit_file(self.exit_dir, oid) is not None:
            return
        if not conmon_pid:
            await self._kill_pause(oid, pid=pid, start_time=start_time)
            return
        if own_pid_ns:
            signal_process(pid, start_time, _signal.SIGKILL)
        else:
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

    async def _kill_pause(self, sid: str, *, pid: int, start_time: int) -> None:
        """SIGKILL the pause through a pidfd (it is its PID namespace's init, or alone in its
        cgroup with hostPID: what ``runc kill --all`` would reach) and wait for its exit."""
        self.pids.unwatch(sid)
        fd = pidwatch.open_pidfd(pid, start_time)
        if fd is not None:
            try:
                pidwatch.kill(fd)
                if not await pidwatch.wait_readable(fd, self.config.kill_timeout):
                    raise RuntimeCommandError(f"{sid} did not die after SIGKILL")
            finally:
                os.close(fd)
        self._pause_exited(sid, 128 + _signal.SIGKILL)

    async def _forget_process(self, oid: str, *, conmon_pid: int) -> None:
        """runc delete (done in-process when nothing of ``oid`` runs any more: see
        Runc.forget_stopped), then make sure conmon is gone and the exit file removed."""
        # in a thread: cgroup rmdirs can wait for the kernel (an RCU grace period)
        if not await asyncio.to_thread(self.runc.forget_stopped, oid):
            await self.runc.delete(oid, force=True)
        if conmon_pid and proc.pid_alive(conmon_pid) and _is_conmon(conmon_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(conmon_pid, _signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.exit_dir, oid))

    def _record(self, container_id: str) -> ContainerRecord:
        record = self.store.containers.get(container_id)
        if record is None:
            raise ContainerNotFound(container_id)
        return record

    def _status(self, record: ContainerRecord) -> ContainerStatus:
        return state.container_status(record, exit_dir=self.exit_dir,
                                      container_dir=self.store.container_dir(record.id))


def signal_process(pid: int, start_time: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` if it is still the process that started at ``start_time``
    (through a pidfd: never to a reused pid), as ``runc kill`` does to a container's init.
    False when it is gone."""
    fd = pidwatch.open_pidfd(pid, start_time)
    if fd is None:
        return False
    try:
        pidwatch.kill(fd, sig)
    finally:
        os.close(fd)
    return True


def _is_conmon(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "conmon"
    except OSError:
        return False
