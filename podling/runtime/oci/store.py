"""The runtime's own metadata on disk, one JSON record per sandbox / container.

Layout under the runtime root::

    <root>/runtime.json                 settings purge() needs (cgroup root, binaries)
    <root>/runc/                        runc --root
    <root>/exits/<id>                   conmon exit files (the pause's: written by pidwatch)
    <root>/sockets/                     conmon attach sockets
    <root>/execs/<exec id>/             one running exec: exec.json, runc's pid file (execs.py)
    <root>/netns/<sandbox id>           named network namespaces (bind mounts)
    <root>/ns/<sandbox id>.ipc|.uts     the sandbox's pinned IPC and UTS namespaces (bind mounts)
    <root>/pause/rootfs/                the shared read-only root of every pause container
    <root>/sandboxes/<id>/sandbox.json  + config.json (bundle), shm/ (tmpfs), pause.log
    <root>/containers/<id>/container.json  + config.json (bundle), conmon pid files, oom

Records are written atomically (temp + rename) but not fsynced: they describe processes that
do not survive the machine (runc's own state and conmon's exit files are not fsynced either),
and an fsync per write cost ~1.4 ms of the event loop here, six per pod start. The records, runc's state and conmon's
exit files together are the source of truth after a restart; nothing else is kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from podling.util.files import atomic_write

from ..interface import (ContainerConfig, Mount, MountPropagation, NamespaceMode,
                         NamespaceOptions, PodSandboxConfig, Resources, SecurityOptions)


@dataclass
class SandboxRecord:
    id: str
    config: PodSandboxConfig
    created_at: float
    netns_path: str = ""
    pinned_ns: dict[str, str] = field(default_factory=dict)  # "ipc" / "uts" -> bind mount
    shm_path: str = ""
    cgroup_parent: str = ""
    owns_cgroup_parent: bool = False
    pause_pid: int = 0
    pause_start_time: int = 0
    conmon_pid: int = 0
    stopped: bool = False


@dataclass
class ContainerRecord:
    id: str
    sandbox_id: str
    config: ContainerConfig
    created_at: float
    cgroups_path: str = ""
    started_at: float = 0.0
    pid: int = 0
    pid_start_time: int = 0
    conmon_pid: int = 0
    conmon_start_time: int = 0
    # Set only for exits the runtime decided itself (start failure, stop before start).
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# -- (de)serialisation ----------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(value), default=_enum_value))


def _enum_value(value: Any) -> Any:
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not serialisable: {value!r}")


def sandbox_config_from(data: dict[str, Any]) -> PodSandboxConfig:
    ns = data.get("namespace_options") or {}
    options = NamespaceOptions(**{k: NamespaceMode(v) for k, v in ns.items()})
    return PodSandboxConfig(**{**data, "namespace_options": options})


def container_config_from(data: dict[str, Any]) -> ContainerConfig:
    mounts = [Mount(**{**m, "propagation": MountPropagation(m["propagation"])})
              for m in data.get("mounts", [])]
    sec = dict(data.get("security") or {})
    for key in ("capabilities_add", "capabilities_drop"):
        sec[key] = tuple(sec.get(key) or ())
    for key in ("masked_paths", "readonly_paths"):
        if sec.get(key) is not None:
            sec[key] = tuple(sec[key])
    return ContainerConfig(**{**data, "mounts": mounts,
                              "resources": Resources(**(data.get("resources") or {})),
                              "security": SecurityOptions(**sec)})


def _record_to_json(record: SandboxRecord | ContainerRecord) -> bytes:
    data = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    data["config"] = _to_json(record.config)
    return json.dumps(data, indent=1, sort_keys=True).encode()


# -- the store ------------------------------------------------------------------------------


class Store:
    """Records under ``root``, cached in memory; one process writes at a time."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}

    # paths
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def sandbox_dir(self, sid: str) -> str:
        return self.path("sandboxes", sid)

    def container_dir(self, cid: str) -> str:
        return self.path("containers", cid)

    def ensure_layout(self) -> None:
        for sub in ("runc", "exits", "sockets", "netns", "ns", "sandboxes", "containers", "execs"):
            os.makedirs(self.path(sub), mode=0o711, exist_ok=True)

    # load / save
    def load(self) -> None:
        """Read every record from disk (skipping half-written directories)."""
        self.sandboxes = {r.id: r for r in self._load_dir("sandboxes", "sandbox.json",
                                                           self._sandbox_from)}
        self.containers = {r.id: r for r in self._load_dir("containers", "container.json",
                                                            self._container_from)}

    def _load_dir(self, sub: str, name: str, parse: Any) -> list[Any]:
        out = []
        base = self.path(sub)
        for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            try:
                with open(os.path.join(base, entry, name), "rb") as f:
                    out.append(parse(json.load(f)))
            except (OSError, ValueError, TypeError, KeyError):
                continue
        return out

    @staticmethod
    def _sandbox_from(data: dict[str, Any]) -> SandboxRecord:
        return SandboxRecord(**{**data, "config": sandbox_config_from(data["config"])})

    @staticmethod
    def _container_from(data: dict[str, Any]) -> ContainerRecord:
        return ContainerRecord(**{**data, "config": container_config_from(data["config"])})

    def save_sandbox(self, record: SandboxRecord) -> None:
        os.makedirs(self.sandbox_dir(record.id), exist_ok=True)
        atomic_write(os.path.join(self.sandbox_dir(record.id), "sandbox.json"),
                     _record_to_json(record), sync=False)
        self.sandboxes[record.id] = record

    def save_container(self, record: ContainerRecord) -> None:
        os.makedirs(self.container_dir(record.id), exist_ok=True)
        atomic_write(os.path.join(self.container_dir(record.id), "container.json"),
                     _record_to_json(record), sync=False)
        self.containers[record.id] = record

    def delete_sandbox(self, sid: str) -> None:
        shutil.rmtree(self.sandbox_dir(sid), ignore_errors=True)
        self.sandboxes.pop(sid, None)

    def delete_container(self, cid: str) -> None:
        shutil.rmtree(self.container_dir(cid), ignore_errors=True)
        self.containers.pop(cid, None)

    def write_settings(self, settings: dict[str, Any]) -> None:
        atomic_write(self.path("runtime.json"), json.dumps(settings, indent=1).encode())

    def read_settings(self) -> dict[str, Any]:
        try:
            with open(self.path("runtime.json")) as f:
                return dict(json.load(f))
        except (OSError, ValueError):
            return {}
