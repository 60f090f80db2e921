"""Agent configuration."""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AgentConfig:
    """Everything one node agent needs; several agents on one machine differ in every path,
    the bridge name and the node name."""

    server_url: str
    token: str
    ca_file: str
    kubelet_client_token: str = ""  # what the node API accepts ("" → ``token``); see bootstrap
    image_pull_token: str = ""  # what every node API accepts under /v2/; see bootstrap
    node_name: str = field(default_factory=socket.gethostname)
    node_labels: dict[str, str] = field(default_factory=dict)
    node_taints: tuple[dict[str, str], ...] = ()  # registered with (kubelet --register-with-taints)
    data_dir: str = "/var/lib/podling"
    run_dir: str = "/run/podling"
    bridge_name: str = "podling0"
    cluster_domain: str = "cluster.local"
    cluster_dns: tuple[str, ...] = ()
    max_pods: int = 110
    heartbeat_seconds: float = 10.0
    lease_duration_seconds: int = 40
    resync_seconds: float = 30.0
    node_api_address: str = "0.0.0.0"  # where the node API listens ("127.0.0.1": local only)
    node_api_port: int = 10250  # 0: any free port
    # more servers of the cluster (sharing its datastore): used when server_url fails
    fallback_servers: tuple[str, ...] = ()
    # sysctls (names, or prefixes ending in *) pods may set beyond the safe ones
    allowed_unsafe_sysctls: tuple[str, ...] = ()
    # the most processes one pod may run (the kubelet's --pod-max-pids; -1: no limit)
    pod_max_pids: int = -1

    @property
    def pods_dir(self) -> str:
        """Per-pod files: ``<pods_dir>/<uid>/`` holds etc-hosts, volumes, container logs."""
        return os.path.join(self.data_dir, "agent", "pods")

    @property
    def seccomp_dir(self) -> str:
        """Where ``localhostProfile`` seccomp profiles are (the kubelet's
        /var/lib/kubelet/seccomp)."""
        return os.path.join(self.data_dir, "agent", "seccomp")

    @property
    def images_dir(self) -> str:
        return os.path.join(self.data_dir, "images")

    @property
    def runtime_root(self) -> str:
        return os.path.join(self.run_dir, "runtime")

    @property
    def cni_state_dir(self) -> str:
        return os.path.join(self.data_dir, "agent", "cni")

    @property
    def architecture(self) -> str:
        machine = platform.machine()
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
