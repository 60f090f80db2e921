"""CniNetwork: the NetworkPlugin that runs the standard CNI plugins per the CNI spec 1.0.0.

Each pod gets ``lo`` up and one attachment::

    lo up, in-process (util/netns.py: setns in a short-lived thread + ioctl; what CNI's
          loopback plugin does, without a program run)
    ADD bridge [-> portmap] ("podling", ifname eth0) -- veth on our bridge, host-local IP;
                                                      portmap only for a pod with
                                                      hostPorts; result cached
    ...
    DEL [portmap ->] bridge (reverse, the cached conflist and prevResult; IPAM released)
    (lo needs no DEL: it goes with the netns)

Per pod without hostPorts that is two plugin runs (bridge ADD, bridge DEL, each with its
host-local and iptables children), where it was six (loopback, bridge and portmap, ADD and
DEL) plus an ``iptables-save``: the ipMasq sweep after DEL runs only when the netns is
already gone (the one case in which the bridge plugin leaves its rules behind: only pods
set up before ipMasq moved to the node). Outbound traffic is masqueraded by one node-level
rule per pod CIDR (masquerade.py), installed at the first pod's setup, instead of the bridge
plugin's ipMasq rules per pod.

The final ADD result, the config list and the capability arguments are cached in
``<state_dir>/results`` (like libcni's cache), so DEL after an agent restart uses exactly what
ADD used. host-local keeps its allocations in ``<state_dir>/ipam``: everything is ours and
``purge`` can remove it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from podling.network import cni_config as cc
from podling.network import iptables, masquerade, procs
from podling.network.cni_config import CniConfig
from podling.network.interface import NetworkError, PodIPs, PodNetworkInfo
from podling.util import failpoints, netns
from podling.util.mounts import is_mountpoint
from podling.util.files import atomic_write

log = logging.getLogger(__name__)
OWNERLESS_SECONDS = 60.0  # a reservation file with no owner this old was left by a killed plugin


@dataclass(frozen=True)
class _Attachment:
    """Everything one DEL (or ADD) of the main network needs."""

    container_id: str
    args: str
    netns: str
    conflist: dict[str, Any]
    capability_args: dict[str, Any]
    prev_result: dict[str, Any] | None


class CniNetwork:
    """Pod networking with bridge + host-local, portmap for hostPorts, and `lo` up in-process.

    Calls for one pod must be serialized by the caller; different pods may run concurrently
    (host-local and iptables take their own locks). Every plugin run has
    ``config.plugin_timeout`` and is killed on timeout or cancellation.
    """

    def __init__(self, config: CniConfig, *, base_env: dict[str, str] | None = None,
                 loopback_up: Callable[[str], None] = netns.loopback_up) -> None:
        """``base_env`` (default: this process's environment) is what plugins and the
        iptables / ip helpers run with; its PATH must find iptables. ``loopback_up(path)``
        sets ``lo`` up in the netns at ``path`` (blocking; run in a thread): the in-process
        one by default, a stand-in for tests without root."""
        self.config = config
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._loopback_up = loopback_up
        self._version_ok = False
        self._masquerading: asyncio.Task[None] | None = None

    # ---- NetworkPlugin -------------------------------------------------------------------

    async def setup_pod(self, netns_path: str, pod: PodNetworkInfo) -> PodIPs:
        """Attach ``lo`` and ``eth0`` in ``netns_path``; see NetworkPlugin.setup_pod.

        Idempotent for an attached sandbox: when the cache holds an attachment of this
        sandbox in the same netns, its addresses are returned without running any plugin.
        """
        problems = self.config.problems()
        if problems:
            raise NetworkError("invalid network config: " + "; ".join(problems))
        if not os.path.exists(netns_path):
            raise NetworkError(f"network namespace {netns_path} does not exist")
        cid = pod.sandbox_id
        cached = await asyncio.to_thread(self._read_cache, cid)
        if cached is not None and cached.get("netns") == netns_path:
            return cc.result_to_pod_ips(cached["result"], self.config.ifname)
        if cached is not None:  # same sandbox ID, another netns: start over
            await self.teardown_pod(cached.get("netns"), pod)
        args = cc.cni_args(pod)
        try:
            await asyncio.to_thread(self._loopback_up, netns_path)
        except OSError as exc:
            raise NetworkError(f"cannot set lo up in {netns_path}: {exc}") from exc
        await self._ensure_masquerade()
        conflist = cc.build_conflist(self.config, portmap=bool(pod.port_mappings))
        caps = {"portMappings": cc.runtime_port_mappings(pod.port_mappings)}
        try:
            result = await self._add_list(conflist, cid, args, netns_path, self.config.ifname,
                                          caps)
            entry = cc.cache_entry(conflist=conflist, pod=pod, ifname=self.config.ifname,
                                   netns=netns_path, capability_args=caps, result=result)
            await asyncio.to_thread(self._write_cache, cid, entry)
        except BaseException:
            undo = _Attachment(cid, args, netns_path, conflist, caps, None)
            await _shielded(self._undo_failed_add(undo))
            raise
        ips = cc.result_to_pod_ips(result, self.config.ifname)
        if not ips.ips:
            await _shielded(self.teardown_pod(netns_path, pod))
            raise NetworkError(f"network {conflist['name']} assigned no IP to the pod")
        return ips

    async def teardown_pod(self, netns_path: str | None, pod: PodNetworkInfo) -> None:
        """DEL both attachments and sweep leftovers; see NetworkPlugin.teardown_pod."""
        cid = pod.sandbox_id
        # a namespace that was never made (a path only: its maker was killed) is none
        netns = netns_path if netns_path and os.path.exists(netns_path) and \
            await asyncio.to_thread(is_mountpoint, netns_path) else ""
        entry = await asyncio.to_thread(self._read_cache, cid)
        if entry is not None:
            att = _Attachment(cid, entry["cniArgs"], netns, entry["config"],
                              entry.get("capabilityArgs") or {}, entry.get("result"))
        else:
            caps = {"portMappings": cc.runtime_port_mappings(pod.port_mappings)}
            att = _Attachment(cid, cc.cni_args(pod), netns, cc.build_conflist(self.config),
                              caps, None)
        await self._del_attachment(att, sweep=not netns)
        await asyncio.to_thread(self._remove_cache, cid)

    async def ready(self) -> bool:
        """True when the plugins are present, support CNI 1.0.0 and the config is valid."""
        return not await self.readiness_problems()

    async def collect_garbage(self, live: Callable[[], Awaitable[set[str]]]) -> list[str]:
        """Release (DEL) the attachments, cached ADD results and host-local reservations,
        of sandboxes ``live()`` does not name, as CNI's GC does; and remove reservations
        that name no owner once older than :data:`OWNERLESS_SECONDS` (a plugin killed
        between creating the file and writing its owner). See the protocol for ``live``."""
        found = set(self.attached_sandboxes()) | set(self._ipam_owners())
        await asyncio.to_thread(self._remove_ownerless_reservations)
        doomed = sorted(found - await live())
        for cid in doomed:
            await self.teardown_pod(None, _purge_pod(cid))
        return doomed

    def _remove_ownerless_reservations(self) -> None:
        net_dir = os.path.join(self.config.ipam_dir, self.config.network_name)
        cutoff = time.time() - OWNERLESS_SECONDS
        for name in _reservations(net_dir):
            path = os.path.join(net_dir, name)
            with contextlib.suppress(OSError):
                with open(path, encoding="utf-8", errors="replace") as f:
                    owned = bool(f.read().strip())
                if not owned and os.path.getmtime(path) < cutoff:
                    log.info("removing the reservation of %s, which names no owner", name)
                    os.unlink(path)

    # ---- extras for the agent ------------------------------------------------------------

    async def readiness_problems(self) -> list[str]:
        """Human-readable reasons why pods cannot be networked (empty when ready); suitable
        for the node's NetworkUnavailable / Ready condition message."""
        problems = self.config.problems()
        for name in cc.REQUIRED_PLUGINS:
            path = os.path.join(self.config.plugin_dir, name)
            if not os.access(path, os.X_OK):
                problems.append(f"CNI plugin {name} not found in {self.config.plugin_dir}")
        if shutil.which("iptables", path=self._base_env.get("PATH")) is None:
            problems.append("iptables not found in PATH")
        if not problems and not self._version_ok:
            self._version_ok = await self._bridge_supports_version()
            if not self._version_ok:
                problems.append(f"CNI bridge plugin does not support CNI {cc.CNI_VERSION}")
        return problems

    def cached_result(self, sandbox_id: str) -> dict[str, Any] | None:
        """The cached final ADD result for a sandbox (None when not attached)."""
        entry = self._read_cache(sandbox_id)
        return entry["result"] if entry else None

    def attached_sandboxes(self) -> list[str]:
        """Sandbox IDs with a cached attachment (for the agent's garbage collection)."""
        prefix = f"{self.config.network_name}-"
        suffix = f"-{self.config.ifname}"
        try:
            names = os.listdir(self.config.results_dir)
        except FileNotFoundError:
            return []
        return sorted(n[len(prefix):-len(suffix)] for n in names
                      if n.startswith(prefix) and n.endswith(suffix))

    async def purge(self) -> None:
        """Remove everything this network created on the host: every cached or allocated
        attachment (DEL), leftover iptables rules and chains tagged with our network (the
        node's masquerade rule included, found by its id whatever the pod CIDR), portmap's
        shared ``CNI-HOSTPORT-*`` chains when no CNI user has a hostPort left, the bridge,
        the IPAM data and the cache. Idempotent. Call only with no pod running."""
        ids = set(self.attached_sandboxes()) | set(self._ipam_owners())
        for cid in sorted(ids):
            with contextlib.suppress(NetworkError):
                await self.teardown_pod(None, _purge_pod(cid))
        for ipv6 in self._families():
            await iptables.sweep_nat(network=self.config.network_name,
                                     ids=ids | {masquerade.NODE_ID},
                                     cidrs=self.config.pod_cidrs, ipv6=ipv6,
                                     timeout=self.config.plugin_timeout, env=self._base_env)
            await iptables.remove_unused_hostport_chains(
                ipv6=ipv6, timeout=self.config.plugin_timeout, env=self._base_env)
        await self._delete_bridge()
        await asyncio.to_thread(shutil.rmtree, self.config.state_dir, True)

    # ---- plugin execution ----------------------------------------------------------------

    async def _add_list(self, conflist: dict[str, Any], cid: str, args: str, netns: str,
                        ifname: str, caps: dict[str, Any]) -> dict[str, Any]:
        """Run ADD for each plugin in order, chaining prevResult; return the final result."""
        prev: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            stdin = cc.plugin_stdin(conflist, plugin, capability_args=caps, prev_result=prev)
            out = await self._exec(plugin["type"], "ADD", stdin, cid, args, netns, ifname)
            prev = cc.parse_result(out, plugin["type"])
        assert prev is not None
        return prev

    async def _del_list(self, conflist: dict[str, Any], att: _Attachment,
                        ifname: str) -> None:
        """Run DEL for each plugin in reverse order with the cached prevResult. Every plugin
        is tried; the first failure is raised at the end."""
        first: NetworkError | None = None
        for plugin in reversed(conflist["plugins"]):
            stdin = cc.plugin_stdin(conflist, plugin, capability_args=att.capability_args,
                                    prev_result=att.prev_result)
            try:
                await self._exec(plugin["type"], "DEL", stdin, att.container_id, att.args,
                                 att.netns, ifname)
            except NetworkError as err:
                first = first or err
        if first is not None:
            raise first

    async def _del_attachment(self, att: _Attachment, *, sweep: bool = True) -> None:
        """DEL the main network, then (``sweep``) remove the ipMasq rules the bridge plugin
        leaves behind when it cannot find the pod's addresses (the netns or its eth0 gone:
        a DEL without a netns, or the undo of a half-done ADD)."""
        await self._del_list(att.conflist, att, self.config.ifname)
        if not sweep:
            return
        for ipv6 in self._families():
            await iptables.sweep_nat(network=att.conflist["name"], ids={att.container_id},
                                     ipv6=ipv6, timeout=self.config.plugin_timeout,
                                     env=self._base_env)

    async def _undo_failed_add(self, att: _Attachment) -> None:
        try:
            await self._del_attachment(att)
            await asyncio.to_thread(self._remove_cache, att.container_id)
        except NetworkError as err:
            log.warning("cleanup after failed CNI ADD of %s failed: %s", att.container_id, err)

    async def _exec(self, plugin_type: str, command: str, stdin: bytes, cid: str, args: str,
                    netns: str, ifname: str) -> bytes:
        """Run one plugin; its stdout on success, NetworkError (with the plugin's CNI error
        message) on failure or timeout."""
        binary = os.path.join(self.config.plugin_dir, plugin_type)
        fault = failpoints.fire("cni.add") if command == "ADD" else None
        if fault is not None:  # a plugin that fails or hangs (tests and fault campaigns)
            binary = failpoints.stand_in(self.config.state_dir, plugin_type, fault, stdout=(
                f'{{"cniVersion": "{cc.CNI_VERSION}", "code": 999, '
                f'"msg": "failpoint cni.add: {plugin_type} failed"}}'))
        env = cc.plugin_env(self._base_env, command=command, container_id=cid, netns=netns,
                            ifname=ifname, args=args, cni_path=self.config.plugin_dir)
        res = await procs.run([binary], stdin=stdin, env=env,
                              timeout=self.config.plugin_timeout)
        if res.returncode != 0:
            raise cc.parse_error(res.stdout, res.stderr, res.returncode,
                                 plugin_type=plugin_type, command=command)
        return res.stdout

    async def _bridge_supports_version(self) -> bool:
        env = dict(self._base_env, CNI_COMMAND="VERSION")
        try:
            res = await procs.run([os.path.join(self.config.plugin_dir, "bridge")],
                                  stdin=b'{"cniVersion": "%s"}' % cc.CNI_VERSION.encode(),
                                  env=env, timeout=self.config.plugin_timeout)
        except NetworkError:
            return False
        return res.returncode == 0 and cc.supports_version(res.stdout)

    # ---- host state ----------------------------------------------------------------------

    async def _ensure_masquerade(self) -> None:
        """The node's masquerade rules (masquerade.py), installed by the first pod's setup;
        pods set up at the same time wait for the same attempt; a failed one is retried by
        the next pod."""
        if self._masquerading is None or (self._masquerading.done()
                                          and self._masquerading.exception() is not None):
            self._masquerading = asyncio.ensure_future(self._install_masquerade())
        await asyncio.shield(self._masquerading)

    async def _install_masquerade(self) -> None:
        for cidr in self.config.pod_cidrs:
            await masquerade.ensure(self.config.network_name, cidr,
                                    timeout=self.config.plugin_timeout, env=self._base_env)

    def _families(self) -> list[bool]:
        """[ipv6?] for each IP family of our pod CIDRs (False = IPv4)."""
        return sorted({":" in cidr for cidr in self.config.pod_cidrs})

    async def _delete_bridge(self) -> None:
        if not os.path.exists(f"/sys/class/net/{self.config.bridge_name}"):
            return
        res = await procs.run(["ip", "link", "del", self.config.bridge_name],
                              timeout=self.config.plugin_timeout, env=self._base_env)
        if res.returncode != 0 and os.path.exists(f"/sys/class/net/{self.config.bridge_name}"):
            raise NetworkError(f"cannot delete bridge {self.config.bridge_name}: "
                               f"{res.stderr.decode(errors='replace').strip()}")

    def _ipam_owners(self) -> list[str]:
        """Container IDs that own host-local allocations in our IPAM dir."""
        owners = []
        net_dir = os.path.join(self.config.ipam_dir, self.config.network_name)
        for name in _reservations(net_dir):
            with contextlib.suppress(OSError):
                with open(os.path.join(net_dir, name), encoding="utf-8") as f:
                    first = f.read().splitlines()
                if first and first[0].strip():
                    owners.append(first[0].strip())
        return owners

    def _cache_path(self, cid: str) -> str:
        name = cc.cache_file_name(self.config.network_name, cid, self.config.ifname)
        return os.path.join(self.config.results_dir, name)

    def _write_cache(self, cid: str, entry: dict[str, Any]) -> None:
        os.makedirs(self.config.results_dir, mode=0o700, exist_ok=True)
        atomic_write(self._cache_path(cid), json.dumps(entry).encode(), mode=0o600)

    def _read_cache(self, cid: str) -> dict[str, Any] | None:
        try:
            with open(self._cache_path(cid), "rb") as f:
                return cc.parse_cache_entry(f.read())
        except FileNotFoundError:
            return None

    def _remove_cache(self, cid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._cache_path(cid))



def _reservations(net_dir: str) -> list[str]:
    """The names of host-local's reservation files (one per address) in ``net_dir``."""
    try:
        names = os.listdir(net_dir)
    except FileNotFoundError:
        return []
    return [n for n in names if not n.startswith(("last_reserved_ip", "lock"))]


def _purge_pod(cid: str) -> PodNetworkInfo:
    """A stand-in identity for an attachment found only on disk (purge)."""
    return PodNetworkInfo(namespace="", name="", uid="", sandbox_id=cid)


async def _shielded(coro: Any) -> None:
    """Run cleanup to completion even if the caller is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
