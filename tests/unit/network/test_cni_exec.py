"""CniNetwork's execution of plugins, against scripted stand-in plugins (no root needed).

Each stand-in logs its CNI environment and stdin to a JSON-lines file and acts per a
behaviour file: ``{"bridge:ADD": "error" | "hang" | "garbage"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest

from podling.network import iptables, masquerade, procs
from podling.network.cni import CniNetwork
from podling.network.cni_config import CniConfig
from podling.network.interface import NetworkError, PodNetworkInfo, PortMapping

PLUGIN = r'''#!{python}
import json, os, sys, time
t = os.path.basename(sys.argv[0])
cmd = os.environ.get("CNI_COMMAND")
stdin = sys.stdin.read()
d = os.path.dirname(sys.argv[0])
with open(os.path.join(d, "log.jsonl"), "a") as f:
    f.write(json.dumps({{"type": t, "env": {{k: v for k, v in os.environ.items()
                        if k.startswith("CNI_")}}, "stdin": json.loads(stdin or "null")}}) + "\n")
behaviour = json.load(open(os.path.join(d, "behaviour.json")))
act = behaviour.get(f"{{t}}:{{cmd}}")
if act == "hang":
    with open(os.path.join(d, "pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
if act == "error":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "injected failure",
                      "details": t}}))
    sys.exit(1)
if act == "garbage":
    print("garbage"); sys.exit(0)
if cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}}))
elif cmd == "ADD":
    conf = json.loads(stdin)
    if t == "bridge":
        print(json.dumps({{"cniVersion": "1.0.0", "interfaces": [
            {{"name": "br"}}, {{"name": "eth0", "sandbox": os.environ["CNI_NETNS"]}}],
            "ips": [{{"interface": 1, "address": "10.42.0.7/24", "gateway": "10.42.0.1"}}]}}))
    else:
        print(json.dumps(conf["prevResult"]))
'''

POD = PodNetworkInfo("default", "web", "uid-1", "sb1", (PortMapping(80, 8080),))
PLAIN = PodNetworkInfo("default", "plain", "uid-2", "sb2")  # no hostPorts


@pytest.fixture
def env(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name in ("bridge", "host-local", "portmap"):
        path = plugins / name
        path.write_text(PLUGIN.format(python=sys.executable))
        path.chmod(0o755)
    (plugins / "behaviour.json").write_text("{}")
    netns = tmp_path / "netns"
    netns.write_text("")
    cfg = CniConfig(state_dir=str(tmp_path / "state"), plugin_dir=str(plugins),
                    network_name="unitnet", bridge_name="unitbr0", plugin_timeout=5)
    net = CniNetwork(cfg, base_env={"PATH": stub_iptables(tmp_path)},
                     loopback_up=lambda path: _log_lo(plugins, path))
    return net, plugins, str(netns)


def _log_lo(plugins, path: str) -> None:
    """Stand-in for the in-process ``lo`` up (which needs root and a real netns)."""
    with open(plugins / "log.jsonl", "a") as f:
        f.write(json.dumps({"type": "lo-up", "env": {"CNI_NETNS": path}, "stdin": None}) + "\n")


NAT = r"""*nat
:POSTROUTING ACCEPT [0:0]
:CNI-0123456789abcdef01234567 - [0:0]
-A POSTROUTING -s 10.42.0.7/32 -m comment --comment "name: \"unitnet\" id: \"sb1\"" -j CNI-0123456789abcdef01234567
COMMIT
"""


def stub_iptables(tmp_path) -> str:
    """A PATH with iptables / iptables-save stand-ins: the host's firewall is never touched.
    iptables-save prints NAT (one leaked ipMasq rule of sb1); iptables logs its arguments."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tmp_path / "nat.txt").write_text(NAT)
    scripts = {
        "iptables-save": f"#!/bin/sh\nexec /bin/cat {tmp_path}/nat.txt\n",
        "iptables": f'#!/bin/sh\necho "$@" >> {tmp_path}/iptables.log\n',
    }
    for name, text in scripts.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    return str(tools)


def behave(plugins, **acts) -> None:
    (plugins / "behaviour.json").write_text(json.dumps({k.replace("_", ":"): v
                                                        for k, v in acts.items()}))


def log(plugins) -> list[dict]:
    path = plugins / "log.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return entries


def calls(entries) -> list[str]:
    return [f"{e['type']}:{e['env'].get('CNI_COMMAND')}" for e in entries]


async def test_add_chains_results_and_caches(env):
    net, plugins, netns = env
    ips = await net.setup_pod(netns, POD)
    assert ips.ips == ("10.42.0.7",) and ips.gateway == "10.42.0.1"
    entries = log(plugins)
    assert calls(entries) == ["lo-up:None", "bridge:ADD", "portmap:ADD"]
    lo, bridge, portmap = entries
    assert lo["env"]["CNI_NETNS"] == netns
    assert bridge["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "sb1", "CNI_NETNS": netns,
                             "CNI_IFNAME": "eth0", "CNI_PATH": str(plugins),
                             "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;"
                             "K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"}
    assert "prevResult" not in bridge["stdin"] and bridge["stdin"]["name"] == "unitnet"
    assert portmap["stdin"]["prevResult"]["ips"][0]["address"] == "10.42.0.7/24"
    assert portmap["stdin"]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert net.attached_sandboxes() == ["sb1"]
    assert net.cached_result("sb1")["ips"][0]["address"] == "10.42.0.7/24"


