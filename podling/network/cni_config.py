"""Pure CNI plumbing: the network config list, plugin stdin and environment, results, errors.

Everything here follows the CNI specification 1.0.0 and does no I/O, so it is unit-tested with
tables. ``cni.py`` executes what these functions build.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from podling.network.interface import NetworkError, PodIPs, PodNetworkInfo, PortMapping

CNI_VERSION = "1.0.0"
REQUIRED_PLUGINS = ("bridge", "host-local", "portmap")
PLUGIN_DIR_CANDIDATES = ("/usr/lib/cni", "/opt/cni/bin")

_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")


def default_plugin_dir() -> str:
    """The first existing directory of PLUGIN_DIR_CANDIDATES (the first one if none exists)."""
    for candidate in PLUGIN_DIR_CANDIDATES:
        if os.path.isdir(candidate):
            return candidate
    return PLUGIN_DIR_CANDIDATES[0]


@dataclass(frozen=True)
class CniConfig:
    """How one agent's pod network looks. Two agents on one machine need different
    ``bridge_name``, ``pod_cidr`` and ``state_dir`` (and should use different ``network_name``).

    ``state_dir`` holds everything podling's CNI use writes on disk: ``results/`` (the cache of
    ADD results, like libcni's) and ``ipam/`` (host-local's ``dataDir``).
    """

    state_dir: str
    pod_cidr: str = "10.42.0.0/24"
    extra_pod_cidrs: tuple[str, ...] = ()
    network_name: str = "podling"
    bridge_name: str = "podling0"
    plugin_dir: str = ""
    mtu: int | None = None
    plugin_timeout: float = 20.0
    ifname: str = "eth0"

    def __post_init__(self) -> None:
        if not self.plugin_dir:
            object.__setattr__(self, "plugin_dir", default_plugin_dir())

    @property
    def pod_cidrs(self) -> tuple[str, ...]:
        """Every pod CIDR, the primary (``pod_cidr``) first."""
        return (self.pod_cidr, *self.extra_pod_cidrs)

    @property
    def results_dir(self) -> str:
        return os.path.join(self.state_dir, "results")

    @property
    def ipam_dir(self) -> str:
        return os.path.join(self.state_dir, "ipam")

    def problems(self) -> list[str]:
        """Why this config cannot work (empty when it is valid). Pure: no file checks."""
        out: list[str] = []
        if not _NETWORK_NAME.match(self.network_name):
            out.append(f"invalid network name {self.network_name!r}")
        if not _IFNAME.match(self.bridge_name):
            out.append(f"invalid bridge name {self.bridge_name!r} (1-15 chars, no '/', ':')")
        if not _IFNAME.match(self.ifname):
            out.append(f"invalid interface name {self.ifname!r}")
        families = []
        for cidr in self.pod_cidrs:
            try:
                families.append(ipaddress.ip_network(cidr, strict=True).version)
            except ValueError as err:
                out.append(f"invalid pod CIDR {cidr!r}: {err}")
        if len(set(families)) != len(families):
            out.append("at most one pod CIDR per IP family")
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            out.append(f"invalid MTU {self.mtu}")
        if self.plugin_timeout <= 0:
            out.append("plugin_timeout must be positive")
        return out


def build_conflist(config: CniConfig, *, portmap: bool = True) -> dict[str, Any]:
    """The network configuration list: bridge (host-local IPAM) then, with ``portmap``
    (a pod with hostPorts), portmap. The list ADD used is cached and DEL runs exactly it."""
    ranges = [[{"subnet": cidr}] for cidr in config.pod_cidrs]
    routes = [{"dst": _default_route(cidr)} for cidr in config.pod_cidrs]
    bridge: dict[str, Any] = {
        "type": "bridge",
        "bridge": config.bridge_name,
        "isGateway": True,
        "ipMasq": False,  # one node-level rule instead (masquerade.py)
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "routes": routes,
            "dataDir": config.ipam_dir,
        },
    }
    if config.mtu is not None:
        bridge["mtu"] = config.mtu
    plugins = [bridge]
    if portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True},
                        "snat": True})
    return {"cniVersion": CNI_VERSION, "name": config.network_name, "plugins": plugins}


def _default_route(cidr: str) -> str:
    return "0.0.0.0/0" if ipaddress.ip_network(cidr).version == 4 else "::/0"


def runtime_port_mappings(mappings: tuple[PortMapping, ...]) -> list[dict[str, Any]]:
    """The ``portMappings`` capability argument, in the CNI conventions' spelling."""
    out = []
    for m in mappings:
        entry: dict[str, Any] = {
            "hostPort": m.host_port,
            "containerPort": m.container_port,
            "protocol": m.protocol.lower(),
        }
        if m.host_ip:
            entry["hostIP"] = m.host_ip
        out.append(entry)
    return out


def plugin_stdin(
    conflist: dict[str, Any],
    plugin: dict[str, Any],
    *,
    capability_args: dict[str, Any],
    prev_result: dict[str, Any] | None,
) -> bytes:
    """The JSON a plugin reads: its own config plus ``name``, ``cniVersion``, the
    ``runtimeConfig`` for the capabilities it declares, and ``prevResult`` when given."""
    conf = dict(plugin)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    wanted = {k for k, on in plugin.get("capabilities", {}).items() if on}
    runtime = {k: v for k, v in capability_args.items() if k in wanted}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return json.dumps(conf, sort_keys=True).encode()


