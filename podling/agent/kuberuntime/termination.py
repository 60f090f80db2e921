"""Termination messages: what a container left at its terminationMessagePath, or, with
``terminationMessagePolicy: FallbackToLogsOnError`` and a failed exit, its last log lines.

Limits as the kubelet's: 4096 bytes from the file; from the log, the last 80 lines and at
most 2048 bytes.
"""

from __future__ import annotations

import dataclasses
import os

from podling.agent.kuberuntime import labels
from podling.agent.kuberuntime.logs import parse_record
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import ContainerState, ContainerStatus

MAX_FILE_BYTES = 4096
MAX_LOG_LINES = 80
MAX_LOG_BYTES = 2048


def message_file(pod_dir: str, name: str, restart_count: int) -> str:
    """Host side of the container's terminationMessagePath mount."""
    return os.path.join(pod_dir, "containers", name, f"{restart_count}-termination-log")


def create_message_file(pod_dir: str, name: str, restart_count: int) -> str:
    """A fresh, empty message file for one attempt of a container, mode 0666 whatever the
    umask, so that a container running as any user can write it (kubelet makeMounts
    chmods the termination-log file it creates the same way)."""
    path = message_file(pod_dir, name, restart_count)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w"):
        pass
    os.chmod(path, 0o666)
    return path


def _tail_of_log(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            records = f.readlines()[-MAX_LOG_LINES:]
    except OSError:
        return ""
    lines = [parsed[3] + ("" if parsed[2] else "\n")
             for parsed in map(parse_record, records) if parsed]
    return "".join(lines).encode()[-MAX_LOG_BYTES:].decode(errors="ignore")


def termination_message(pod_dir: str, spec: ContainerView, status: ContainerStatus) -> str:
    """The message of the exited container ``status`` of ``spec`` (see the module
    docstring); "" when it left none."""
    restart = int(status.annotations.get(labels.RESTART_COUNT, status.attempt) or 0)
    try:
        with open(message_file(pod_dir, spec.name, restart), "rb") as f:
            text = f.read(MAX_FILE_BYTES).decode(errors="replace")
    except OSError:
        text = ""
    if not text and spec.termination_message_policy == "FallbackToLogsOnError" \
            and status.exit_code != 0:
        text = _tail_of_log(status.log_path)
    return text


def with_messages(pod_dir: str, pod: PodView,
                  containers: list[ContainerStatus]) -> list[ContainerStatus]:
    """The runtime statuses with each exited container's termination message filled in."""
    specs = {c.name: c for c in pod.spec.containers + pod.spec.init_containers}
    result = []
    for status in containers:
        container = specs.get(status.labels.get(labels.CONTAINER_NAME, status.name))
        if container is not None and status.state == ContainerState.EXITED:
            message = termination_message(pod_dir, container, status)
            if message:
                status = dataclasses.replace(status, message=message)
        result.append(status)
    return result
