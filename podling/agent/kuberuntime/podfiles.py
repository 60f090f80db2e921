"""The per-pod files the agent writes and bind-mounts into every container:
``/etc/hosts`` (the kubelet's managed hosts file), ``/etc/hostname`` and ``/etc/resolv.conf``
(what containerd's CRI plugin writes from the kubelet's DNS config).

The content builders are pure; :func:`write_pod_files` writes all three under the pod
directory, each in place (its inode kept: containers are created, with the files
bind-mounted, while the network is still being set up, and see the final contents written
once the pod's IPs are known, before they start), without fsync (they are rewritten at every
container start, and a power loss ends the pods anyway). It may be called again at any time
(each container start rewrites them, so edits made inside a container vanish when it is
re-created, as in Kubernetes).

The pod directory also keeps the IPs the network gave the pod's current sandbox
(:func:`save_pod_ips`), so that an agent restarted before it reported them still knows them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Sequence

from podling.agent.kuberuntime.labels import namespace
from podling.api.views import ContainerView, PodSpecView, PodView
from podling.runtime.interface import Mount
from podling.util.files import atomic_write, write_in_place

HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
_FIXED_BLOCK = ("127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "fe00::0\tip6-mcastprefix\n"
                "fe00::1\tip6-allnodes\n"
                "fe00::2\tip6-allrouters\n")

MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LIST_CHARS = 2048
DEFAULT_DNS_OPTIONS = ("ndots:5",)
HOSTNAME_MAX = 63

ETC_HOSTS = "/etc/hosts"
ETC_HOSTNAME = "/etc/hostname"
ETC_RESOLV = "/etc/resolv.conf"


# -- /etc/hosts -----------------------------------------------------------------------------


def _alias_section(spec: PodSpecView) -> str:
    aliases = spec.host_aliases
    if not aliases:
        return ""
    lines = [f"{a.ip}\t" + "\t".join(a.hostnames) + "\n" for a in aliases]
    return "\n# Entries added by HostAliases.\n" + "".join(lines)


def hosts_file(pod: PodView, pod_ips: Sequence[str], *, host_network: bool,
               node_hosts: bytes, cluster_domain: str) -> bytes:
    """The kubelet's managed hosts file (docs/kubernetes-fidelity.md §7.1), byte for byte.

    Normal pods: header, the fixed localhost block, one line per pod IP (with the FQDN form
    ``<hostname>.<subdomain>.<ns>.svc.<clusterDomain>`` when spec.subdomain is set and a
    cluster domain is known), then the hostAliases section. hostNetwork pods: the host-network
    header, ``node_hosts`` copied as is, then the hostAliases section.
    """
    aliases = _alias_section(pod.spec).encode()
    if host_network:
        return HOSTS_HEADER_HOST_NETWORK.encode() + node_hosts + aliases
    hostname = hostname_for(pod, "")
    domain = pod_domain(pod, cluster_domain)
    if domain:
        lines = [f"{ip}\t{hostname}.{domain}\t{hostname}\n" for ip in pod_ips]
    else:
        lines = [f"{ip}\t{hostname}\n" for ip in pod_ips]
    return (HOSTS_HEADER + _FIXED_BLOCK + "".join(lines)).encode() + aliases


def pod_domain(pod: PodView, cluster_domain: str) -> str:
    """``<subdomain>.<ns>.svc.<clusterDomain>``, or "" without a subdomain or cluster domain."""
    subdomain = pod.spec.subdomain
    if not subdomain or not cluster_domain:
        return ""
    return f"{subdomain}.{namespace(pod)}.svc.{cluster_domain}"


def hostname_for(pod: PodView, node_name: str, *,
                 node_hostname: str | None = None) -> str:
    """The pod's hostname: spec.hostname, else the pod name, truncated to 63 characters with
    trailing ``-``/``.`` removed (kubelet truncatePodHostnameIfNeeded). Under hostNetwork the
    host's UTS namespace is used, so this is the machine's hostname (``node_hostname``, by
    default ``socket.gethostname()``; ``node_name`` if that is empty)."""
    if pod.spec.host_network:
        return node_hostname if node_hostname is not None else (socket.gethostname()
                                                                 or node_name)
    name = pod.spec.hostname or pod.metadata.name
    if len(name) <= HOSTNAME_MAX:
        return name
    return name[:HOSTNAME_MAX].rstrip("-.")


# -- /etc/resolv.conf -----------------------------------------------------------------------


@dataclass(frozen=True)
class DNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(data: bytes) -> DNSConfig:
    """The kubelet's parseResolvConf: ``nameserver`` lines accumulate, the last ``search``
    line wins (trailing dots dropped, ``.`` ignored), ``options`` accumulate (later ones
    replace earlier ones with the same name)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0]
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.rstrip(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options = merge_options(options, fields[1:])
    return DNSConfig(tuple(servers), tuple(searches), tuple(options))


def merge_options(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Options keyed by the part before ``:``; an override replaces the base option in place."""
    result = list(base)
    for opt in overrides:
        name = opt.split(":", 1)[0]
        for i, existing in enumerate(result):
            if existing.split(":", 1)[0] == name:
                result[i] = opt
                break
        else:
            result.append(opt)
    return result


def _dedupe(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def effective_dns_policy(pod: PodView, cluster_dns: Sequence[str]) -> str:
    """ClusterFirst / Default / None after the kubelet's rules: ClusterFirst on a hostNetwork
    pod means Default; ClusterFirstWithHostNet means ClusterFirst; ClusterFirst without any
    cluster DNS server falls back to Default (the kubelet does the same, with a warning
    event)."""
    policy = pod.spec.dns_policy
    if policy == "ClusterFirst" and pod.spec.host_network:
        policy = "Default"
    elif policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and not cluster_dns:
        policy = "Default"
    return policy


def pod_dns_config(pod: PodView, *, host: DNSConfig, cluster_dns: Sequence[str],
                   cluster_domain: str) -> DNSConfig:
    """The kubelet's GetPodDNS: the policy's base config, then spec.dnsConfig merged
    (nameservers and searches appended without duplicates, options by name), then the limits
    (3 nameservers, 32 search domains / 2048 characters)."""
    policy = effective_dns_policy(pod, cluster_dns)
    ns = namespace(pod)
    if policy == "ClusterFirst":
        cluster = ([f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
                   if cluster_domain else [])
        servers, searches = list(cluster_dns), _dedupe(cluster + list(host.searches))
        options = list(DEFAULT_DNS_OPTIONS)
    elif policy == "None":
        servers, searches, options = [], [], []
    else:
        servers, searches, options = list(host.nameservers), list(host.searches), \
            list(host.options)
    extra = pod.spec.dns_config
    servers = _dedupe(servers + list(extra.nameservers))
    searches = _dedupe(searches + list(extra.searches))
    options = merge_options(options, [name + (f":{value}" if value else "")
                                      for name, value in extra.options])
    return DNSConfig(tuple(servers[:MAX_DNS_NAMESERVERS]), tuple(_limit_searches(searches)),
                     tuple(options))


def _limit_searches(searches: list[str]) -> list[str]:
    searches = searches[:MAX_DNS_SEARCH_PATHS]
    while searches and len(" ".join(searches)) > MAX_DNS_SEARCH_LIST_CHARS:
        searches.pop()
    return searches


def format_resolv_conf(dns: DNSConfig) -> bytes:
    """containerd's layout: ``search`` line, ``nameserver`` lines, ``options`` line."""
    out = ""
    if dns.searches:
        out += "search " + " ".join(dns.searches) + "\n"
    for server in dns.nameservers:
        out += f"nameserver {server}\n"
    if dns.options:
        out += "options " + " ".join(dns.options) + "\n"
    return out.encode()


def resolv_conf(pod: PodView, *, host_resolv: bytes, cluster_dns: Sequence[str],
                cluster_domain: str) -> bytes:
    """/etc/resolv.conf for the pod's dnsPolicy (see :func:`pod_dns_config`)."""
    dns = pod_dns_config(pod, host=parse_resolv_conf(host_resolv), cluster_dns=cluster_dns,
                         cluster_domain=cluster_domain)
    return format_resolv_conf(dns)


# -- files and mounts -----------------------------------------------------------------------


@dataclass(frozen=True)
class PodFiles:
    hosts_path: str
    hostname_path: str
    resolv_path: str


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def pod_files(pod_dir: str) -> PodFiles:
    """Where :func:`write_pod_files` writes the files of the pod at ``pod_dir`` (known
    before they are written: containers are configured while the network is set up)."""
    return PodFiles(os.path.join(pod_dir, "etc-hosts"), os.path.join(pod_dir, "etc-hostname"),
                    os.path.join(pod_dir, "etc-resolv.conf"))


def write_pod_files(pod_dir: str, pod: PodView, pod_ips: Sequence[str], *,
                    node_name: str, cluster_domain: str, cluster_dns: Sequence[str],
                    node_hosts_path: str = "/etc/hosts",
                    host_resolv_path: str = "/etc/resolv.conf",
                    node_hostname: str | None = None) -> PodFiles:
    """Write ``<pod_dir>/etc-hosts``, ``etc-hostname`` and ``etc-resolv.conf`` (0644, each
    in place, ``pod_dir`` created if missing). Idempotent; call before every container
    start (with no ``pod_ips`` while a new sandbox's network is not up yet: the hosts file
    then has no line for the pod). Blocking file I/O: run it in a thread from async code."""
    os.makedirs(pod_dir, mode=0o750, exist_ok=True)
    host_network = pod.spec.host_network
    files = pod_files(pod_dir)
    write_in_place(files.hosts_path,
                   hosts_file(pod, pod_ips, host_network=host_network,
                              node_hosts=_read(node_hosts_path) if host_network else b"",
                              cluster_domain=cluster_domain))
    hostname = hostname_for(pod, node_name, node_hostname=node_hostname)
    write_in_place(files.hostname_path, (hostname + "\n").encode())
    write_in_place(files.resolv_path,
                   resolv_conf(pod, host_resolv=_read(host_resolv_path),
                               cluster_dns=cluster_dns, cluster_domain=cluster_domain))
    return files


def pod_file_mounts(pod_files: PodFiles, container: ContainerView) -> list[Mount]:
    """Bind mounts of the three files, each skipped when the container mounts that path
    itself. /etc/hosts is read-write (kubelet); hostname and resolv.conf are read-only only
    with readOnlyRootFilesystem (containerd)."""
    own = {os.path.normpath(m.mount_path) for m in container.volume_mounts}
    readonly = container.security_context.read_only_root_filesystem
    wanted = [(pod_files.hosts_path, ETC_HOSTS, False),
              (pod_files.hostname_path, ETC_HOSTNAME, readonly),
              (pod_files.resolv_path, ETC_RESOLV, readonly)]
    return [Mount(host_path=src, container_path=dst, readonly=ro)
            for src, dst, ro in wanted if dst not in own]


def pod_dir(pods_dir: str, uid: str) -> str:
    """The pod's directory under the agent's ``pods_dir``: its files, volumes and logs."""
    return os.path.join(pods_dir, uid)


def pod_uids(pods_dir: str) -> list[str]:
    """The uids of the pods that have a directory under ``pods_dir``."""
    try:
        return sorted(os.listdir(pods_dir))
    except FileNotFoundError:
        return []


POD_IPS_FILE = "pod-ips"


_SANDBOX_LINE = "sandbox "


def save_pod_ips(pod_dir: str, sandbox_id: str, ips: Sequence[str]) -> None:
    """Remember the sandbox whose network is attached and its IPs, atomically: a line
    ``sandbox <id>``, then one IP per line."""
    os.makedirs(pod_dir, mode=0o750, exist_ok=True)
    text = f"{_SANDBOX_LINE}{sandbox_id}\n" + "".join(f"{ip}\n" for ip in ips)
    atomic_write(os.path.join(pod_dir, POD_IPS_FILE), text.encode(), 0o644, sync=False)


def load_pod_ips(pod_dir: str) -> tuple[str | None, list[str]]:
    """(the sandbox, its IPs) that :func:`save_pod_ips` remembered; (None, []) when there
    are none (the sandbox is None in a file of an older podling, which had only IPs)."""
    try:
        with open(os.path.join(pod_dir, POD_IPS_FILE)) as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return None, []
    if lines and lines[0].split()[0] == _SANDBOX_LINE.strip():
        return lines[0][len(_SANDBOX_LINE):].strip(), lines[1:]  # "": none attached
    return None, lines
