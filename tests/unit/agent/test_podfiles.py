"""Pod files: /etc/hosts byte for byte, hostname, resolv.conf per dnsPolicy, mounts."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from podling.agent.kuberuntime.podfiles import (PodFiles, hostname_for, hosts_file,
                                                pod_file_mounts, resolv_conf, write_pod_files)
from podling.api.views import ContainerView, PodView
from podling.runtime.interface import Mount

FIXED = (b"# Kubernetes-managed hosts file.\n"
         b"127.0.0.1\tlocalhost\n"
         b"::1\tlocalhost ip6-localhost ip6-loopback\n"
         b"fe00::0\tip6-localnet\n"
         b"fe00::0\tip6-mcastprefix\n"
         b"fe00::1\tip6-allnodes\n"
         b"fe00::2\tip6-allrouters\n")
NODE_HOSTS = b"127.0.0.1 localhost\n# node file\n10.1.1.1\tnode1 node1.example\n"
HOST_RESOLV = (b"# generated\nnameserver 192.168.0.1\nnameserver 192.168.0.2\n"
               b"search example.com corp.example.\noptions edns0 ndots:2\n")


def make_pod(name: str = "web", **spec: Any) -> PodView:
    return PodView.from_obj({"metadata": {"name": name, "namespace": "ns1", "uid": "u1"},
                             "spec": {"containers": [{"name": "c"}], **spec}})


def hosts(pod: PodView, ips=("10.244.0.5",), host_network=False) -> bytes:
    return hosts_file(pod, list(ips), host_network=host_network, node_hosts=NODE_HOSTS,
                      cluster_domain="cluster.local")


# -- /etc/hosts -----------------------------------------------------------------------------

def test_hosts_plain_pod() -> None:
    assert hosts(make_pod()) == FIXED + b"10.244.0.5\tweb\n"


def test_hosts_dual_stack() -> None:
    assert hosts(make_pod(), ips=("10.244.0.5", "fd00::5")) == \
        FIXED + b"10.244.0.5\tweb\nfd00::5\tweb\n"


def test_hosts_with_host_aliases() -> None:
    pod = make_pod(hostAliases=[{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
                                {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}])
    assert hosts(pod) == FIXED + (b"10.244.0.5\tweb\n"
                                  b"\n"
                                  b"# Entries added by HostAliases.\n"
                                  b"127.0.0.1\tfoo.local\tbar.local\n"
                                  b"10.1.2.3\tfoo.remote\tbar.remote\n")


def test_hosts_with_hostname_and_subdomain() -> None:
    pod = make_pod(hostname="db-0", subdomain="db")
    assert hosts(pod) == FIXED + b"10.244.0.5\tdb-0.db.ns1.svc.cluster.local\tdb-0\n"


def test_hosts_with_hostname_only() -> None:
    assert hosts(make_pod(hostname="h")) == FIXED + b"10.244.0.5\th\n"


def test_hosts_empty_aliases_have_no_section() -> None:
    assert hosts(make_pod(hostAliases=[])) == FIXED + b"10.244.0.5\tweb\n"


def test_hosts_host_network() -> None:
    pod = make_pod(hostNetwork=True)
    assert hosts(pod, ips=("10.1.1.1",), host_network=True) == \
        b"# Kubernetes-managed hosts file (host network).\n" + NODE_HOSTS
    pod = make_pod(hostNetwork=True, hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}])
    assert hosts(pod, host_network=True) == (
        b"# Kubernetes-managed hosts file (host network).\n" + NODE_HOSTS +
        b"\n# Entries added by HostAliases.\n1.2.3.4\tx\n")


@pytest.mark.parametrize("pod,expected", [
    (make_pod("web"), "web"),
    (make_pod("web", hostname="other"), "other"),
    (make_pod("a" * 70), "a" * 63),
    (make_pod("a" * 61 + "--b"), "a" * 61),
    (make_pod("a" * 62 + ".b"), "a" * 62),
    (make_pod("web", hostNetwork=True, hostname="ignored"), "the-node-host"),
])
def test_hostname_for(pod, expected) -> None:
    assert hostname_for(pod, "n1", node_hostname="the-node-host") == expected


# -- resolv.conf ----------------------------------------------------------------------------

def resolv(pod: PodView, cluster_dns=("10.96.0.10",)) -> bytes:
    return resolv_conf(pod, host_resolv=HOST_RESOLV, cluster_dns=list(cluster_dns),
                       cluster_domain="cluster.local")


CLUSTER_FIRST = (b"search ns1.svc.cluster.local svc.cluster.local cluster.local example.com "
                 b"corp.example\nnameserver 10.96.0.10\noptions ndots:5\n")
DEFAULT = (b"search example.com corp.example\nnameserver 192.168.0.1\nnameserver 192.168.0.2\n"
           b"options edns0 ndots:2\n")


@pytest.mark.parametrize("spec,cluster_dns,expected", [
    ({}, ("10.96.0.10",), CLUSTER_FIRST),
    ({"dnsPolicy": "ClusterFirst"}, ("10.96.0.10",), CLUSTER_FIRST),
    ({"dnsPolicy": "ClusterFirst"}, (), DEFAULT),                      # no cluster DNS
    ({"dnsPolicy": "ClusterFirst", "hostNetwork": True}, ("10.96.0.10",), DEFAULT),
    ({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True}, ("10.96.0.10",),
     CLUSTER_FIRST),
    ({"dnsPolicy": "Default"}, ("10.96.0.10",), DEFAULT),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, (),
     b"nameserver 1.1.1.1\n"),
    ({"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.1.1.1", "8.8.8.8"], "searches": ["a.example", "b.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}, (),
     b"search a.example b.example\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
     b"options ndots:2 edns0\n"),
    ({"dnsPolicy": "None"}, (), b""),
])
def test_resolv_conf_policies(spec, cluster_dns, expected) -> None:
    assert resolv(make_pod(**spec), cluster_dns) == expected


def test_resolv_conf_cluster_first_merges_dns_config() -> None:
    pod = make_pod(dnsConfig={"nameservers": ["10.96.0.10", "9.9.9.9"],
                              "searches": ["extra.example", "svc.cluster.local"],
                              "options": [{"name": "ndots", "value": "1"},
                                          {"name": "single-request"}]})
    assert resolv(pod) == (
        b"search ns1.svc.cluster.local svc.cluster.local cluster.local example.com "
        b"corp.example extra.example\n"
        b"nameserver 10.96.0.10\nnameserver 9.9.9.9\n"
        b"options ndots:1 single-request\n")


def test_resolv_conf_limits() -> None:
    pod = make_pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"],
        "searches": [f"s{i}.example" for i in range(40)]})
    text = resolv(pod).decode()
    assert text.count("nameserver") == 3
    assert len(text.splitlines()[0].split()) == 1 + 32


# -- writing and mounting -------------------------------------------------------------------

def test_write_pod_files(tmp_path) -> None:
    node_hosts = tmp_path / "hosts"
    node_hosts.write_bytes(NODE_HOSTS)
    host_resolv = tmp_path / "resolv.conf"
    host_resolv.write_bytes(HOST_RESOLV)
    pod_dir = tmp_path / "pods" / "u1"
    files = write_pod_files(str(pod_dir), make_pod(hostAliases=[{"ip": "1.2.3.4",
                                                                 "hostnames": ["x"]}]),
                            ["10.244.0.5"], node_name="n1", cluster_domain="cluster.local",
                            cluster_dns=["10.96.0.10"], node_hosts_path=str(node_hosts),
                            host_resolv_path=str(host_resolv))
    assert files == PodFiles(str(pod_dir / "etc-hosts"), str(pod_dir / "etc-hostname"),
                             str(pod_dir / "etc-resolv.conf"))
    assert (pod_dir / "etc-hosts").read_bytes().endswith(b"1.2.3.4\tx\n")
    assert (pod_dir / "etc-hostname").read_bytes() == b"web\n"
    assert (pod_dir / "etc-resolv.conf").read_bytes() == CLUSTER_FIRST
    for name in ("etc-hosts", "etc-hostname", "etc-resolv.conf"):
        assert stat.S_IMODE(os.stat(pod_dir / name).st_mode) == 0o644
    (pod_dir / "etc-hosts").write_bytes(b"edited")
    write_pod_files(str(pod_dir), make_pod(), ["10.244.0.5"], node_name="n1",
                    cluster_domain="cluster.local", cluster_dns=[],
                    node_hosts_path=str(node_hosts), host_resolv_path=str(host_resolv))
    assert (pod_dir / "etc-hosts").read_bytes() == FIXED + b"10.244.0.5\tweb\n"
    assert sorted(os.listdir(pod_dir)) == ["etc-hostname", "etc-hosts", "etc-resolv.conf"]


def test_write_pod_files_host_network(tmp_path) -> None:
    node_hosts = tmp_path / "hosts"
    node_hosts.write_bytes(NODE_HOSTS)
    files = write_pod_files(str(tmp_path / "p"), make_pod(hostNetwork=True), ["10.1.1.1"],
                            node_name="n1", cluster_domain="cluster.local", cluster_dns=[],
                            node_hosts_path=str(node_hosts),
                            host_resolv_path=str(tmp_path / "missing"), node_hostname="host1")
    with open(files.hosts_path, "rb") as f:
        assert f.read() == b"# Kubernetes-managed hosts file (host network).\n" + NODE_HOSTS
    with open(files.hostname_path, "rb") as f:
        assert f.read() == b"host1\n"


FILES = PodFiles("/p/etc-hosts", "/p/etc-hostname", "/p/etc-resolv.conf")


def test_pod_file_mounts() -> None:
    assert pod_file_mounts(FILES, ContainerView.from_obj({"name": "c"})) == [
        Mount("/p/etc-hosts", "/etc/hosts"), Mount("/p/etc-hostname", "/etc/hostname"),
        Mount("/p/etc-resolv.conf", "/etc/resolv.conf")]


def test_pod_file_mounts_skips_own_etc_hosts_and_readonly_rootfs() -> None:
    container = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/etc/hosts"}],
                 "securityContext": {"readOnlyRootFilesystem": True}}
    assert pod_file_mounts(FILES, ContainerView.from_obj(container)) == [
        Mount("/p/etc-hostname", "/etc/hostname", readonly=True),
        Mount("/p/etc-resolv.conf", "/etc/resolv.conf", readonly=True)]
