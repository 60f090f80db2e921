"""Container methods of OciRuntime (on top of RuntimeCore, core.py).

    create_container: write the bundle (config.json) and the record, then conmon → runc
                      create (sync pipe): the container's init waits in runc's exec fifo
                      (the agent creates a pod's containers together, so their runc
                      creates overlap instead of each preceding its own start). A failed
                      runc create is not raised here but kept (``extra["create_error"]``)
                      and reported by start_container, where runc reported it before.
    start_container:  mark the record "releasing" → runc start, in-process (runc.py;
                      after conmon → runc create for a container created without a
                      process) → record started_at. Any failure: undo, record
                      EXITED/StartError (128), write an exit file (so waiters and exit
                      events see it), raise ContainerStartError.
    stop_container:   <signal> to the init process (a pidfd: what `runc kill` does) → wait
                      for the exit file ≤ timeout → SIGKILL to the init when it is its own
                      PID namespace's init, else `runc kill --all KILL`.
    remove_container: kill if needed → delete (in-process when nothing runs, else
                      `runc delete --force`) → conmon gone → files removed.
"""

from __future__ import annotations

import dataclasses
import os
import signal as _signal
import time

from ..interface import (REASON_START_ERROR, START_ERROR_EXIT_CODE, ContainerConfig,
                         ContainerStartError, ContainerState, ContainerStatus, InvalidState,
                         NamespaceMode, RuntimeCommandError, SandboxNotFound, SandboxNotReady,
                         labels_match)
from ...util import failpoints
from . import bundle, conmon, proc, seccomp, state
from .names import new_id, signal_name
from .exits import write_exit_file
from .core import MONITOR_PREFIX, RELEASING, RuntimeCore, signal_process
from .store import ContainerRecord