def cni_args(pod: PodNetworkInfo) -> str:
    """CNI_ARGS as kubelet/containerd send them (IgnoreUnknown lets plugins skip K8S_*)."""
    pairs = [
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", pod.namespace),
        ("K8S_POD_NAME", pod.name),
        ("K8S_POD_INFRA_CONTAINER_ID", pod.sandbox_id),
        ("K8S_POD_UID", pod.uid),
    ]
    for key, value in pairs:
        if any(c in value for c in ";="):
            raise NetworkError(f"invalid CNI argument {key}={value!r}")
    return ";".join(f"{k}={v}" for k, v in pairs)


def plugin_env(
    base: dict[str, str],
    *,
    command: str,
    container_id: str,
    netns: str,
    ifname: str,
    args: str,
    cni_path: str,
) -> dict[str, str]:
    """The plugin's environment: ``base`` without stray CNI_* variables, plus the CNI ones."""
    if not _CONTAINER_ID.match(container_id):
        raise NetworkError(f"invalid CNI container ID {container_id!r}")
    env = {k: v for k, v in base.items() if not k.startswith("CNI_")}
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=container_id,
        CNI_NETNS=netns,
        CNI_IFNAME=ifname,
        CNI_ARGS=args,
        CNI_PATH=cni_path,
    )
    return env


def parse_result(stdout: bytes, plugin_type: str) -> dict[str, Any]:
    """Decode a successful ADD's result; raise NetworkError if it is not a CNI result."""
    try:
        result = json.loads(stdout)
    except ValueError as err:
        raise NetworkError(f"plugin {plugin_type} returned invalid JSON: {err}") from err
    if not isinstance(result, dict) or "cniVersion" not in result:
        raise NetworkError(f"plugin {plugin_type} returned no CNI result")
    return result


def parse_error(
    stdout: bytes, stderr: bytes, returncode: int, *, plugin_type: str, command: str
) -> NetworkError:
    """Turn a failed plugin run into NetworkError: the CNI error JSON's msg when there is
    one (with its code and details), else stderr, else the exit code."""
    prefix = f"plugin type={plugin_type!r} failed ({command.lower()})"
    try:
        err = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        err = None
    if isinstance(err, dict) and "msg" in err:
        details = str(err.get("details") or "")
        code = err.get("code") if isinstance(err.get("code"), int) else None
        text = f"{prefix}: {err['msg']}" + (f": {details}" if details else "")
        return NetworkError(text, code=code, details=details)
    tail = (stderr or stdout).decode(errors="replace").strip()[-2000:]
    return NetworkError(f"{prefix}: {tail or f'exit status {returncode}'}")


def result_to_pod_ips(result: dict[str, Any], ifname: str) -> PodIPs:
    """The pod's addresses from a final CNI result: those on the sandbox's ``ifname``
    (or on no particular interface), in result order; the gateway of the first one."""
    interfaces = result.get("interfaces") or []
    ips: list[str] = []
    prefixes: list[int] = []
    gateway: str | None = None
    for entry in result.get("ips") or []:
        index = entry.get("interface")
        if index is not None and 0 <= index < len(interfaces):
            iface = interfaces[index]
            if iface.get("name") != ifname or not iface.get("sandbox"):
                continue
        iface_addr = ipaddress.ip_interface(entry["address"])
        ips.append(str(iface_addr.ip))
        prefixes.append(iface_addr.network.prefixlen)
        if gateway is None and entry.get("gateway"):
            gateway = entry["gateway"]
    return PodIPs(ips=tuple(ips), gateway=gateway, prefix_lengths=tuple(prefixes))


def cache_file_name(network_name: str, container_id: str, ifname: str) -> str:
    """The result cache's file name (libcni's ``<network>-<container>-<ifname>`` scheme)."""
    return f"{network_name}-{container_id}-{ifname}"


def cache_entry(
    *,
    conflist: dict[str, Any],
    pod: PodNetworkInfo,
    ifname: str,
    netns: str,
    capability_args: dict[str, Any],
    result: dict[str, Any],
) -> dict[str, Any]:
    """What the cache keeps about one attachment: enough to run DEL after a restart."""
    return {
        "kind": "podlingCniCacheV1",
        "containerId": pod.sandbox_id,
        "ifName": ifname,
        "networkName": conflist["name"],
        "netns": netns,
        "cniArgs": cni_args(pod),
        "capabilityArgs": capability_args,
        "config": conflist,
        "result": result,
    }


def parse_cache_entry(raw: bytes) -> dict[str, Any] | None:
    """Decode a cache file; None when it is unreadable or not ours (treated as absent)."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("kind") != "podlingCniCacheV1":
        return None
    if not isinstance(entry.get("config"), dict) or "plugins" not in entry["config"]:
        return None
    return entry


def supports_version(version_stdout: bytes, version: str = CNI_VERSION) -> bool:
    """Whether a plugin's VERSION answer lists ``version`` among its supported versions."""
    try:
        info = json.loads(version_stdout)
    except ValueError:
        return False
    return isinstance(info, dict) and version in (info.get("supportedVersions") or [])
