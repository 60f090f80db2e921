"""``podling``: the command line (``podling --help``; docs/cli.md).

    podling server [flags]        the API server, controllers, scheduler and a local node
    podling agent --server URL …  one more node
    podling kubectl ARGS…         the system kubectl with podling's kubeconfig
    podling image COMMAND …       the node's image store
    podling token COMMAND …       user tokens (create, list, delete)
    podling kubeconfig USER …     a kubeconfig with a client certificate for a user
    podling purge [--dry-run]     remove what podling made on this host
    podling completion bash|zsh   a shell completion script

Start-up: ``kubectl`` is dispatched before anything else is imported (this module imports
only the standard library at the top); the engine's modules load only in the command that
runs them. Errors end as one line on stderr with exit status 1 (2 for usage), never a
traceback (:mod:`podling.cli.errors`).
"""

from __future__ import annotations

import sys

from .errors import CliError, UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs kubectl ~2 ms
if TYPE_CHECKING:
    import argparse
    from typing import Any, Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kubectl"]:
        from .kubectl import run
        return run(argv[1:])
    try:
        return _dispatch(argv)
    except CliError as exc:
        print(exc, file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130


def _dispatch(argv: list[str]) -> int:
    from . import layers
    args = layers.parse(argv)
    if args.command == "completion":
        from .completion import script
        print(script(args.shell, layers.build_parser()), end="")
        return 0
    if args.command == "agent":
        return _run_agent(args)
    if args.command == "purge" or (args.command == "server" and args.purge):
        return _run_purge(args)
    if args.command == "demo":
        from . import demo
        return demo.run(args)
    if args.command == "token":
        from . import token
        return token.run(args)
    if args.command == "kubeconfig":
        from . import userconfig
        return userconfig.run(args)
    if args.command == "image":
        from . import image as image_cli
        import os
        _logging(os.environ.get("PODLING_LOG_LEVEL", "WARNING").upper())
        return image_cli.run(args)
    return _run_server(args)


def _parser() -> argparse.ArgumentParser:
    """The whole parser (:func:`podling.cli.layers.build_parser`; tests probe it for flags)."""
    from .layers import build_parser
    return build_parser()


def _logging(level: str) -> None:
    import logging
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def agent_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The AgentConfig fields the command line sets (those left empty keep their defaults)."""
    overrides: dict[str, Any] = {
        "node_labels": dict(getattr(args, "node_label", []) or []),
        "node_taints": tuple(getattr(args, "node_taint", []) or []),
        "allowed_unsafe_sysctls": tuple(getattr(args, "allowed_unsafe_sysctls", []) or []),
        "pod_max_pids": getattr(args, "pod_max_pids", -1)}
    for name in ("node_name", "run_dir", "bridge_name"):
        if getattr(args, name, ""):
            overrides[name] = getattr(args, name)
    return overrides


def _run_server(args: argparse.Namespace) -> int:
    import asyncio

    from ..apiserver.audit import AuditOptions
    from ..apiserver.limits import RequestLimits
    from ..apiserver.server import ServerConfig
    from ..apiserver.watch import WatchOptions
    from .server import KubeconfigCopy, etcd_config, run_server, server_token
    if not args.disable_agent:
        from .preflight import check_node_host
        check_node_host(args.data_dir, hint="or run the server with --disable-agent")
    _logging(args.log_level)
    audit = AuditOptions(args.audit_policy_file, args.audit_log_path, args.audit_log_maxsize,
                         args.audit_log_maxbackup, args.audit_log_maxage)
    try:
        audit.policy()
    except ValueError as exc:
        raise CliError(f"podling server: {exc}") from None
    config = ServerConfig(data_dir=args.data_dir, bind_address=args.bind_address,
                          port=args.port, datastore=args.datastore,
                          etcd=etcd_config(args), token=server_token(args),
                          disable_agent=args.disable_agent, history=args.history,
                          cluster_cidr=args.cluster_cidr,
                          watch=WatchOptions(bookmark_interval=args.watch_bookmark_interval),
                          limits=RequestLimits(args.max_requests_inflight,
                                               args.max_mutating_requests_inflight,
                                               args.request_timeout),
                          node_monitor_grace_seconds=args.node_monitor_grace_period,
                          event_ttl_seconds=args.event_ttl, audit=audit)
    asyncio.run(run_server(config, agent_overrides(args), join=args.server,
                           disable_scheduler=args.disable_scheduler,
                           offline_images=not args.disable_offline_images,
                           kubeconfig=KubeconfigCopy(args.write_kubeconfig,
                                                     args.write_kubeconfig_mode)))
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    import asyncio

    from ..agent.bootstrap import JoinError
    from ..agent.config import AgentConfig
    from .agent import run_agent
    from .preflight import check_node_host
    if not args.server:
        raise UsageError("podling agent: --server is required (or PODLING_SERVER, or "
                         "server: in the config file)")
    from .tokenfile import read_token
    token = read_token(args)
    check_node_host(args.data_dir)
    _logging(args.log_level)
    config = AgentConfig(server_url=args.server[0], fallback_servers=tuple(args.server[1:]),
                         token=token, ca_file=args.ca_file,
                         data_dir=args.data_dir, node_api_address=args.node_api_address,
                         node_api_port=args.node_api_port, **agent_overrides(args))
    try:
        asyncio.run(run_agent(config))
    except JoinError as exc:
        raise CliError(f"podling agent: {exc}") from None
    return 0


def _run_purge(args: argparse.Namespace) -> int:
    import asyncio

    from ..agent.config import AgentConfig
    from .purge import inventory, purge
    config = AgentConfig(server_url="", token="", ca_file="", data_dir=args.data_dir,
                         **agent_overrides(args))
    everything = bool(getattr(args, "all", False))
    found = inventory(config, everything=everything)
    if getattr(args, "dry_run", False):
        print("podling purge: would remove" + (":" if found else " nothing"))
        for line in found:
            print(f"  {line}")
        return 0
    problems = asyncio.run(purge(config, everything=everything))
    print("podling purge: removed" + (":" if found else " nothing (already clean)"))
    for line in found:
        print(f"  {line}")
    for problem in problems:
        print(f"podling purge: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