class ContainerOps(RuntimeCore):
    """The container half of the RuntimeService; a base of OciRuntime."""

    async def create_container(self, sandbox_id: str,
                               config: ContainerConfig) -> str:
        sb = self.store.sandboxes.get(sandbox_id)
        if sb is None:
            raise SandboxNotFound(sandbox_id)
        if sandbox_id not in self._starting and not state.sandbox_ready(sb, self.exit_dir):
            raise SandboxNotReady(f"sandbox {sandbox_id} is not ready")
        signal_name(config.stop_signal or "SIGTERM")
        cid = new_id()
        ref = bundle.SandboxRef(sb.config.namespace_options, sb.netns_path, sb.pause_pid,
                                sb.shm_path, sb.cgroup_parent, pinned=dict(sb.pinned_ns))
        cgroups_path = f"{sb.cgroup_parent}/{cid}"
        sec = config.security
        caps = bundle.capabilities(sec, bundle.held_capabilities(proc.bounding_set()))
        spec = bundle.container_spec(
            config, ref, cgroups_path=cgroups_path, rlimits=self._rlimits,
            pid_target=self._pid_target(sandbox_id, config), caps=caps,
            seccomp=seccomp.profile_for(sec.seccomp, caps, privileged=sec.privileged),
            host_devices=proc.host_devices() if sec.privileged else None)
        record = ContainerRecord(cid, sandbox_id, config, time.time(),
                                 cgroups_path=cgroups_path)
        try:
            self._write_spec(self.store.container_dir(cid), spec)
            self.store.save_container(record)
        except BaseException:
            self.store.delete_container(cid)
            raise
        async with self._lock(cid):
            await self._create_process(record)
        return cid

    async def _create_process(self, record: ContainerRecord) -> None:
        """conmon → runc create; the pids go into the record (started_at stays 0). A
        failure is kept for start_container; a cancellation removes the container."""
        try:
            launched = await self._conmon_create(record)
        except RuntimeCommandError as exc:
            record.extra["create_error"] = str(exc)
            self.store.save_container(record)
            return
        except BaseException:
            await self._forget_process(record.id, conmon_pid=0)
            self.store.delete_container(record.id)
            raise
        record.pid, record.conmon_pid = launched.pid, launched.conmon_pid
        record.pid_start_time = proc.pid_start_time(launched.pid)
        record.conmon_start_time = proc.pid_start_time(launched.conmon_pid)
        self.store.save_container(record)

    def _pid_target(self, sandbox_id: str, config: ContainerConfig) -> int:
        """The process whose PID namespace a container with ``pid_target`` joins: the
        target's init process, which must be running in the same sandbox."""
        if not config.pid_target:
            return 0
        target = self.store.containers.get(config.pid_target)
        if target is None or target.sandbox_id != sandbox_id or not target.started_at \
                or target.finished_at or not proc.same_process(target.pid, target.pid_start_time):
            raise InvalidState(f"target container {config.pid_target} is not running")
        return target.pid

    async def start_container(self, container_id: str) -> None:
        self._ensure_watching()
        async with self._lock(container_id):
            record = self._record(container_id)
            if record.started_at or record.finished_at:
                raise InvalidState(f"container {container_id} was already started")
            # written ahead: a process killed from here on may have let the container
            # run without recording it (settled at the next start: core.py)
            record.extra[RELEASING] = time.time()
            self.store.save_container(record)
            try:
                await self._launch(record)
            except BaseException as exc:
                del record.extra[RELEASING]
                if not isinstance(exc, RuntimeCommandError):
                    self.store.save_container(record)  # cancelled; _launch undid the process
                    raise
                self._mark_finished(record, START_ERROR_EXIT_CODE, REASON_START_ERROR,
                                    str(exc))
                raise ContainerStartError(str(exc)) from exc
            record.started_at = time.time()
            del record.extra[RELEASING]
            self.store.save_container(record)
            self._watch_monitor(record)

    async def _launch(self, record: ContainerRecord) -> None:
        """runc start of the process create_container made (made now when it has none)."""
        error = record.extra.pop("create_error", "")
        if error:
            raise RuntimeCommandError(error)
        if not record.pid:
            launched = await self._conmon_create(record)
            record.pid, record.conmon_pid = launched.pid, launched.conmon_pid
            record.pid_start_time = proc.pid_start_time(launched.pid)
            record.conmon_start_time = proc.pid_start_time(launched.conmon_pid)
        try:
            await self.runc.start(record.id, pid=record.pid, start_time=record.pid_start_time)
        except BaseException:
            await self._forget_process(record.id, conmon_pid=record.conmon_pid)
            raise

    async def _conmon_create(self, record: ContainerRecord) -> conmon.Launched:
        cfg = record.config
        directory = self.store.container_dir(record.id)
        log_path = cfg.log_path or os.path.join(directory, "container.log")
        spec = self._conmon_spec(
            record.id, directory, name=cfg.name, log_path=log_path, terminal=cfg.tty,
            stdin=cfg.stdin, leave_stdin_open=cfg.stdin and not cfg.stdin_once)
        fault = failpoints.fire("runc.create")
        if fault is not None:  # a runc that fails or hangs (tests and fault campaigns)
            spec = dataclasses.replace(spec, runtime=failpoints.stand_in(
                self.store.path("failpoints"), "runc", fault, only_for="create",
                otherwise=spec.runtime, stderr="failpoint runc.create: runc create failed"))
        return await conmon.launch(spec)

    def _mark_finished(self, record: ContainerRecord, code: int, reason: str,
                       message: str) -> None:
        record.finished_at, record.exit_code = time.time(), code
        record.reason, record.message = reason, message
        self.store.save_container(record)
        write_exit_file(self.exit_dir, record.id, code)

    async def stop_container(self, container_id: str, timeout: float,
                             signal: str = "SIGTERM") -> None:
        self._ensure_watching()
        sig = signal_name(signal or "SIGTERM")
        async with self._lock(container_id):
            record = self.store.containers.get(container_id)
            if record is None or record.finished_at:
                return
            if not record.started_at:
                # runc's init waiting in the exec fifo never runs; also one whose pid a
                # killed agent did not record (runc's state names it)
                await self._forget_process(container_id, conmon_pid=record.conmon_pid)
                self._mark_finished(record, 0, "", "stopped before it was started")
                return
            if self._status(record).state is ContainerState.EXITED:
                return
            if timeout > 0 and sig != "SIGKILL":
                # what `runc kill <id> <sig>` does (the init process only), without runc
                signal_process(record.pid, record.pid_start_time, _signal.Signals[sig])
                if await self.watcher.wait(container_id, timeout) is not None:
                    return
            await self._kill_and_wait(container_id, pid=record.pid,
                                      start_time=record.pid_start_time,
                                      conmon_pid=record.conmon_pid,
                                      own_pid_ns=self._own_pid_ns(record))

    def _own_pid_ns(self, record: ContainerRecord) -> bool:
        """True when the container's init is the init of a PID namespace of its own (pid
        mode CONTAINER, no target): killing it kills every process of the container."""
        sb = self.store.sandboxes.get(record.sandbox_id)
        return sb is not None and not record.config.pid_target \
            and sb.config.namespace_options.pid is NamespaceMode.CONTAINER

    async def remove_container(self, container_id: str) -> None:
        self._ensure_watching()
        async with self._lock(container_id):
            record = self.store.containers.get(container_id)
            if record is None:
                return
            if record.started_at and not record.finished_at:
                if self._status(record).state is not ContainerState.EXITED:
                    await self._kill_and_wait(container_id, pid=record.pid,
                                              start_time=record.pid_start_time,
                                              conmon_pid=record.conmon_pid,
                                              own_pid_ns=self._own_pid_ns(record))
            self.pids.unwatch(MONITOR_PREFIX + container_id)
            await self._forget_process(container_id, conmon_pid=record.conmon_pid)
            self.store.delete_container(container_id)
        self._locks.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._status(self._record(container_id))

    async def list_containers(self, sandbox_id: str | None = None,
                              labels: dict[str, str] | None = None) -> list[ContainerStatus]:
        records = sorted(self.store.containers.values(), key=lambda r: r.created_at)
        return [self._status(r) for r in records
                if (sandbox_id is None or r.sandbox_id == sandbox_id)
                and labels_match(r.config.labels, labels)]

    async def wait_container(self, container_id: str) -> ContainerStatus:
        self._ensure_watching()
        record = self._record(container_id)
        while True:
            status = self._status(record)
            if status.state is ContainerState.EXITED:
                return status
            await self.watcher.wait(container_id)
            record = self._record(container_id)
