"""Pure CNI plumbing: conflist, plugin stdin, environment, results, errors, iptables sweep."""

from __future__ import annotations

import json

import pytest

from podling.network import cni_config as cc
from podling.network.iptables import plan_hostport_cleanup, plan_sweep
from podling.network.interface import NetworkError, PodNetworkInfo, PortMapping

POD = PodNetworkInfo("default", "web", "uid-1", "sb1",
                     (PortMapping(80, 8080), PortMapping(53, 5353, "UDP", "127.0.0.1")))


def config(**kw) -> cc.CniConfig:
    return cc.CniConfig(state_dir="/var/lib/podling/cni", plugin_dir="/usr/lib/cni", **kw)


def test_conflist_bridge_and_portmap():
    conf = cc.build_conflist(config(pod_cidr="10.42.3.0/24", mtu=1400))
    assert conf["cniVersion"] == "1.0.0" and conf["name"] == "podling"
    bridge, portmap = conf["plugins"]
    assert bridge == {
        "type": "bridge", "bridge": "podling0", "isGateway": True, "ipMasq": False,
        "hairpinMode": True, "mtu": 1400,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.42.3.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}],
                 "dataDir": "/var/lib/podling/cni/ipam"},
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


def test_conflist_dual_stack_and_no_mtu():
    bridge = cc.build_conflist(config(extra_pod_cidrs=("fd00:42::/64",)))["plugins"][0]
    assert "mtu" not in bridge
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00:42::/64"}]]
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]


def test_conflist_without_portmap():
    conf = cc.build_conflist(config(), portmap=False)
    assert [p["type"] for p in conf["plugins"]] == ["bridge"]


@pytest.mark.parametrize("kw, problem", [
    ({}, None),
    ({"bridge_name": "a-very-long-bridge-name"}, "invalid bridge name"),
    ({"bridge_name": ""}, "invalid bridge name"),
    ({"network_name": "bad name"}, "invalid network name"),
    ({"pod_cidr": "10.42.0.1/24"}, "invalid pod CIDR"),
    ({"pod_cidr": "nonsense"}, "invalid pod CIDR"),
    ({"extra_pod_cidrs": ("10.43.0.0/24",)}, "one pod CIDR per IP family"),
    ({"mtu": 10}, "invalid MTU"),
    ({"plugin_timeout": 0}, "plugin_timeout"),
])
def test_config_problems(kw, problem):
    problems = config(**kw).problems()
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_config_paths_and_default_plugin_dir(tmp_path, monkeypatch):
    c = cc.CniConfig(state_dir=str(tmp_path))
    assert c.plugin_dir in cc.PLUGIN_DIR_CANDIDATES
    assert c.results_dir == f"{tmp_path}/results" and c.ipam_dir == f"{tmp_path}/ipam"
    monkeypatch.setattr(cc, "PLUGIN_DIR_CANDIDATES", ("/nonexistent/a", str(tmp_path)))
    assert cc.default_plugin_dir() == str(tmp_path)
    monkeypatch.setattr(cc, "PLUGIN_DIR_CANDIDATES", ("/nonexistent/a", "/nonexistent/b"))
    assert cc.default_plugin_dir() == "/nonexistent/a"


def test_port_mappings_capability():
    assert cc.runtime_port_mappings(POD.port_mappings) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
    ]


@pytest.mark.parametrize("kw", [
    {"container_port": 0, "host_port": 1}, {"container_port": 1, "host_port": 70000},
    {"container_port": 1, "host_port": 1, "protocol": "ICMP"},
    {"container_port": 1, "host_port": 1, "host_ip": "not-an-ip"},
])
def test_port_mapping_validation(kw):
    with pytest.raises(ValueError):
        PortMapping(**kw)


