"""Run the API server: storage, credentials, built-in namespaces, kubeconfig, HTTPS listener.

:func:`start` brings everything up and returns a :class:`RunningServer`, whose ``stop``
shuts down cleanly (open watches, listener, storage). The controllers are API clients of
their own (``podling.controllers``), started by ``podling.cli`` like the scheduler.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from aiohttp import web

from ..storage.interface import Storage
from ..storage.memory import MemoryStore
from ..storage.sqlite import SqliteStore
from . import clustersecrets, pki
from .app import build_app, registry_stores
from .audit import AuditOptions, Auditor
from .auth import ADMIN, TokenAuthenticator
from .limits import RequestLimits
from .namespaces import ensure_built_in
from .rbac import RbacAuthorizer
from .usertokens import UserTokens
from .rbacdefaults import ensure_default_policy
from .nodeauth import NodeAuth
from .nodeauth import ensure_files as ensure_node_files
from .nodetokens import STORED_PREFIX, StoredRecords, TokenRecords
from .satokens import TokenSigner
from .tokenrequest import TokenRequests
from .watch import WatchOptions

if TYPE_CHECKING:  # the etcd modules load only with --datastore etcd
    from ..storage.etcd import EtcdStore
    from ..storage.etcd.compactor import Compaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EtcdConfig:
    """Where the etcd datastore is (``--datastore etcd``)."""

    endpoints: tuple[str, ...] = ()
    prefix: str = "/registry"
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS for https endpoints: the CA to verify etcd with (the system's by default)
        and the client certificate, if given."""
        if not any(e.startswith("https://") for e in self.endpoints):
            return None
        context = ssl.create_default_context(cafile=self.cafile or None)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile or None)
        return context


@dataclass(frozen=True)
class ServerConfig:
    data_dir: str = "/var/lib/podling"
    bind_address: str = "127.0.0.1"
    port: int = 6443
    datastore: str = "sqlite"  # "sqlite" (in <data-dir>/state.db), "etcd" or "memory"
    etcd: EtcdConfig = EtcdConfig()
    # the server token (K10…::server:<secret>, or any string on the first server) that
    # seals the cluster's shared secrets in etcd (see clustersecrets); "" = the saved one
    token: str = ""
    # ``--server``: this server joins a cluster already in the datastore (never founds one)
    joining: bool = False
    disable_agent: bool = False
    history: int = 10_000  # changes kept for resuming watches (older ones answer 410)
    cluster_cidr: str = "10.42.0.0/16"  # each node gets a /24 of it as spec.podCIDR
    watch: WatchOptions = WatchOptions()
    # --max-requests-inflight, --max-mutating-requests-inflight, --request-timeout
    limits: RequestLimits = RequestLimits()
    audit: AuditOptions = AuditOptions()  # --audit-policy-file, --audit-log-path, …
    # silence before a node turns Unknown: for the node lifecycle controller podling.cli runs
    node_monitor_grace_seconds: float = 40.0
    # how long an event is kept after its last write, for the event TTL controller
    event_ttl_seconds: float = 3600.0
    # the ServiceAccount admission of pods (kube-apiserver's admission plugin); only tests
    # that run the server without the controllers (no "default" ServiceAccount) turn it off
    service_account_admission: bool = True

    @property
    def kubeconfig_path(self) -> str:
        return os.path.join(self.data_dir, "kubeconfig")


@dataclass
class RunningServer:
    config: ServerConfig
    url: str
    port: int
    admin_token: str
    ca_file: str
    storage: Storage
    runner: web.AppRunner
    node_auth: NodeAuth | None = None  # join token, node tokens, kubelet-client tokens
    # etcd: what compacts its history, for the caller to run while it leads (start / stop)
    compaction: Compaction | None = None
    rbac: RbacAuthorizer | None = None

    async def stop(self) -> None:
        """Stop listening, end open watches, close the store."""
        if self.rbac is not None:
            await self.rbac.stop()
        await self.storage.close()  # ends watch streams, so handlers return promptly
        await self.runner.cleanup()