async def test_del_reverse_with_cached_prev_result_after_restart(env):
    net, plugins, netns = env
    await net.setup_pod(netns, POD)
    log(plugins)
    restarted = CniNetwork(net.config)  # a new agent process: only the cache survives
    await restarted.teardown_pod(netns, PodNetworkInfo("default", "web", "uid-1", "sb1"))
    entries = log(plugins)
    assert calls(entries) == ["portmap:DEL", "bridge:DEL"]  # lo goes with the netns
    portmap, bridge = entries
    assert portmap["stdin"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080
    assert bridge["stdin"]["prevResult"]["ips"][0]["address"] == "10.42.0.7/24"
    assert restarted.attached_sandboxes() == []


async def test_teardown_without_cache_or_netns(env):
    net, plugins, _ = env
    await net.teardown_pod("/nonexistent/netns", POD)
    await net.teardown_pod(None, POD)
    entries = log(plugins)
    assert calls(entries) == ["portmap:DEL", "bridge:DEL"] * 2  # no cache: portmap to be sure
    assert all(e["env"]["CNI_NETNS"] == "" for e in entries)
    assert "prevResult" not in entries[1]["stdin"]
    assert entries[0]["stdin"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080


async def test_pod_without_host_ports_runs_no_portmap(env, tmp_path):
    net, plugins, netns = env
    await net.setup_pod(netns, PLAIN)
    assert calls(log(plugins)) == ["lo-up:None", "bridge:ADD"]
    await CniNetwork(net.config, base_env={"PATH": str(tmp_path / "tools")}).teardown_pod(
        netns, PLAIN)  # after a restart too: DEL runs the cached list, no portmap
    assert calls(log(plugins)) == ["bridge:DEL"]


async def test_ipmasq_sweep_only_when_the_netns_is_gone(env, tmp_path):
    net, plugins, netns = env
    iptables_log = tmp_path / "iptables.log"
    await net.setup_pod(netns, PLAIN)
    await net.teardown_pod(netns, PLAIN)  # the bridge plugin removes its own rules
    # only the check that the node's masquerade rule is there (the stub says it is)
    assert iptables_log.read_text().splitlines() == [
        '-w 5 -t nat -C POSTROUTING -s 10.42.0.0/24 -m comment --comment '
        'name: "unitnet" id: "node" -j ' + masquerade.chain_name("unitnet", "10.42.0.0/24")]
    await net.setup_pod(netns, POD)
    await net.teardown_pod("/nonexistent/netns", POD)  # netns gone: sweep sb1's leftovers
    assert "-D POSTROUTING -s 10.42.0.7/32" in iptables_log.read_text()


async def test_add_error_is_reported_and_undone(env):
    net, plugins, netns = env
    behave(plugins, portmap_ADD="error")
    with pytest.raises(NetworkError) as info:
        await net.setup_pod(netns, POD)
    assert "injected failure: portmap" in str(info.value) and info.value.code == 11
    assert calls(log(plugins)) == ["lo-up:None", "bridge:ADD", "portmap:ADD",
                                   "portmap:DEL", "bridge:DEL"]
    assert net.attached_sandboxes() == []


async def test_garbage_result(env):
    net, plugins, netns = env
    behave(plugins, bridge_ADD="garbage")
    with pytest.raises(NetworkError, match="invalid JSON"):
        await net.setup_pod(netns, POD)


async def test_del_tries_every_plugin_then_raises(env):
    net, plugins, netns = env
    behave(plugins, portmap_DEL="error")
    with pytest.raises(NetworkError, match="injected failure"):
        await net.teardown_pod(netns, POD)
    assert calls(log(plugins)) == ["portmap:DEL", "bridge:DEL"]


async def test_timeout_kills_plugin(env):
    net, plugins, netns = env
    object.__setattr__(net.config, "plugin_timeout", 1.0)
    behave(plugins, bridge_ADD="hang")
    start = time.monotonic()
    with pytest.raises(NetworkError, match="timed out"):
        await net.setup_pod(netns, POD)
    assert time.monotonic() - start < 5
    pid = int((plugins / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_cancellation_kills_plugin_and_undoes(env):
    net, plugins, netns = env
    behave(plugins, bridge_ADD="hang")
    task = asyncio.ensure_future(net.setup_pod(netns, POD))
    for _ in range(100):
        if (plugins / "pid").exists():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(int((plugins / "pid").read_text()), 0)
    assert calls(log(plugins))[-2:] == ["portmap:DEL", "bridge:DEL"]


async def test_setup_rejects_missing_netns_and_bad_config(env, tmp_path):
    net, _, _ = env
    with pytest.raises(NetworkError, match="does not exist"):
        await net.setup_pod(str(tmp_path / "gone"), POD)
    bad = CniNetwork(CniConfig(state_dir=str(tmp_path), bridge_name="x" * 16))
    with pytest.raises(NetworkError, match="invalid bridge name"):
        await bad.setup_pod(str(tmp_path), POD)


async def test_ready(env, tmp_path):
    net, plugins, _ = env
    assert await net.ready() is True
    missing = CniNetwork(CniConfig(state_dir=str(tmp_path), plugin_dir=str(tmp_path / "none")))
    assert await missing.ready() is False
    assert any("bridge not found" in p for p in await missing.readiness_problems())
    behave(plugins, bridge_VERSION="garbage")
    fresh = CniNetwork(net.config)
    assert "does not support CNI 1.0.0" in " ".join(await fresh.readiness_problems())


async def test_purge_removes_state(env):
    net, plugins, netns = env
    await net.setup_pod(netns, POD)
    ipam = os.path.join(net.config.ipam_dir, "unitnet")
    os.makedirs(ipam)
    with open(os.path.join(ipam, "10.42.0.9"), "w") as f:
        f.write("orphan\r\neth0")
    log(plugins)
    await net.purge()
    dels = [e for e in log(plugins) if e["env"]["CNI_COMMAND"] == "DEL"]
    assert {e["env"]["CNI_CONTAINERID"] for e in dels} == {"sb1", "orphan"}
    assert not os.path.exists(net.config.state_dir)
    await net.purge()  # idempotent


async def test_procs_run_reports_exec_failure():
    with pytest.raises(NetworkError, match="cannot run"):
        await procs.run(["/nonexistent/binary"], timeout=1)


async def test_setup_of_attached_sandbox_is_idempotent(env, tmp_path):
    net, plugins, netns = env
    first = await net.setup_pod(netns, POD)
    log(plugins)
    assert await net.setup_pod(netns, POD) == first
    assert log(plugins) == []  # answered from the cache
    other = tmp_path / "other-netns"
    other.write_text("")
    await net.setup_pod(str(other), POD)  # a new netns for the same ID: DEL, then ADD
    assert calls(log(plugins)) == ["portmap:DEL", "bridge:DEL",
                                   "lo-up:None", "bridge:ADD", "portmap:ADD"]


async def test_teardown_sweeps_leaked_ipmasq_rules(env, tmp_path):
    net, _, _ = env
    await net.teardown_pod(None, POD)
    lines = (tmp_path / "iptables.log").read_text().splitlines()
    assert lines[0].startswith("-w 5 -t nat -D POSTROUTING -s 10.42.0.7/32 -m comment")
    assert lines[1:] == ["-w 5 -t nat -F CNI-0123456789abcdef01234567",
                         "-w 5 -t nat -X CNI-0123456789abcdef01234567"]


async def test_node_masquerade_is_installed_once_when_missing(tmp_path):
    """The first pod's setup installs the node's rules: chain, its two rules, then the jump
    (iptables here is a stand-in whose -C says "missing")."""
    log_file = tmp_path / "iptables.log"
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "iptables").write_text(
        f'#!/bin/sh\necho "$@" >> {log_file}\ncase "$*" in *" -C "*) exit 1;; esac\n')
    (tools / "iptables").chmod(0o755)
    await masquerade.ensure("unitnet", "10.42.0.0/24", timeout=5,
                            env={"PATH": f"{tools}:/usr/bin:/bin"})
    chain = masquerade.chain_name("unitnet", "10.42.0.0/24")
    assert log_file.read_text().splitlines() == [
        f'-w 5 -t nat -C POSTROUTING -s 10.42.0.0/24 -m comment --comment '
        f'name: "unitnet" id: "node" -j {chain}',
        f"-w 5 -t nat -N {chain}",
        f"-w 5 -t nat -F {chain}",
        f"-w 5 -t nat -A {chain} -d 10.42.0.0/24 -j ACCEPT",
        f"-w 5 -t nat -A {chain} ! -d 224.0.0.0/4 -j MASQUERADE",
        f'-w 5 -t nat -A POSTROUTING -s 10.42.0.0/24 -m comment --comment '
        f'name: "unitnet" id: "node" -j {chain}']


def test_node_masquerade_rules_are_swept_with_the_network():
    """purge's sweep (iptables.plan_sweep) finds the node's jump and chain as its own."""
    chain = masquerade.chain_name("unitnet", "10.42.0.0/24")
    saved = (f":POSTROUTING ACCEPT [0:0]\n:{chain} - [0:0]\n"
             f'-A POSTROUTING -s 10.42.0.0/24 -m comment --comment '
             f'"name: \\"unitnet\\" id: \\"node\\"" -j {chain}\n'
             f"-A {chain} -d 10.42.0.0/24 -j ACCEPT\n")
    for cidrs in (("10.42.0.0/24",), ()):  # purge may not know the CIDR: the id suffices
        sweep = iptables.plan_sweep(saved, network="unitnet", ids={masquerade.NODE_ID},
                                    cidrs=cidrs)
        assert sweep.chains == [chain] and len(sweep.rules) == 1
