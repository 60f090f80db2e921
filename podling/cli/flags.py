"""Every flag of ``podling``, in one table (k3s' conventions).

A flag is defined once as an :class:`Option`; a :class:`Command` lists the options it takes.
Each option is also settable through ``PODLING_<FLAG>`` (``--data-dir`` → ``PODLING_DATA_DIR``)
and through the config file (``/etc/podling/config.yaml``, or ``--config`` /
``PODLING_CONFIG``), whose keys are flag names without dashes (``data-dir: /srv/podling``).
Precedence: flag > environment > config file > default (:mod:`podling.cli.layers`).

This module imports nothing heavy: ``--help``, ``--version`` and completion load only it.
To add a flag: define an Option (or reuse one) and add it to the commands that take it.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from ..util.durations import parse_go_duration

DEFAULT_DATA_DIR = "/var/lib/podling"
DEFAULT_CONFIG = "/etc/podling/config.yaml"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


# ---- value types (each raises argparse.ArgumentTypeError with a one-line reason) -----------

def cidr(text: str) -> str:
    """An IPv4 network of at least /24 (each node gets a /24 of it)."""
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if network.prefixlen > 24:
        raise argparse.ArgumentTypeError(f"{text} is smaller than a /24")
    return str(network)


def duration_seconds(text: str) -> float:
    """A duration in seconds: ``40``, ``40s``, ``1m``, ``1m30s``, ``500ms``."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        return parse_go_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 40s, 1m)") from None


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0-65535")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def sysctl_patterns(text: str) -> list[str]:
    """``kernel.msg*,net.core.somaxconn`` → the patterns, each of a namespaced group."""
    from podling.agent.kuberuntime.sysctls import unknown_patterns
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if bad := unknown_patterns(tuple(patterns)):
        raise argparse.ArgumentTypeError(f"the sysctl {bad[0]!r} is not known to be namespaced")
    return patterns


def pid_limit(text: str) -> int:
    """A process count, or -1 for none."""
    value = _integer(text)
    if value < -1 or value == 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of processes "
                                         "(or -1)")
    return value


def names(text: str) -> list[str]:
    """Comma-separated names, none empty (``dev,ops``)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"invalid list {text!r} (an empty name)")
    return items


def file_mode(text: str) -> int:
    """An octal file mode such as ``644`` or ``0600``."""
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise argparse.ArgumentTypeError(f"invalid file mode {text!r} (e.g. 644, 0600)")
    return int(text, 8)


def urls(text: str) -> list[str]:
    """``URL`` or ``URL,URL`` → [URL, …], each an http(s)://host[:port] URL."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        parsed = urllib.parse.urlsplit(item)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise argparse.ArgumentTypeError(f"expected http(s)://host:port, got {item!r}")
        out.append(item)
    return out


def labels(text: str) -> list[tuple[str, str]]:
    """``k=v`` or ``k=v,k2=v2`` → [(k, v), …]."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        out.append((key, value))
    return out


def taints(text: str) -> list[dict[str, str]]:
    """``key=value:Effect`` or ``key:Effect`` (comma-separated for several) → Node taints."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        kv, sep, effect = item.rpartition(":")
        key, _, value = kv.partition("=")
        if not sep or not key or effect not in TAINT_EFFECTS:
            raise argparse.ArgumentTypeError(
                f"expected key[=value]:{'|'.join(TAINT_EFFECTS)}, got {item!r}")
        out.append({"key": key, **({"value": value} if value else {}), "effect": effect})
    return out