async def open_storage(config: ServerConfig) -> Storage:
    if config.datastore == "memory":
        return MemoryStore(history=config.history)
    if config.datastore == "sqlite":
        return await SqliteStore.open(os.path.join(config.data_dir, "state.db"),
                                      history=config.history)
    if config.datastore == "etcd":
        from ..storage.etcd import EtcdClient, EtcdStore  # only etcd users pay the import
        etcd = config.etcd
        return await EtcdStore.open(EtcdClient(list(etcd.endpoints),
                                               ssl_context=etcd.ssl_context()),
                                    prefix=etcd.prefix, history=config.history)
    raise ValueError(f"unsupported --datastore {config.datastore!r} "
                     f"(use sqlite, etcd or memory)")


# connections the kernel completes before the server accepts them (Go's listeners use the
# system's maximum, 4096 on Linux; aiohttp's default of 128 makes a burst of clients wait
# for SYN retransmits, a second each)
LISTEN_BACKLOG = 4096


def _url(host: str, port: int) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


# Python's default ciphers at security level 0: a TLS 1.2 client that sends no
# signature_algorithms extension (busybox wget's built-in TLS, common in pods) is then signed
# for with SHA-1 as RFC 5246 says, which Go's TLS (kube-apiserver) also does; clients that
# send the extension, and TLS 1.3, negotiate SHA-256 or better as before.
SERVER_CIPHERS = "@SECLEVEL=0:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"


def server_tls(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """The API server's TLS context (TLS 1.2 or later; see SERVER_CIPHERS). With
    ``client_ca``, clients may present a certificate it signed for client authentication
    (:func:`.auth.certificate_user`); a certificate it did not sign fails the handshake."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.set_ciphers(SERVER_CIPHERS)
    tls.load_cert_chain(cert, key)
    if client_ca:
        tls.load_verify_locations(client_ca)
        tls.verify_mode = ssl.CERT_OPTIONAL
    return tls


def _credentials(config: ServerConfig) -> pki.ServerCredentials:
    """The CA, serving certificate and admin token in ``<data-dir>/server``, each created
    when absent (the service-account key and the node files: where they are used)."""
    return pki.ensure_credentials(config.data_dir, pki.default_hosts(config.bind_address))


def _all_secrets(config: ServerConfig) -> None:
    """Every secret a cluster shares (:mod:`.clustersecrets`), each created when absent."""
    creds = _credentials(config)
    server_dir = os.path.dirname(creds.ca_cert)
    TokenSigner.load_or_create(server_dir)
    ensure_node_files(server_dir, creds.ca_cert)


async def start(config: ServerConfig) -> RunningServer:
    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    server_dir = os.path.join(config.data_dir, "server")
    storage = await open_storage(config)
    records: TokenRecords | None = None
    compaction = None
    if config.datastore == "etcd":  # several servers may share it: so are the secrets
        try:
            await clustersecrets.share(storage, server_dir, config.token,
                                       lambda: _all_secrets(config), joining=config.joining)
        except BaseException:
            await storage.close()
            raise
        records = StoredRecords(storage, location=config.etcd.prefix + STORED_PREFIX)
        compaction = cast("EtcdStore", storage).compaction()
    creds = _credentials(config)
    rbac = RbacAuthorizer(storage)
    stores = registry_stores(storage, cluster_cidr=config.cluster_cidr,
                             service_account_admission=config.service_account_admission,
                             rbac=rbac)
    await ensure_built_in(stores["namespaces"])
    await ensure_default_policy(stores)
    await rbac.start()
    token = pki.read_token(creds.admin_token)
    node_auth = NodeAuth(server_dir, creds.ca_cert, records)
    tokens = TokenRequests(stores, TokenSigner.load_or_create(server_dir))
    authenticator = TokenAuthenticator({token: ADMIN},
                                       (node_auth.authenticate, tokens.authenticate,
                                        UserTokens(stores["secrets"]).authenticate))
    app = build_app(stores, authenticator, config.watch,
                    node_token=node_auth.kubelet_client_token, extra=node_auth, tokens=tokens,
                    limits=config.limits, rbac=rbac, auditor=Auditor.open(config.audit))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    tls = server_tls(creds.cert, creds.key, creds.ca_cert)
    site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=tls,
                       reuse_address=True, backlog=LISTEN_BACKLOG)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
    url = _url(config.bind_address, port)
    pki.write_kubeconfig(config.kubeconfig_path, url, creds.ca_cert, token)
    log.info("podling API server listening on %s; kubeconfig %s", url, config.kubeconfig_path)
    return RunningServer(config, url, port, token, creds.ca_cert, storage, runner,
                         node_auth=node_auth, compaction=compaction, rbac=rbac)