def test_plugin_stdin_runtime_config_only_for_declared_capabilities():
    conf = cc.build_conflist(config())
    caps = {"portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}],
            "bandwidth": {"x": 1}}
    prev = {"cniVersion": "1.0.0", "ips": []}
    bridge = json.loads(cc.plugin_stdin(conf, conf["plugins"][0], capability_args=caps,
                                        prev_result=None))
    assert bridge["name"] == "podling" and bridge["cniVersion"] == "1.0.0"
    assert "runtimeConfig" not in bridge and "prevResult" not in bridge
    portmap = json.loads(cc.plugin_stdin(conf, conf["plugins"][1], capability_args=caps,
                                         prev_result=prev))
    assert portmap["runtimeConfig"] == {"portMappings": caps["portMappings"]}
    assert portmap["prevResult"] == prev
    empty = json.loads(cc.plugin_stdin(conf, conf["plugins"][1], capability_args={},
                                       prev_result=None))
    assert "runtimeConfig" not in empty


def test_cni_args_and_env():
    args = cc.cni_args(POD)
    assert args == ("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
                    "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1")
    env = cc.plugin_env({"PATH": "/bin", "CNI_COMMAND": "stale", "CNI_FOO": "x"},
                        command="ADD", container_id="sb1", netns="/run/netns/x",
                        ifname="eth0", args=args, cni_path="/usr/lib/cni")
    assert env == {"PATH": "/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "sb1",
                   "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_ARGS": args,
                   "CNI_PATH": "/usr/lib/cni"}


@pytest.mark.parametrize("cid", ["", "-lead", "has space", "a/b"])
def test_env_rejects_bad_container_id(cid):
    with pytest.raises(NetworkError, match="container ID"):
        cc.plugin_env({}, command="ADD", container_id=cid, netns="", ifname="eth0", args="",
                      cni_path="/x")


def test_cni_args_rejects_separators():
    with pytest.raises(NetworkError):
        cc.cni_args(PodNetworkInfo("ns", "a;b", "u", "sb"))


BRIDGE_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "podling0", "mac": "aa:bb:cc:dd:ee:01"},
        {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/x"},
    ],
    "ips": [
        {"interface": 2, "address": "10.42.0.5/24", "gateway": "10.42.0.1"},
        {"interface": 2, "address": "fd00:42::5/64", "gateway": "fd00:42::1"},
        {"interface": 0, "address": "10.42.0.1/24"},
    ],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}


def test_result_to_pod_ips():
    ips = cc.result_to_pod_ips(BRIDGE_RESULT, "eth0")
    assert ips.ips == ("10.42.0.5", "fd00:42::5") and ips.primary == "10.42.0.5"
    assert ips.gateway == "10.42.0.1" and ips.prefix_lengths == (24, 64)


def test_result_without_interface_index_and_empty():
    res = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.9/16"}]}
    ips = cc.result_to_pod_ips(res, "eth0")
    assert ips.ips == ("10.1.0.9",) and ips.gateway is None
    empty = cc.result_to_pod_ips({"cniVersion": "1.0.0"}, "eth0")
    assert empty.ips == () and empty.primary is None


def test_parse_result():
    assert cc.parse_result(json.dumps(BRIDGE_RESULT).encode(), "bridge") == BRIDGE_RESULT
    with pytest.raises(NetworkError, match="invalid JSON"):
        cc.parse_result(b"garbage", "bridge")
    with pytest.raises(NetworkError, match="no CNI result"):
        cc.parse_result(b"[1]", "bridge")


@pytest.mark.parametrize("stdout, stderr, expect, code", [
    (b'{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no bridge"}', b"",
     "plugin type='bridge' failed (add): invalid config: no bridge", 7),
    (b'{"code":11,"msg":"try again later"}', b"", "failed (add): try again later", 11),
    (b"", b"panic: oops\n", "failed (add): panic: oops", None),
    (b"not json", b"", "failed (add): not json", None),
    (b"", b"", "failed (add): exit status 1", None),
])
def test_parse_error(stdout, stderr, expect, code):
    err = cc.parse_error(stdout, stderr, 1, plugin_type="bridge", command="ADD")
    assert expect in str(err) and err.code == code