# ---- the table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One flag. ``kind``: "value" (one value), "bool" (a switch) or "list" (repeatable;
    each value may also hold several comma-separated items; env and file values too)."""

    flag: str
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    kind: str = "value"
    aliases: tuple[str, ...] = ()  # other spellings on the command line (and file keys)
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    hidden: bool = False
    env_aliases: tuple[str, ...] = ()  # older environment names still honoured
    layered: bool = True  # False: command line only (one-off actions such as --purge)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def key(self) -> str:
        """The config file key (k3s: the flag name without dashes)."""
        return self.flag.lstrip("-")

    @property
    def env(self) -> str:
        return "PODLING_" + self.dest.upper()


@dataclass(frozen=True)
class Positional:
    name: str
    help: str
    nargs: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    """A subcommand. ``shared`` options are accepted both before and after the name of any
    of its ``subcommands`` (``podling image --data-dir X pull`` = ``podling image pull
    --data-dir X``)."""

    name: str
    help: str
    options: tuple[Option, ...] = ()
    positionals: tuple[Positional, ...] = ()
    subcommands: tuple["Command", ...] = ()
    shared: tuple[Option, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


CONFIG = Option("--config", "config file (YAML; keys are flag names)", DEFAULT_CONFIG,
                aliases=("-c",), metavar="FILE")
DATA_DIR = Option("--data-dir", "where podling keeps its state", DEFAULT_DATA_DIR,
                  aliases=("-d",), metavar="DIR")
NODE_NAME = Option("--node-name", "the node's name (default: the hostname)", "",
                   metavar="NAME")
NODE_LABEL = Option("--node-label", "a label of the node, key=value (repeatable, or "
                    "comma-separated)", kind="list", type=labels, aliases=("--node-labels",),
                    env_aliases=("PODLING_NODE_LABELS",), metavar="KEY=VALUE")
NODE_TAINT = Option("--node-taint", "a taint the node registers with, key=value:Effect "
                    "(repeatable, or comma-separated)", kind="list", type=taints,
                    aliases=("--node-taints",), metavar="KEY=VALUE:EFFECT")
ALLOWED_UNSAFE_SYSCTLS = Option(
    "--allowed-unsafe-sysctls", "sysctls (or prefixes ending in *) pods may set beyond the "
    "safe ones (repeatable, or comma-separated)", kind="list", type=sysctl_patterns,
    metavar="PATTERN")
POD_MAX_PIDS = Option("--pod-max-pids", "the most processes one pod may run (-1: no limit)",
                      -1, type=pid_limit, metavar="N")
RUN_DIR = Option("--run-dir", "runtime state of the node (default: /run/podling)", "",
                 metavar="DIR")
BRIDGE_NAME = Option("--bridge-name", "CNI bridge of the node (default: podling0)", "",
                     metavar="NAME")
LOG_LEVEL = Option("--log-level", "logging level", "INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper)
REGISTRIES = Option("--registries", "registries.yaml (default: <data-dir>/registries.yaml)",
                    "", metavar="FILE")
DEB_DIR = Option("--deb-dir", "directory of nginx .deb files (default: apt's cache or "
                 "apt-get download)", "", env_aliases=("PODLING_NGINX_DEBS",), metavar="DIR")
PROGRESS = Option("--progress", "show progress on stderr even when it is not a terminal",
                  False, kind="bool")

SERVER = Command("server", "run the API server, controllers, scheduler and a local node", (
    CONFIG, DATA_DIR,
    Option("--bind-address", "address the API server listens on", "127.0.0.1",
           metavar="ADDR"),
    Option("--port", "HTTPS port of the API server (0: any free port)", 6443, type=port,
           aliases=("--https-listen-port",)),
    Option("--datastore", "where state lives (sqlite: <data-dir>/state.db; etcd: "
           "--etcd-endpoints)", "sqlite", choices=("sqlite", "etcd", "memory")),
    Option("--etcd-endpoints", "etcd client URLs, http(s)://host:port (repeatable, or "
           "comma-separated)", kind="list", type=urls, metavar="URL"),
    Option("--etcd-prefix", "key prefix of podling's objects in etcd", "/registry",
           metavar="PREFIX"),
    Option("--etcd-cafile", "CA bundle to verify etcd's certificate with", "",
           metavar="FILE"),
    Option("--etcd-certfile", "client certificate for etcd", "", metavar="FILE"),
    Option("--etcd-keyfile", "key of the client certificate for etcd", "", metavar="FILE"),
    Option("--token", "with etcd: the server token, which seals the cluster's CA and keys "
           "in etcd (the first server writes it to <data-dir>/server/token; may be any "
           "string on the first server)", "", aliases=("-t",)),
    Option("--token-file", "file holding the server token", "", metavar="FILE"),
    Option("--server", "with etcd: a running server of the cluster to join; its CA must "
           "match the token's hash", "", aliases=("-s",), metavar="URL"),
    Option("--write-kubeconfig", "also write the admin kubeconfig to this path", "",
           aliases=("-o",), metavar="FILE"),
    Option("--write-kubeconfig-mode", "file mode of the kubeconfigs written (octal)", 0o600,
           type=file_mode, metavar="MODE"),
    Option("--cluster-cidr", "pod network of the cluster; each node gets a /24 of it",
           "10.42.0.0/16", type=cidr, metavar="CIDR"),
    Option("--disable-agent", "do not run a local node agent (API server only)", False,
           kind="bool"),
    Option("--disable-scheduler", "do not run the scheduler (pods need spec.nodeName)",
           False, kind="bool"),
    Option("--disable-offline-images", "do not import the offline busybox and nginx images "
           "(built from Debian's packages, no network) into the local node's store at start",
           False, kind="bool"),
    NODE_NAME, NODE_LABEL, NODE_TAINT, RUN_DIR, BRIDGE_NAME, ALLOWED_UNSAFE_SYSCTLS,
    POD_MAX_PIDS,
    Option("--history", "changes kept for resuming watches; older resourceVersions get 410",
           10_000, type=positive_int, metavar="N"),
    Option("--max-requests-inflight", "reads served at once before 429 (0: no limit)", 400,
           type=non_negative_int, metavar="N"),
    Option("--max-mutating-requests-inflight", "writes served at once before 429 (0: no "
           "limit)", 200, type=non_negative_int, metavar="N"),
    Option("--request-timeout", "the longest an ordinary request may take before 504 "
           "(watches, logs, exec and attach excepted; 0: no limit)", 60.0,
           type=duration_seconds, metavar="DURATION"),
    Option("--watch-bookmark-interval", "seconds between BOOKMARK events on idle watches",
           10.0, type=duration_seconds, metavar="DURATION"),
    Option("--node-monitor-grace-period", "time without heartbeat before a node is "
           "NotReady", 40.0, type=duration_seconds, hidden=True),
    Option("--event-ttl", "how long an event is kept after its last write", 3600.0,
           type=duration_seconds, metavar="DURATION"),
    Option("--audit-policy-file", "the audit policy (audit.k8s.io/v1 Policy): which requests "
           "the audit log records, and how much of them", "", metavar="FILE"),
    Option("--audit-log-path", "write audit events to this file, one JSON line each (-: "
           "standard output); needs --audit-policy-file", "", metavar="FILE"),
    Option("--audit-log-maxsize", "megabytes of audit log before it is rotated (0: 100)", 0,
           type=non_negative_int, metavar="MB"),
    Option("--audit-log-maxbackup", "rotated audit logs kept (0: all)", 0,
           type=non_negative_int, metavar="N"),
    Option("--audit-log-maxage", "days a rotated audit log is kept (0: no limit)", 0,
           type=non_negative_int, metavar="DAYS"),
    Option("--purge", "remove everything podling made on this host for the local node "
           "(as `podling purge`) and exit", False, kind="bool", layered=False),
    LOG_LEVEL,
))

AGENT = Command("agent", "run one more node against a server", (
    CONFIG,
    Option("--server", "the API server URL (required; repeatable, or comma-separated: "
           "servers of one cluster, tried in turn when one fails)", kind="list", type=urls,
           aliases=("-s",), metavar="URL"),
    Option("--token", "the join token (or an admin token)", "", aliases=("-t",)),
    Option("--token-file", "file holding the join token (<server data-dir>/server/"
           "node-token) or an admin token", "", metavar="FILE"),
    Option("--ca-file", "CA of the server (default: with a join token, fetched from the "
           "server and checked against the token's CA hash; with another token, "
           "<data-dir>/server/ca.crt)", "", metavar="FILE"),
    DATA_DIR, NODE_NAME, NODE_LABEL, NODE_TAINT, RUN_DIR, BRIDGE_NAME, ALLOWED_UNSAFE_SYSCTLS,
    POD_MAX_PIDS,
    Option("--node-api-address", "where the node API listens (127.0.0.1: this machine "
           "only)", "0.0.0.0", metavar="ADDR"),
    Option("--node-api-port", "port of the node API (0: any free port)", 10250, type=port,
           metavar="PORT"),
    LOG_LEVEL,
))

PURGE = Command("purge", "remove everything podling made on this host for one node", (
    CONFIG, DATA_DIR, RUN_DIR, NODE_NAME, BRIDGE_NAME,
    Option("--all", "also delete images and API data (the whole data dir)", False,
           kind="bool", layered=False),
    Option("--dry-run", "only list what would be removed", False, kind="bool",
           layered=False),
))

_QUIET = Option("--quiet", "image IDs only / no progress", False, kind="bool",
                aliases=("-q",))
IMAGE = Command("image", "manage the node's images", shared=(CONFIG, DATA_DIR, REGISTRIES),
                subcommands=(
    Command("pull", "pull an image from its registry (or mirror)", (_QUIET,),
            (Positional("ref", "image reference, e.g. busybox or docker.io/library/nginx"),)),
    Command("import", "import a docker-save / OCI archive or layout", (
        Option("--base-name", "name for bare OCI ref.name tags", ""), PROGRESS),
        (Positional("file", "archive (.tar) or OCI layout directory"),)),
    Command("ls", "list images", (
        _QUIET, Option("--format", "output format", "table", choices=("table", "json"),
                       aliases=("-o",))), extra={"aliases": ["list"]}),
    Command("inspect", "show an image as JSON", (), (Positional("ref", "image reference"),)),
    Command("rm", "untag / remove images", (), (Positional("refs", "image references",
                                                             "+"),)),
    Command("prune", "remove untagged images and unreferenced data", (
        Option("--all", "remove every image", False, kind="bool", aliases=("-a",),
               layered=False),)),
    Command("build-demo", "build the offline busybox and nginx images", (DEB_DIR, PROGRESS),
            (Positional("dir", "output directory"),)),
    Command("registry-demo", "serve the offline images from a local registry that mirrors "
            "docker.io (foreground)", (
                Option("--port", "port of the registry (0: any free port)", 0, type=port,
                       layered=False),
                DEB_DIR), (Positional("dir", "work directory"),)),
))

DEMO = Command("demo", "tour the seed's examples on a throw-away three-node cluster (offline)", (
    Option("--keep", "leave the cluster running at the end (prints how to use and remove it)",
           False, kind="bool", layered=False),
    Option("--seed-dir", "the manifests to apply (default: the repository's examples/seed)",
           "", layered=False),
    Option("--images-dir", "where the offline image archives are, or are built (default: a "
           "temporary directory)", "", layered=False),
    Option("--registries", "a registries.yaml for every node (default: docker.io and every "
           "other registry through the nodes only)", "", layered=False),
))

COMPLETION = Command("completion", "print a shell completion script", (),
                     (Positional("shell", "bash or zsh", choices=("bash", "zsh")),))

TOKEN = Command("token", "manage user tokens (bearer tokens for users of RBAC)",
                shared=(CONFIG, DATA_DIR, Option(
                    "--kubeconfig", "an admin's kubeconfig (default: <data-dir>/kubeconfig)",
                    "", metavar="FILE", layered=False)), subcommands=(
    Command("create", "create a token for a user and print it", (
        Option("--group", "a group of the user (repeatable, or comma-separated)", kind="list",
               type=names, layered=False, metavar="GROUP"),
        Option("--ttl", "how long the token is valid, e.g. 24h (0: until deleted)", 0.0,
               type=duration_seconds, layered=False, metavar="DURATION"),
        Option("--write-kubeconfig", "also write a kubeconfig for the user to FILE (mode "
               "0600)", "", layered=False, metavar="FILE")),
            (Positional("user", "the user name, as RBAC bindings name it"),)),
    Command("list", "list the user tokens (their ids, users, groups and expiry)", (),
            extra={"aliases": ["ls"]}),
    Command("delete", "revoke tokens", (), (Positional("ids", "token ids (the part before "
                                                               "the dot)", "+"),),
            extra={"aliases": ["rm"]}),
))

KUBECONFIG = Command("kubeconfig", "print a kubeconfig for a user with a client certificate "
                     "from the cluster CA (on a server's host)", (
    CONFIG, DATA_DIR,
    Option("--group", "a group of the user (repeatable, or comma-separated)", kind="list",
           type=names, layered=False, metavar="GROUP"),
    Option("--days", "how long the certificate is valid", 365, type=positive_int,
           layered=False, metavar="N"),
    Option("--out", "write it to FILE (mode 0600) instead of printing it", "", layered=False,
           aliases=("-o",), metavar="FILE")),
    (Positional("user", "the user name, as RBAC bindings name it"),))

COMMANDS: tuple[Command, ...] = (SERVER, AGENT, PURGE, IMAGE, TOKEN, KUBECONFIG, DEMO,
                                 COMPLETION)


def all_options() -> dict[str, Option]:
    """Every option a config file may set, by key (aliases included)."""
    found: dict[str, Option] = {}

    def walk(command: Command) -> None:
        for opt in (*command.options, *command.shared):
            for name in (opt.flag, *opt.aliases) if opt.layered else ():
                if name.startswith("--"):
                    found[name[2:]] = opt
        for sub in command.subcommands:
            walk(sub)
    for command in COMMANDS:
        walk(command)
    return found
