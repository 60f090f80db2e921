"""Helpers for the streaming e2e tests (exec, attach, port-forward, cp, the Python client).

Everything here waits on a condition with a deadline; nothing sleeps and hopes. kubectl always
runs with the cluster's own HOME and kubeconfig; ``extra_env`` switches the transports
(``SPDY_EXEC`` / ``SPDY_PORT_FORWARD``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from typing import Callable

import yaml

from manifests import busybox, pod  # noqa: F401 - the tests take them from here too

RUN_TIMEOUT = 120.0

# kubectl's transport switches (docs/kubectl-compatibility.md §10.3)
WEBSOCKET: dict[str, str] = {}
SPDY_EXEC = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
SPDY_PORT_FORWARD = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}

# A busybox main process that leaves at once on SIGTERM (a bare `sleep` as PID 1 ignores it).
SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"


def tag() -> str:
    return secrets.token_hex(3)


# -- kubectl --------------------------------------------------------------------------------


def kubectl_env(cluster, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    return dict(os.environ, HOME=cluster.server.home, KUBECONFIG=cluster.server.kubeconfig,
                **(extra_env or {}))


def kubectl(cluster, *args: str, extra_env: dict[str, str] | None = None,
            input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """kubectl with bytes in and out (stdout, stderr); never raises on a non-zero exit."""
    return subprocess.run(["kubectl", *args], input=input, capture_output=True,
                          env=kubectl_env(cluster, extra_env), timeout=timeout)


def kubectl_hash(cluster, *args: str, extra_env: dict[str, str] | None = None,
                 timeout: float = 180) -> tuple[str, int, bytes, int]:
    """Run kubectl and hash its stdout as it streams (never held in memory):
    (md5 hex, byte count, stderr, exit code)."""
    process = subprocess.Popen(["kubectl", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=kubectl_env(cluster, extra_env))
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()),
                              daemon=True)
    reader.start()
    digest, count = hashlib.md5(), 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            chunk = process.stdout.read1(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            count += len(chunk)
            if time.monotonic() > deadline:
                raise AssertionError(f"kubectl {' '.join(args)}: still streaming after "
                                     f"{timeout}s ({count} bytes)")
        rc = process.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
    return digest.hexdigest(), count, b"".join(stderr), rc


# -- pods -----------------------------------------------------------------------------------


class Pods:
    """The pods of a test module, applied at once; waits and diagnostics."""

    def __init__(self, cluster, manifests: list[dict]):
        self.cluster = cluster
        self.manifests = manifests
        cluster.apply(yaml.safe_dump_all(manifests))

    def get(self, name: str) -> dict | None:
        result = self.cluster.kubectl("get", "pod", name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def wait(self, condition: Callable[[], object], timeout: float, problem: str,
             name: str | None = None):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(self.describe(name, problem) if name else problem)
            time.sleep(0.1)

    def wait_running(self, name: str, timeout: float = RUN_TIMEOUT) -> dict:
        """Phase Running with every container running."""
        def ready():
            p = self.get(name)
            if not p or (p.get("status") or {}).get("phase") != "Running":
                return None
            statuses = p["status"].get("containerStatuses") or []
            if len(statuses) != len(p["spec"]["containers"]):
                return None
            return p if all("running" in (s.get("state") or {}) for s in statuses) else None
        return self.wait(ready, timeout, "not Running", name)

    def wait_phase(self, name: str, phase: str, timeout: float = RUN_TIMEOUT) -> dict:
        def ready():
            p = self.get(name)
            return p if p and (p.get("status") or {}).get("phase") == phase else None
        return self.wait(ready, timeout, f"not {phase}", name)

    def container_status(self, name: str, container: str) -> dict:
        p = self.get(name)
        assert p, f"pod {name} is gone"
        return [s for s in p["status"]["containerStatuses"] if s["name"] == container][0]

    def container_id(self, name: str, container: str) -> str:
        return self.container_status(name, container)["containerID"].split("://", 1)[1]

    def container_pid(self, name: str, container: str) -> int:
        """The host PID of the container's main process (conmon's pid file)."""
        path = os.path.join(self.cluster.run_dir, "runtime", "containers",
                            self.container_id(name, container), "pid")
        with open(path) as f:
            return int(f.read().strip())

    def describe(self, name: str, problem: str) -> str:
        p = self.get(name)
        status = json.dumps((p or {}).get("status"), indent=1)[:3000]
        events = self.cluster.kubectl("get", "events", "--field-selector",
                                      f"involvedObject.name={name}", check=False).stdout
        return (f"pod {name}: {problem}\nstatus: {status}\nevents:\n{events}"
                f"\nserver log tail:\n{self.cluster.log()[-3000:]}")


# -- a pseudo-terminal around kubectl -------------------------------------------------------


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _make_controlling_tty() -> None:  # runs in the child after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A process whose stdin/stdout/stderr are the slave side of a new pseudo-terminal (its
    controlling terminal); the test reads and writes the master side."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80):
        self.master, slave = os.openpty()
        set_winsize(self.master, rows, cols)
        try:
            self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                            env=env, start_new_session=True,
                                            preexec_fn=_make_controlling_tty)
        finally:
            os.close(slave)
        self.buffer = b""
        self.seen = b""  # everything ever read (diagnostics)
        self._lock = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError as e:  # EIO once the slave side is closed everywhere
                if e.errno not in (errno.EIO, errno.EBADF):
                    raise
                data = b""
            with self._lock:
                if not data:
                    self._eof = True
                    self._lock.notify_all()
                    return
                self.buffer += data
                self.seen += data
                self._lock.notify_all()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 20.0) -> re.Match:
        """Wait for ``pattern`` (a regex) in the output; consume the output up to its end."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                match = regex.search(self.buffer)
                if match:
                    self.buffer = self.buffer[match.end():]
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or (self._eof and not match):
                    raise AssertionError(f"no {pattern!r} in the terminal output within "
                                         f"{timeout}s (exited: {self.process.poll()}); "
                                         f"output so far: {self.seen[-2000:]!r}")
                self._lock.wait(min(left, 0.5))

    def resize(self, rows: int, cols: int) -> None:
        """TIOCSWINSZ on the terminal, and SIGWINCH to the process (as a terminal emulator)."""
        set_winsize(self.master, rows, cols)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGWINCH)

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout)

    def close(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process, then close the terminal once the reader has let go of it.

        The master descriptor is closed only after the reader thread has seen EOF: closed
        under a blocked ``os.read``, its number would be reused by the next pipe the test
        opens and the reader would swallow that pipe's output."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        if self._reader.is_alive():  # something still holds the terminal: leak, never race
            return
        try:
            os.close(self.master)
        except OSError:
            pass

    def __enter__(self) -> "PtyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kubectl_pty(cluster, *args: str, extra_env: dict[str, str] | None = None,
                rows: int = 24, cols: int = 80) -> PtyProcess:
    return PtyProcess(["kubectl", *args], kubectl_env(cluster, extra_env), rows, cols)


