"""Derive CRI statuses from the runtime's records, conmon exit files and /proc (pure-ish).

Container state, in order of precedence::

    record has finished_at (start failed / stopped before start)  → EXITED (record values)
    never started                                                  → CREATED
    exit file present                                              → EXITED (its status;
                                                                      OOMKilled if conmon
                                                                      left an oom file)
    init process alive (pid + start time match)                    → RUNNING
    conmon alive (exit file about to appear)                       → RUNNING
    otherwise                                                      → UNKNOWN

Nothing here runs a subprocess, so listing 100 containers costs only a few file reads.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ..interface import (ContainerState, ContainerStatus, PodSandboxStatus, SandboxState,
                         exit_reason)
from . import proc
from .exits import ExitRecord, read_exit_file
from .store import ContainerRecord, SandboxRecord


def oom_killed(container_dir: str) -> bool:
    """conmon marks an OOM kill with an ``oom`` file in the persist dir (= container dir)."""
    return os.path.exists(os.path.join(container_dir, "oom"))


def container_state(record: ContainerRecord, exit_record: ExitRecord | None, *,
                    init_alive: bool, conmon_alive: bool) -> ContainerState:
    """The state per the table in the module doc."""
    if record.finished_at:
        return ContainerState.EXITED
    if not record.started_at:
        return ContainerState.CREATED
    if exit_record is not None:
        return ContainerState.EXITED
    if init_alive or conmon_alive:
        return ContainerState.RUNNING
    return ContainerState.UNKNOWN


def container_status(record: ContainerRecord, *, exit_dir: str,
                     container_dir: str) -> ContainerStatus:
    """The current status of one container."""
    exit_record = None if record.finished_at else read_exit_file(exit_dir, record.id)
    alive = record.started_at > 0 and exit_record is None \
        and proc.same_process(record.pid, record.pid_start_time)
    conmon_alive = not alive and exit_record is None and record.started_at > 0 \
        and proc.same_process(record.conmon_pid, record.conmon_start_time)
    state = container_state(record, exit_record, init_alive=alive, conmon_alive=conmon_alive)
    cfg = record.config
    status = ContainerStatus(
        id=record.id, sandbox_id=record.sandbox_id, name=cfg.name, attempt=cfg.attempt,
        state=state, created_at=record.created_at, started_at=record.started_at,
        labels=dict(cfg.labels), annotations=dict(cfg.annotations), log_path=cfg.log_path,
        pid=record.pid if state is ContainerState.RUNNING else 0)
    if record.finished_at:
        return _with_exit(status, record.exit_code, record.finished_at, record.reason,
                          record.message)
    if exit_record is not None:
        oom = oom_killed(container_dir)
        return _with_exit(status, exit_record.exit_code, exit_record.finished_at,
                          exit_reason(exit_record.exit_code, oom=oom), "")
    return status


def _with_exit(status: ContainerStatus, code: int, finished_at: float, reason: str,
               message: str) -> ContainerStatus:
    return replace(status, exit_code=code, finished_at=finished_at, reason=reason,
                   message=message)


def sandbox_ready(record: SandboxRecord, exit_dir: str) -> bool:
    return (not record.stopped and record.pause_pid > 0
            and read_exit_file(exit_dir, record.id) is None
            and proc.same_process(record.pause_pid, record.pause_start_time))


def sandbox_status(record: SandboxRecord, *, exit_dir: str) -> PodSandboxStatus:
    ready = sandbox_ready(record, exit_dir)
    cfg = record.config
    return PodSandboxStatus(
        id=record.id, metadata=cfg.metadata,
        state=SandboxState.READY if ready else SandboxState.NOTREADY,
        created_at=record.created_at, network_namespace_path=record.netns_path,
        pid=record.pause_pid if ready else 0, labels=dict(cfg.labels),
        annotations=dict(cfg.annotations), namespace_options=cfg.namespace_options,
        hostname=cfg.hostname, log_directory=cfg.log_directory)
