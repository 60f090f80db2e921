"""``podling server``: the API server, the controllers, the scheduler (unless
--disable-scheduler) and a local node agent (unless --disable-agent).

The controllers and the scheduler are API clients of the server (admin token), each with a
client of its own, exactly as they would be in processes of their own.

The local agent is an ordinary API client of the server, as any other node would be: it
joins with the join token (``<data-dir>/server/node-token``, printed at start) and runs with
its node's credentials (``system:node:<name>``). SIGINT / SIGTERM stop the agent first
(containers keep running), then the server.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import hashlib
import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..apiserver.clustersecrets import TOKEN_FILE, BootstrapError
from ..apiserver.server import EtcdConfig, RunningServer, ServerConfig, start
from ..client import ApiClient, ClientConfig
from ..client.leaderelection import LeaderElectionConfig, LeaderElector, lead_while_elected
from ..controllers import ControllerConfig, ControllerManager
from ..scheduler import Scheduler
from ..storage.interface import StorageError
from .errors import CliError, UsageError
from .tokenfile import read_token
from .tuning import tune_process

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KubeconfigCopy:
    """``--write-kubeconfig PATH`` (also write the admin kubeconfig there; "" = only in the
    data dir) and ``--write-kubeconfig-mode`` (the mode of every kubeconfig written)."""

    path: str = ""
    mode: int = 0o600


_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def etcd_config(args: argparse.Namespace) -> EtcdConfig:
    """The ``--etcd-*`` flags, checked: endpoints (http(s) URLs, see ``flags.urls``) exactly
    with ``--datastore etcd``; the TLS files readable."""
    endpoints = tuple(e for e in args.etcd_endpoints if e)
    if args.datastore == "etcd" and not endpoints:
        raise UsageError("podling server: --datastore etcd needs --etcd-endpoints URL[,URL...]")
    if endpoints and args.datastore != "etcd":
        raise UsageError("podling server: --etcd-endpoints needs --datastore etcd")
    for flag, path in (("--etcd-cafile", args.etcd_cafile),
                       ("--etcd-certfile", args.etcd_certfile),
                       ("--etcd-keyfile", args.etcd_keyfile)):
        if path and not os.access(path, os.R_OK):
            raise UsageError(f"podling server: {flag}: cannot read {path}")
    return EtcdConfig(endpoints, args.etcd_prefix.rstrip("/") or "/registry", args.etcd_cafile,
                      args.etcd_certfile, args.etcd_keyfile)


def server_token(args: argparse.Namespace) -> str:
    """``--token`` / ``--token-file`` ("" for none), which like ``--server`` only a server on
    etcd takes."""
    token = read_token(args, "server", required=False)
    if (token or args.server) and args.datastore != "etcd":
        raise UsageError("podling server: --token and --server are for servers that share "
                         "etcd (--datastore etcd)")
    if args.server and not token:
        raise UsageError("podling server: --server needs the server token (--token or "
                         "--token-file)")
    return token


async def check_join_target(url: str, token: str) -> None:
    """``--server URL``: the server there must serve the CA the server token pins."""
    from ..agent.bootstrap import JoinError, fetch_ca
    from ..util import jointoken
    pinned = jointoken.parse(token, jointoken.SERVER)
    if pinned is None:
        raise CliError("podling server: --server needs the server token as the first server "
                       "wrote it (K10<ca hash>::server:<secret>, in <data-dir>/server/token)")
    try:
        pem = await fetch_ca(url)
    except JoinError as exc:
        raise CliError(f"podling server: --server: {exc}") from None
    if jointoken.ca_hash(pem) != pinned.ca_hash:
        raise CliError(f"podling server: the CA of {url} does not match the token's hash "
                       "(a server of another cluster?)")


async def _start(config: ServerConfig) -> RunningServer:
    """start(config), with a one-line CliError when the address cannot be listened on or
    the datastore cannot be reached."""
    try:
        return await start(config)
    except StorageError as exc:
        raise CliError(f"podling server: cannot open the {config.datastore} datastore: "
                       f"{exc}") from None
    except BootstrapError as exc:
        raise CliError(f"podling server: {exc}") from None
    except OSError as exc:
        if exc.errno not in _LISTEN_ERRORS:
            raise
        hint = " (is another podling or API server running? choose --port)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise CliError(f"podling server: cannot listen on {config.bind_address}:"
                       f"{config.port}: {os.strerror(exc.errno)}{hint}") from None


def write_kubeconfigs(source: str, copy: KubeconfigCopy) -> None:
    """Apply ``copy.mode`` to ``source`` and write ``copy.path`` (atomically) if set."""
    os.chmod(source, copy.mode)
    if not copy.path:
        return
    target = os.path.abspath(copy.path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(source, "rb") as f:
        data = f.read()
    tmp = f"{target}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, copy.mode)
    os.fchmod(fd, copy.mode)  # whatever the umask
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


async def run_server(config: ServerConfig, agent_overrides: dict | None = None, *,
                     join: str = "", disable_scheduler: bool = False,
                     offline_images: bool = True,
                     kubeconfig: KubeconfigCopy = KubeconfigCopy()) -> None:
    """Run until SIGINT / SIGTERM. ``join``: the URL of a server of the cluster this one
    joins (``--server``)."""
    tune_process()
    if join:
        await check_join_target(join, config.token)
        config = dataclasses.replace(config, joining=True)
    server = await _start(config)
    join_token_file = _announce(config, server, kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client_config = ClientConfig(server=server.url, token=server.admin_token,
                                 ca_file=server.ca_file)
    controllers_client = ApiClient(client_config)
    controller_config = ControllerConfig(
        node_monitor_grace_seconds=config.node_monitor_grace_seconds,
        event_ttl_seconds=config.event_ttl_seconds, root_ca_pem=_read(server.ca_file) + "\n")
    identity = leader_identity(config.data_dir)
    leading = [_elected(controllers_client, "podling-controller-manager", identity,
                        lambda: _Together(ControllerManager(controllers_client,
                                                            controller_config),
                                          server.compaction))]
    scheduler_client = None
    if not disable_scheduler:
        scheduler_client = ApiClient(client_config)
        leading.append(_elected(scheduler_client, "podling-scheduler", identity,
                                lambda: Scheduler(scheduler_client)))
    agent, importing = None, None
    if not config.disable_agent:
        agent, importing = await _start_local_agent(config, server, join_token_file,
                                                    agent_overrides, offline_images)
    await stop.wait()
    print("podling: shutting down", flush=True)
    for task in leading:  # stops the scheduler and the controllers, releases their leases
        task.cancel()
    await asyncio.gather(*leading, return_exceptions=True)
    if scheduler_client is not None:
        await scheduler_client.close()
    if importing is not None:
        importing.cancel()
        await asyncio.gather(importing, return_exceptions=True)
    if agent is not None:
        from .agent import stop_agent
        await stop_agent(agent)
    await controllers_client.close()
    await server.stop()


def _announce(config: ServerConfig, server: RunningServer, kubeconfig: KubeconfigCopy) -> str:
    """Write the kubeconfigs and say where everything is; returns the join token's file."""
    write_kubeconfigs(config.kubeconfig_path, kubeconfig)
    if kubeconfig.path:
        print(f"podling: kubeconfig also written to {kubeconfig.path}", flush=True)
    print(f"podling: API server ready at {server.url} (kubeconfig: "
          f"{config.kubeconfig_path})", flush=True)
    join_token_file = server.node_auth.join_token_file if server.node_auth else ""
    print(f"podling: join token in {join_token_file}", flush=True)
    if config.datastore == "etcd":
        print(f"podling: server token (for more servers on this etcd) in "
              f"{os.path.join(config.data_dir, 'server', TOKEN_FILE)}", flush=True)
    return join_token_file