def test_cache_entry_roundtrip():
    conf = cc.build_conflist(config())
    entry = cc.cache_entry(conflist=conf, pod=POD, ifname="eth0", netns="/run/netns/x",
                           capability_args={"portMappings": []}, result=BRIDGE_RESULT)
    assert cc.parse_cache_entry(json.dumps(entry).encode()) == entry
    assert entry["networkName"] == "podling" and entry["cniArgs"] == cc.cni_args(POD)
    assert cc.cache_file_name("podling", "sb1", "eth0") == "podling-sb1-eth0"
    for bad in (b"", b"[]", b'{"kind": "other"}', b'{"kind": "podlingCniCacheV1"}'):
        assert cc.parse_cache_entry(bad) is None


def test_supports_version():
    assert cc.supports_version(b'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}')
    assert not cc.supports_version(b'{"supportedVersions":["0.4.0"]}')
    assert not cc.supports_version(b"junk")


SAVE = r"""# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-0123456789abcdef01234567 - [0:0]
:CNI-DN-0123456789abcdef0123a - [0:0]
:CNI-aaaaaaaaaaaaaaaaaaaaaaaa - [0:0]
-A POSTROUTING -s 10.42.0.5/32 -m comment --comment "name: \"podling\" id: \"sb1\"" -j CNI-0123456789abcdef01234567
-A POSTROUTING -s 10.42.0.9/32 -m comment --comment "name: \"podling\" id: \"lost\"" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa
-A POSTROUTING -s 10.88.0.4/32 -m comment --comment "name: \"podman\" id: \"sb1\"" -j CNI-bbbbbbbbbbbbbbbbbbbbbbbb
-A CNI-0123456789abcdef01234567 -d 10.42.0.0/24 -m comment --comment "name: \"podling\" id: \"sb1\"" -j ACCEPT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podling\" id: \"sb1\"" -m multiport --dports 8080 -j CNI-DN-0123456789abcdef0123a
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"other\" id: \"sb1\"" -j CNI-DN-ffffffffffffffffffff
COMMIT
"""


def test_plan_sweep_by_id():
    sweep = plan_sweep(SAVE, network="podling", ids={"sb1"})
    assert [c for c, _ in sweep.rules] == ["POSTROUTING", "CNI-0123456789abcdef01234567",
                                          "CNI-HOSTPORT-DNAT"]
    assert sweep.rules[0][1][:2] == ["-s", "10.42.0.5/32"]
    assert 'name: "podling" id: "sb1"' in sweep.rules[0][1]
    assert sweep.chains == ["CNI-0123456789abcdef01234567", "CNI-DN-0123456789abcdef0123a"]


def test_plan_sweep_by_cidr_and_nothing():
    sweep = plan_sweep(SAVE, network="podling", ids=set(), cidrs=("10.42.0.0/24",))
    assert len(sweep.rules) == 2 and "CNI-aaaaaaaaaaaaaaaaaaaaaaaa" in sweep.chains
    assert not plan_sweep(SAVE, network="nobody", ids={"sb1"})


HOSTPORT_SKELETON = r"""*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"""


def test_hostport_skeleton_removed_only_when_unused():
    sweep = plan_hostport_cleanup(HOSTPORT_SKELETON)
    assert [c for c, _ in sweep.rules] == ["PREROUTING", "OUTPUT", "POSTROUTING"]
    assert sweep.chains == ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"]
    in_use = HOSTPORT_SKELETON.replace(
        "COMMIT", '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"podman\\" '
        'id: \\"x\\"" -j CNI-DN-0123456789abcdef0123a\nCOMMIT')
    assert not plan_hostport_cleanup(in_use)
    assert not plan_hostport_cleanup("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
