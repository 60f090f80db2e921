"""A local registry for tests, benchmarks and the demo: Debian's ``docker-registry``.

Never uses the package's default config (which turns on htpasswd auth and listens on :5000):
it writes its own config into ``<root>/config.yml`` — filesystem storage in ``<root>/storage``,
plain http on 127.0.0.1 and a free port, optional htpasswd or token auth — and logs to
``<root>/registry.log``. ::

    async with LocalRegistry(tmpdir) as reg:      # reg.url = "http://127.0.0.1:PORT"
        ...                                        # reg.host = "127.0.0.1:PORT"

Lifecycle: ``start()`` returns once ``GET /v2/`` answers (200 or 401); ``stop()`` sends
SIGTERM, waits, then SIGKILLs the process group; both are idempotent. The process runs in its
own session, so it never outlives ``stop()``. Storage survives a stop: starting again on the
same root serves the same content (on a new port unless ``port`` was given).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from dataclasses import dataclass, field
from typing import Any, Mapping

import aiohttp
import yaml

from podling.images.errors import RegistryError

DEFAULT_BINARY = "/usr/bin/docker-registry"
_ADDR_IN_USE = "address already in use"


@dataclass(frozen=True)
class HtpasswdAuth:
    """Basic auth: ``users`` maps user name → password (hashed with bcrypt when written)."""

    users: Mapping[str, str] = field(default_factory=dict)
    realm: str = "podling-registry"


@dataclass(frozen=True)
class TokenAuth:
    """Bearer token auth: the registry trusts tokens signed by a cert in ``rootcertbundle``."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_htpasswd(path: str, users: Mapping[str, str]) -> None:
    """Write an htpasswd file with bcrypt hashes (the only kind docker-registry accepts).

    Needs the ``bcrypt`` package (a test/demo dependency, imported here only)."""
    try:
        import bcrypt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RegistryError("htpasswd auth needs the 'bcrypt' package") from e
    lines = [f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}"
             for user, pw in users.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class LocalRegistry:
    """One ``docker-registry serve`` process on 127.0.0.1 (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], *,
                 auth: HtpasswdAuth | TokenAuth | None = None,
                 binary: str = DEFAULT_BINARY, port: int = 0,
                 start_timeout: float = 20.0) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.auth = auth
        self.binary = binary
        self.start_timeout = start_timeout
        self._fixed_port = port
        self.port = port
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, "config.yml")

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "registry.log")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def __aenter__(self) -> "LocalRegistry":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def config_dict(self) -> dict[str, Any]:
        """The docker-registry configuration this instance runs with."""
        doc: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.root, "storage")},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16),
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if isinstance(self.auth, HtpasswdAuth):
            doc["auth"] = {"htpasswd": {"realm": self.auth.realm,
                                        "path": os.path.join(self.root, "htpasswd")}}
        elif isinstance(self.auth, TokenAuth):
            doc["auth"] = {"token": {"realm": self.auth.realm, "service": self.auth.service,
                                     "issuer": self.auth.issuer,
                                     "rootcertbundle": self.auth.rootcertbundle}}
        return doc

    async def start(self) -> None:
        """Start and wait until ready; raises RegistryError with the log's tail on failure."""
        if self.running:
            return
        if not os.access(self.binary, os.X_OK):
            raise RegistryError(f"{self.binary} not found: apt-get install docker-registry")
        os.makedirs(os.path.join(self.root, "storage"), exist_ok=True)
        if isinstance(self.auth, HtpasswdAuth):
            write_htpasswd(os.path.join(self.root, "htpasswd"), self.auth.users)
        for _ in range(5):
            self.port = self._fixed_port or free_port()
            if await self._start_once():
                return
            if self._fixed_port or _ADDR_IN_USE not in self._log_tail():
                break
        raise RegistryError(f"docker-registry did not start: {self._log_tail()}")

    async def _start_once(self) -> bool:
        with open(self.config_path, "w") as f:
            yaml.safe_dump(self.config_dict(), f)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log_path, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "serve", self.config_path, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            return await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> bool:
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while asyncio.get_running_loop().time() < deadline:
                if not self.running:
                    await self.stop()
                    return False
                try:
                    async with session.get(f"{self.url}/v2/") as resp:
                        if resp.status in (200, 401):
                            return True
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    pass
                await asyncio.sleep(0.05)
        await self.stop()
        raise RegistryError(f"docker-registry on {self.host} not ready after "
                            f"{self.start_timeout}s: {self._log_tail()}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Terminate, wait up to ``timeout`` s, then kill; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        else:
            await proc.wait()

    def _log_tail(self, n: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - n))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - not our group after all
        os.kill(pid, sig)


def mirror_config(reg: LocalRegistry, registries: tuple[str, ...] = ("docker.io",), *,
                  fallback: bool = False,
                  rewrite: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A registries.yaml document mirroring ``registries`` to ``reg`` (so that
    ``image: nginx`` resolves to ``reg``'s ``library/nginx``). Without ``fallback`` the
    upstream endpoint is disabled, so nothing ever leaves the machine."""
    entry: dict[str, Any] = {"endpoint": [reg.url]}
    if rewrite:
        entry["rewrite"] = dict(rewrite)
    if not fallback:
        entry["disable_default_endpoint"] = True
    return {"mirrors": {name: dict(entry) for name in registries}}