# -- kubectl port-forward -------------------------------------------------------------------


FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")


class PortForward:
    """``kubectl port-forward TARGET 0:R …``: the local port kubectl chose for each remote
    port, its output lines, and stop()."""

    def __init__(self, cluster, target: str, *remote_ports: int,
                 extra_env: dict[str, str] | None = None, extra_args: tuple[str, ...] = (),
                 timeout: float = 30.0):
        args = ["kubectl", "port-forward", *extra_args, target,
                *[f"0:{p}" for p in remote_ports]]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        env=kubectl_env(cluster, extra_env))
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        for stream, lines in ((self.process.stdout, self.stdout),
                              (self.process.stderr, self.stderr)):
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()
        self.local: dict[int, int] = {}
        try:
            self.wait_output(lambda: all(p in self._ports() for p in remote_ports), timeout,
                             "Forwarding from 127.0.0.1:… lines")
        except BaseException:
            self.stop()
            raise
        self.local = self._ports()

    def _ports(self) -> dict[int, int]:
        found = {}
        for line in list(self.stdout):
            m = FORWARDING.match(line)
            if m:
                found[int(m.group(2))] = int(m.group(1))
        return found

    def _collect(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_output(self, condition: Callable[[], object], timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = condition()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"kubectl port-forward: no {what} within {timeout}s "
                                         f"(exit {self.process.poll()});\nstdout: "
                                         f"{self.stdout}\nstderr: {self.stderr}")
                self._changed.wait(min(left, 0.5))

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "PortForward":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def http_get(port: int, path: str = "/", *, sock: socket.socket | None = None,
             timeout: float = 20.0, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """An HTTP/1.0 GET on 127.0.0.1:port (or over ``sock``): (status, body)."""
    own = sock is None
    if own:
        sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = recv_all(sock, timeout)
    finally:
        if own:
            sock.close()
    return parse_http(data)


def recv_all(sock, timeout: float = 20.0, digest=None) -> bytes | int:
    """Read until EOF (AssertionError at the deadline): the bytes, or with ``digest`` (a
    hashlib object fed as data arrives) the byte count."""
    deadline = time.monotonic() + timeout
    chunks, count = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no EOF within {timeout}s ({count} bytes read)")
        sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        count += len(chunk)
        if digest is not None:
            digest.update(chunk)
        else:
            chunks.append(chunk)
    return count if digest is not None else b"".join(chunks)


def parse_http(data: bytes) -> tuple[int, bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/"):
        raise AssertionError(f"not an HTTP response: {data[:300]!r}")
    return int(head.split()[1]), body


# -- processes and runtime leftovers --------------------------------------------------------


def read_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in_pid_ns(ns: str) -> dict[int, str]:
    """Host PID -> command line of every process in the PID namespace ``ns``."""
    return {pid: read_cmdline(pid) for pid in all_pids() if pid_ns(pid) == ns}


def processes_matching(needle: str, *, comm: str | None = None) -> dict[int, str]:
    found = {}
    for pid in all_pids():
        if pid == os.getpid():
            continue
        if comm is not None:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != comm:
                        continue
            except OSError:
                continue
        line = read_cmdline(pid)
        if needle in line:
            found[pid] = line
    return found


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tree(root: str, skip: tuple[str, ...] = ()) -> set[str]:
    """Relative paths of every file and directory under ``root`` (not below ``skip``ped
    relative directories, nor across mount points)."""
    out: set[str] = set()
    if not os.path.isdir(root):
        return out
    root_dev = os.stat(root).st_dev
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        keep = []
        for d in dirnames:
            r = os.path.normpath(os.path.join(rel, d))
            full = os.path.join(dirpath, d)
            out.add(r + "/")
            try:
                same_dev = os.lstat(full).st_dev == root_dev
            except OSError:
                continue
            if r not in skip and same_dev and not os.path.ismount(full):
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            out.add(os.path.normpath(os.path.join(rel, f)))
    return out


def file_digests(root: str) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``root``; directories as 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out