def leader_identity(data_dir: str) -> str:
    """This server's candidate identity in leader elections: the host and its data dir, so
    that a restarted server takes its own lease back at once."""
    digest = hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}_{digest}"


class _Component(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Together:
    """Components started in order and stopped in reverse (None: absent)."""

    def __init__(self, *components: _Component | None) -> None:
        self._components = [c for c in components if c is not None]

    def start(self) -> None:
        for component in self._components:
            component.start()

    async def stop(self) -> None:
        for component in reversed(self._components):
            await component.stop()


def _elected(client: ApiClient, name: str, identity: str,
             make: Callable[[], _Component]) -> asyncio.Task[None]:
    """A task that runs a component (the scheduler; the controllers with etcd's
    compaction), made afresh for each term, only while this server holds the Lease
    ``kube-system/<name>``: so one of them runs in a cluster of servers."""
    async def lead() -> None:
        component = make()
        component.start()
        try:
            await asyncio.Event().wait()
        finally:
            await component.stop()
    elector = LeaderElector(client, LeaderElectionConfig(name, identity))
    return asyncio.create_task(lead_while_elected(elector, lead), name=f"elect-{name}")


async def _start_local_agent(config: ServerConfig, server: RunningServer, join_token_file: str,
                             agent_overrides: dict | None, offline_images: bool
                             ) -> tuple[Any, asyncio.Task[None] | None]:
    """The local node's agent (None when it cannot start: the API is served anyway) and,
    with ``offline_images``, the background import of the offline images into its store."""
    # the agent's modules load only when this process runs the local agent
    from ..agent.config import AgentConfig
    from .agent import start_agent, with_credentials
    agent_config = AgentConfig(server_url=server.url, token=_read(join_token_file),
                               ca_file=server.ca_file, data_dir=config.data_dir,
                               node_api_address="127.0.0.1", node_api_port=0,
                               **(agent_overrides or {}))
    try:
        agent = await start_agent(await with_credentials(agent_config))
    except Exception:
        log.exception("the local agent could not start; serving the API only")
        return None, None
    print(f"podling: local agent running as node {agent_config.node_name}", flush=True)
    if not offline_images:
        return agent, None
    from ..images.offline import import_at_start
    return agent, asyncio.create_task(import_at_start(agent.parts.images, config.data_dir,
                                                      log))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
