"""``podling``: the command line.

    podling server [--data-dir DIR] [--bind-address ADDR] [--port N] [--disable-agent]
    podling kubectl ARGS...      run the system kubectl with podling's kubeconfig
    podling image [--data-dir DIR] [--registries FILE] pull|import|ls|inspect|rm|prune|...
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import sys

from ..agent.config import AgentConfig
from ..apiserver.server import ServerConfig
from ..apiserver.watch import WatchOptions
from . import demo as demo_cli
from . import image as image_cli
from .server import run_server

DEFAULT_DATA_DIR = "/var/lib/podling"


def _cidr(text: str) -> str:
    """An IPv4 network of at least /24 (each node gets a /24 of it)."""
    import ipaddress
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if network.prefixlen > 24:
        raise argparse.ArgumentTypeError(f"{text} is smaller than a /24")
    return str(network)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podling", description="A Kubernetes-compatible pod engine")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="run the API server (all-in-one)")
    server.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    server.add_argument("--bind-address", default="127.0.0.1")
    server.add_argument("--port", type=int, default=6443)
    server.add_argument("--datastore", default="sqlite", choices=["sqlite", "memory"],
                        help="where state lives (sqlite: <data-dir>/state.db)")
    server.add_argument("--disable-agent", action="store_true",
                        help="do not run a local node agent (API server only)")
    server.add_argument("--history", type=int, default=10_000,
                        help="changes kept for resuming watches; older resourceVersions get 410")
    server.add_argument("--watch-bookmark-interval", type=float, default=10.0,
                        help="seconds between BOOKMARK events on idle watches that allow them")
    server.add_argument("--purge", action="store_true",
                        help="remove everything podling made on this host for the local node "
                        "(as `podling purge`) and exit")
    server.add_argument("--cluster-cidr", default="10.42.0.0/16", type=_cidr,
                        help="pod network of the cluster; each node gets a /24 of it")
    server.add_argument("--disable-scheduler", action="store_true",
                        help="do not run the scheduler (pods need spec.nodeName)")
    server.add_argument("--node-name", default="", help="the local agent's node name (default: the hostname)")
    server.add_argument("--node-labels", default="", help="k=v,… labels of the local node")
    server.add_argument("--run-dir", default="", help="runtime state of the local agent "
                        "(default /run/podling)")
    server.add_argument("--bridge-name", default="", help="CNI bridge of the local agent "
                        "(default podling0)")
    server.add_argument("--node-monitor-grace-period", type=duration_seconds, default=40.0,
                        help=argparse.SUPPRESS)  # e.g. 40s; short values for tests
    server.add_argument("--log-level", default="INFO")
    agent = commands.add_parser("agent", help="run one more node against a server")
    agent.add_argument("--server", required=True, help="the API server URL")
    agent.add_argument("--token-file", required=True, help="the join token "
                       "(<server data-dir>/server/node-token) or an admin token")
    agent.add_argument("--ca-file", default="", help="CA of the server (default: with a "
                       "join token, fetched from the server and checked against the token's "
                       "CA hash; with another token, <data-dir>/server/ca.crt)")
    agent.add_argument("--node-name", default="")
    agent.add_argument("--node-labels", default="")
    agent.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    agent.add_argument("--run-dir", default="")
    agent.add_argument("--bridge-name", default="")
    agent.add_argument("--node-api-address", default="0.0.0.0",
                       help="where the node API listens (127.0.0.1: this machine only)")
    agent.add_argument("--node-api-port", type=int, default=10250, help="0: any free port")
    agent.add_argument("--log-level", default="INFO")
    purge = commands.add_parser("purge", help="remove everything podling made on this host")
    purge.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    purge.add_argument("--run-dir", default="")
    purge.add_argument("--node-name", default="")
    purge.add_argument("--bridge-name", default="")
    purge.add_argument("--all", action="store_true", help="also delete images and API data")
    kubectl = commands.add_parser("kubectl", help="run kubectl against this podling",
                                  add_help=False)
    kubectl.add_argument("--data-dir", default=os.environ.get("PODLING_DATA_DIR", DEFAULT_DATA_DIR))
    kubectl.add_argument("args", nargs=argparse.REMAINDER)
    image_cli.add_parser(commands)
    demo_cli.add_parser(commands)
    return parser


def _run_kubectl(data_dir: str, args: list[str]) -> int:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("podling: kubectl is not installed", file=sys.stderr)
        return 127
    kubeconfig = os.path.join(data_dir, "kubeconfig")
    if not os.path.exists(kubeconfig):
        print(f"podling: {kubeconfig} does not exist; start `podling server` first",
              file=sys.stderr)
        return 1
    os.execv(kubectl, [kubectl, "--kubeconfig", kubeconfig, *args])
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kubectl"]:
        # everything after "kubectl" belongs to kubectl, except a leading --data-dir
        rest, data_dir = argv[1:], os.environ.get("PODLING_DATA_DIR", DEFAULT_DATA_DIR)
        if rest[:1] == ["--data-dir"] and len(rest) >= 2:
            data_dir, rest = rest[1], rest[2:]
        return _run_kubectl(data_dir, rest)
    args = _parser().parse_args(argv)
    if args.command == "agent":
        return _run_agent_command(args)
    if args.command == "purge" or (args.command == "server" and args.purge):
        return _run_purge(args)
    if args.command == "demo":
        return demo_cli.run(args)
    if args.command == "image":
        logging.basicConfig(level=os.environ.get("PODLING_LOG_LEVEL", "WARNING").upper(),
                            format="%(levelname)s %(name)s: %(message)s")
        return image_cli.run(args)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(data_dir=args.data_dir, bind_address=args.bind_address,
                          port=args.port, datastore=args.datastore,
                          disable_agent=args.disable_agent, history=args.history,
                          cluster_cidr=args.cluster_cidr,
                          watch=WatchOptions(bookmark_interval=args.watch_bookmark_interval),
                          node_monitor_grace_seconds=args.node_monitor_grace_period)
    try:
        asyncio.run(run_server(config, _agent_overrides(args),
                               disable_scheduler=args.disable_scheduler))
    except KeyboardInterrupt:
        pass
    return 0


def _agent_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {"node_labels": parse_labels(getattr(args, "node_labels", ""))}
    for flag in ("node_name", "run_dir", "bridge_name"):
        if getattr(args, flag, ""):
            overrides[flag] = getattr(args, flag)
    return overrides


def duration_seconds(text: str) -> float:
    """A duration flag in seconds: ``40``, ``40s``, ``1m``, ``1m30s``, ``500ms``."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 40s, 1m)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` → a dict; a clear error for anything else."""
    labels = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"podling: --node-labels: expected key=value, got {item!r}")
        labels[key] = value
    return labels


def _run_purge(args: argparse.Namespace) -> int:
    from .purge import purge  # the agent's modules load only for the commands that use them
    config = AgentConfig(server_url="", token="", ca_file="", data_dir=args.data_dir,
                         **_agent_overrides(args))
    problems = asyncio.run(purge(config, everything=getattr(args, "all", False)))
    for problem in problems:
        print(f"podling purge: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _run_agent_command(args: argparse.Namespace) -> int:
    from ..agent.bootstrap import JoinError
    from .agent import run_agent
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with open(args.token_file) as f:
        token = f.read().strip()
    config = AgentConfig(server_url=args.server, token=token, ca_file=args.ca_file,
                         data_dir=args.data_dir, node_labels=parse_labels(args.node_labels),
                         node_api_address=args.node_api_address,
                         node_api_port=args.node_api_port,
                         **({"node_name": args.node_name} if args.node_name else {}),
                         **({"bridge_name": args.bridge_name} if args.bridge_name else {}),
                         **({"run_dir": args.run_dir} if args.run_dir else {}))
    try:
        asyncio.run(run_agent(config))
    except KeyboardInterrupt:
        pass
    except JoinError as exc:
        print(f"podling agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
