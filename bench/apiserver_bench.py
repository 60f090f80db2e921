#!/usr/bin/env python3
"""Benchmark the podling API server: start-up, request throughput, watch fan-out, memory.

Runs real ``python -m podling server`` subprocesses on 127.0.0.1 (``--port 0``, SQLite in a
temporary data dir, ``--disable-agent``) and drives them over HTTPS with keep-alive aiohttp
sessions, authenticated with the admin token from ``<data-dir>/kubeconfig`` and verifying the
server with ``<data-dir>/server/ca.crt``.

    .venv/bin/python bench/apiserver_bench.py            # full run (a few minutes on 2 cores)
    .venv/bin/python bench/apiserver_bench.py --quick    # small numbers (well under a minute)

Phases:

1. start-to-ready: spawn -> "API server ready" line, and spawn -> first authenticated
   ``GET /readyz`` answered 200; cold starts (fresh data dir: CA and certificates generated)
   and warm starts (the same data dir again).
2. throughput: pod creates, gets, JSON lists and Table lists with 1 client and with 8
   concurrent clients (each client is its own session with one keep-alive TLS connection).
3. watch fan-out: N watchers from the current resourceVersion, then M label patches from one
   writer; delivered events per second and write-ack -> event-seen latency.
4. RSS (VmRSS / VmHWM of the server process) at points through the run.

This is a measurement, not a test: nothing asserts on timings. The report is printed and
written as JSON to ``bench/results/apiserver-<timestamp>.json``. The benchmark client runs on
the same machine as the server, so on a small box the two compete for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import dataclasses
import json
import os
import platform
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable

import aiohttp
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "bench", "results")
READY_TIMEOUT = 30.0
SERVER_ARGS: list[str] = []  # e.g. ["--datastore", "memory"], from the command line
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
SEQ_LABEL = "bench-seq"
SEQ_RE = re.compile(rb'"' + SEQ_LABEL.encode() + rb'":\s*"(\d+)"')


# --------------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class Params:
    cold_starts: int
    warm_starts: int
    creates: int            # per concurrency level, in two equal batches (two namespaces)
    gets: int
    lists: int              # JSON lists of one namespace holding creates // 2 pods
    table_lists: int
    concurrency: tuple[int, ...]
    watchers: tuple[int, ...]
    watch_writes: int       # label patches per watcher round
    watch_pods: int         # pods the patches go round-robin over
    watch_timeout: float    # seconds to wait for every watcher to see every write
    watch_writers: int = 1  # concurrent writers sharing the patches (--watch-writers)


FULL = Params(cold_starts=5, warm_starts=5, creates=2000, gets=2000, lists=200, table_lists=200,
              concurrency=(1, 8), watchers=(10, 50), watch_writes=1000, watch_pods=100,
              watch_timeout=180.0)
QUICK = Params(cold_starts=3, warm_starts=3, creates=600, gets=600, lists=30, table_lists=30,
               concurrency=(1, 8), watchers=(5, 20), watch_writes=200, watch_pods=20,
               watch_timeout=30.0)


# --------------------------------------------------------------------------------------------
# cleanup: every server we spawn and every temp dir we make is undone on exit, also on Ctrl-C


_PROCESSES: list[subprocess.Popen] = []
_TEMP_DIRS: list[str] = []


def start_etcd() -> str:
    """A throw-away etcd member for ``--datastore etcd``; its URL. Stopped by _cleanup."""
    sys.path.insert(0, REPO)
    from podling.storage.etcd.testing import EtcdProcess
    etcd = EtcdProcess(make_temp_dir("podling-bench-etcd-")).start()
    _PROCESSES.append(etcd.process)  # type: ignore[arg-type]
    return etcd.url


def _cleanup() -> None:
    for process in list(_PROCESSES):
        _stop_process(process, timeout=5.0)
    for path in list(_TEMP_DIRS):
        shutil.rmtree(path, ignore_errors=True)
        _TEMP_DIRS.remove(path)


def _stop_process(process: subprocess.Popen, timeout: float = 10.0) -> float:
    """SIGTERM, then SIGKILL after ``timeout``; returns the seconds it took to exit."""
    start = time.perf_counter()
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)
        except ProcessLookupError:
            pass
    if process in _PROCESSES:
        _PROCESSES.remove(process)
    return time.perf_counter() - start


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


atexit.register(_cleanup)


def make_temp_dir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(path)
    return path


# --------------------------------------------------------------------------------------------
# the server under test


class ServerProcess:
    """A ``podling server`` subprocess; its stdout is read by a thread until EOF."""

    def __init__(self, data_dir: str, extra: tuple[str, ...] = ()) -> None:
        extra = (*SERVER_ARGS, *extra)
        self.data_dir = data_dir
        self.lines: list[str] = []
        self.ready_at: float | None = None
        self._ready = threading.Event()
        self.spawned_at = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podling", "server", "--data-dir", data_dir, "--port", "0",
             "--disable-agent", *extra],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)  # Ctrl-C reaches only us; we stop the server ourselves
        _PROCESSES.append(self.process)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.token = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self.ready_at is None and "API server ready" in line:
                self.ready_at = time.perf_counter()
                self._ready.set()
            if len(self.lines) < 200:
                self.lines.append(line)
        self._ready.set()  # EOF: wake the waiter, which then sees no ready_at

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ca_file(self) -> str:
        return os.path.join(self.data_dir, "server", "ca.crt")

    async def wait_ready(self) -> None:
        """Wait for the ready line; then read URL and token from the kubeconfig."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._ready.wait, READY_TIMEOUT)
        if self.ready_at is None:
            self.stop()
            raise RuntimeError("podling server did not become ready:\n" + "".join(self.lines))
        with open(os.path.join(self.data_dir, "kubeconfig")) as f:
            config = yaml.safe_load(f)
        self.url = config["clusters"][0]["cluster"]["server"]
        self.token = config["users"][0]["user"]["token"]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def stop(self) -> float:
        return _stop_process(self.process)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all threads) so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) in KiB."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        return out


class Client:
    """One client: its own aiohttp session holding one keep-alive TLS connection."""

    def __init__(self, server: ServerProcess, ssl_ctx: ssl.SSLContext) -> None:
        self.base = server.url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=1),
            headers={"Authorization": "Bearer " + server.token},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=120))

    async def request(self, method: str, path: str, *, data: bytes | None = None,
                      headers: dict[str, str] | None = None, expect: int = 200) -> bytes:
        async with self.session.request(method, self.base + path, data=data,
                                        headers=headers) as resp:
            body = await resp.read()
            if resp.status != expect:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status} (wanted {expect}): "
                                   f"{body[:500]!r}")
            return body

    async def close(self) -> None:
        await self.session.close()


# --------------------------------------------------------------------------------------------
# statistics


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarize(latencies: list[float], elapsed: float,
              cpu: tuple[float, float] | None = None) -> dict[str, float]:
    """``cpu``: (server CPU seconds, benchmark-client CPU seconds) spent meanwhile."""
    s = sorted(latencies)
    extra = {}
    if cpu is not None and s:
        extra = {"server_cpu_s": round(cpu[0], 3),
                 "server_cpu_ms_per_op": round(cpu[0] / len(s) * 1000, 3),
                 "client_cpu_s": round(cpu[1], 3)}
    return {**extra, "count": len(s), "seconds": round(elapsed, 4),
            "per_second": round(len(s) / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(percentile(s, 50) * 1000, 3),
            "p99_ms": round(percentile(s, 99) * 1000, 3),
            "max_ms": round(s[-1] * 1000, 3) if s else float("nan"),
            "mean_ms": round(sum(s) / len(s) * 1000, 3) if s else float("nan")}


# --------------------------------------------------------------------------------------------
# workload


def pod_manifest(namespace: str, name: str, index: int) -> dict[str, Any]:
    """A realistic two-container pod: labels, annotations, ports, env, resources, probes."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"app": "shop-frontend", "tier": "web", "version": "v1.4.2",
                       "bench-index": str(index), "bench-shard": str(index % 10)},
            "annotations": {"example.com/owner": "team-storefront",
                            "example.com/commit": "8f2c3d4e5a6b7c8d9e0f"},
        },
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {"name": "web", "image": "docker.io/library/nginx:1.27",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                           {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"},
                         {"name": "UPSTREAM", "value": "http://catalog.shop.svc:8080"},
                         {"name": "POD_NAME",
                          "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "POD_IP",
                          "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                               "limits": {"cpu": "500m", "memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                    "periodSeconds": 5},
                 "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/nginx"}]},
                {"name": "log-shipper", "image": "docker.io/library/busybox:1.36",
                 "command": ["sh", "-c", "tail -F /var/log/app/access.log"],
                 "env": [{"name": "SHIP_TO", "value": "logs.example.com:514"},
                         {"name": "BATCH", "value": "100"}],
                 "ports": [{"name": "admin", "containerPort": 7000}],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                 "volumeMounts": [{"name": "cache", "mountPath": "/var/log/app"}]},
            ],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        },
    }


async def run_clients(server: ServerProcess, count: int, clients: list[Client],
                      op: Callable[[Client, int], Awaitable[None]]
                      ) -> tuple[list[float], float, tuple[float, float]]:
    """Run ``op(client, i)`` for i in 0..count-1 spread over the clients (each takes the next
    index when it is done with its previous one); returns per-op latencies, wall time and
    (server CPU seconds, client CPU seconds) used meanwhile."""
    latencies: list[float] = [0.0] * count
    counter = iter(range(count))

    async def worker(client: Client) -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(client, i)
            latencies[i] = time.perf_counter() - t0

    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - start
    return latencies, elapsed, (server.cpu_seconds() - server_cpu,
                                time.process_time() - client_cpu)


async def create_namespace(client: Client, name: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name}}).encode()
    await client.request("POST", "/api/v1/namespaces", data=body,
                         headers={"Content-Type": "application/json"}, expect=201)


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


async def throughput_level(server: ServerProcess, ssl_ctx: ssl.SSLContext, p: Params,
                           concurrency: int, report: Callable[[str], None],
                           rss_points: list[dict[str, Any]]) -> dict[str, Any]:
    clients = [Client(server, ssl_ctx) for _ in range(concurrency)]
    out: dict[str, Any] = {"clients": concurrency}
    try:
        half = p.creates // 2
        namespaces = [f"bench-c{concurrency}-a", f"bench-c{concurrency}-b"]
        for ns in namespaces:
            await create_namespace(clients[0], ns)
        # warm every connection (TLS handshake) before timing anything
        await asyncio.gather(*(c.request("GET", "/readyz") for c in clients))

        # creates: two batches of `half` pods, one namespace each; RSS between the batches
        latencies: list[float] = []
        elapsed = server_cpu = client_cpu = 0.0
        for batch, ns in enumerate(namespaces):
            bodies = [json.dumps(pod_manifest(ns, f"pod-{i:05d}", i)).encode()
                      for i in range(half)]

            async def create(client: Client, i: int, ns=ns, bodies=bodies) -> None:
                await client.request("POST", f"/api/v1/namespaces/{ns}/pods", data=bodies[i],
                                     headers=JSON_HEADERS, expect=201)
            lat, secs, (scpu, ccpu) = await run_clients(server, half, clients, create)
            latencies += lat
            elapsed += secs
            server_cpu += scpu
            client_cpu += ccpu
            rss_points.append({"point": f"c={concurrency}: {half * (batch + 1)} pods stored "
                                        f"(after creates)", **server.rss()})
        out["create"] = summarize(latencies, elapsed, (server_cpu, client_cpu))
        report(_line(f"create (c={concurrency})", out["create"]))

        # gets: spread over all pods of both namespaces, in a shuffled order
        rng = random.Random(concurrency)
        targets = [(namespaces[i % 2], f"pod-{(i // 2) % half:05d}") for i in range(p.gets)]
        rng.shuffle(targets)

        async def get(client: Client, i: int) -> None:
            ns, name = targets[i]
            await client.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}",
                                 headers={"Accept": "application/json"})
        out["get"] = summarize(*await run_clients(server, p.gets, clients, get))
        report(_line(f"get (c={concurrency})", out["get"]))

        # lists of one namespace (half pods); check the first answer once, outside timing
        list_path = f"/api/v1/namespaces/{namespaces[0]}/pods"
        first = json.loads(await clients[0].request("GET", list_path))
        if len(first["items"]) != half:
            raise RuntimeError(f"list returned {len(first['items'])} pods, wanted {half}")
        sizes: list[int] = []

        async def list_json(client: Client, i: int) -> None:
            body = await client.request("GET", list_path, headers={"Accept": "application/json"})
            if i == 0:
                sizes.append(len(body))
        out["list"] = summarize(*await run_clients(server, p.lists, clients, list_json))
        out["list"]["pods_per_list"] = half
        out["list"]["bytes"] = sizes[0] if sizes else None
        report(_line(f"list {half} pods JSON (c={concurrency})", out["list"],
                     f"{sizes[0] / 1e6:.2f} MB" if sizes else ""))

        table_first = json.loads(await clients[0].request("GET", list_path,
                                                          headers={"Accept": TABLE_ACCEPT}))
        if table_first.get("kind") != "Table" or len(table_first.get("rows", [])) != half:
            raise RuntimeError("Table list did not return a Table with every pod")
        tsizes: list[int] = []

        async def list_table(client: Client, i: int) -> None:
            body = await client.request("GET", list_path, headers={"Accept": TABLE_ACCEPT})
            if i == 0:
                tsizes.append(len(body))
        out["table_list"] = summarize(*await run_clients(server, p.table_lists, clients,
                                                         list_table))
        out["table_list"]["pods_per_list"] = half
        out["table_list"]["bytes"] = tsizes[0] if tsizes else None
        report(_line(f"list {half} pods Table (c={concurrency})", out["table_list"],
                     f"{tsizes[0] / 1e6:.2f} MB" if tsizes else ""))

        # remove this level's pods so the next level starts from the same store size
        t0 = time.perf_counter()
        deleted = 0
        for ns in namespaces:
            body = json.loads(await clients[0].request(
                "DELETE", f"/api/v1/namespaces/{ns}/pods", headers=JSON_HEADERS))
            deleted += len(body.get("items", []))
        out["deletecollection"] = {"pods": deleted,
                                   "seconds": round(time.perf_counter() - t0, 4)}
        report(f"  deletecollection (c={concurrency}): {deleted} pods in "
               f"{out['deletecollection']['seconds']:.2f} s")
        rss_points.append({"point": f"c={concurrency}: after deleting its {deleted} pods",
                           **server.rss()})
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return out


def _line(name: str, s: dict[str, float], extra: str = "") -> str:
    text = (f"  {name:<30} {s['count']:>5} in {s['seconds']:>6.2f} s {s['per_second']:>7.1f}/s"
            f"  p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>7.2f} ms"
            f"  srv {s.get('server_cpu_ms_per_op', float('nan')):>6.2f} cpu-ms/op")
    return text + (f"  ({extra})" if extra else "")


# --------------------------------------------------------------------------------------------
# watch fan-out


class Watcher:
    """One watch stream on its own connection; records when each write's event arrives."""

    def __init__(self, server: ServerProcess, ssl_ctx: ssl.SSLContext, path: str,
                 expected: int) -> None:
        self.client = Client(server, ssl_ctx)
        self.path = path
        self.expected = expected
        self.seen: dict[int, float] = {}
        self.events = 0
        self.other = 0
        self.done = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.error: BaseException | None = None

    async def open(self) -> None:
        """Returns once the server answered the watch (its stream is registered)."""
        started = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run(started))
        await started

    async def _run(self, started: asyncio.Future) -> None:
        try:
            async with self.client.session.get(self.client.base + self.path,
                                               headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"watch: HTTP {resp.status}: {await resp.text()}")
                started.set_result(None)
                async for line in resp.content:
                    now = time.perf_counter()
                    if not line.strip():
                        continue
                    self.events += 1
                    # cheap: find the label instead of decoding the whole object
                    match = SEQ_RE.search(line)
                    if match is None:
                        self.other += 1
                        continue
                    seq = int(match.group(1))
                    if seq not in self.seen:
                        self.seen[seq] = now
                    if len(self.seen) >= self.expected:
                        self.done.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported in the results
            self.error = exc
            if not started.done():
                started.set_exception(exc)
        finally:
            self.done.set()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await self.client.close()


async def watch_round(server: ServerProcess, ssl_ctx: ssl.SSLContext, p: Params,
                      writers: list[Client], namespace: str, n_watchers: int,
                      seq_base: int) -> dict[str, Any]:
    body = json.loads(await writers[0].request("GET", f"/api/v1/namespaces/{namespace}/pods"))
    rv = body["metadata"]["resourceVersion"]
    path = (f"/api/v1/namespaces/{namespace}/pods?watch=true&resourceVersion={rv}"
            f"&timeoutSeconds=600")
    watchers = [Watcher(server, ssl_ctx, path, p.watch_writes) for _ in range(n_watchers)]
    try:
        await asyncio.gather(*(w.open() for w in watchers))
        sent: list[float] = [0.0] * p.watch_writes
        acked: list[float] = [0.0] * p.watch_writes
        headers = {"Content-Type": "application/strategic-merge-patch+json",
                   "Accept": "application/json"}

        async def write(k: int) -> None:  # writer k sends patches k, k + n, k + 2n, ...
            for i in range(k, p.watch_writes, len(writers)):
                seq = seq_base + i
                name = f"pod-{i % p.watch_pods:05d}"
                patch = json.dumps({"metadata": {"labels": {SEQ_LABEL: str(seq)}}}).encode()
                sent[i] = time.perf_counter()
                await writers[k].request("PATCH",
                                         f"/api/v1/namespaces/{namespace}/pods/{name}",
                                         data=patch, headers=headers)
                acked[i] = time.perf_counter()
        cpu0 = server.cpu_seconds()
        write_start = time.perf_counter()
        await asyncio.gather(*(write(k) for k in range(len(writers))))
        writes_done = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in watchers)),
                                   p.watch_timeout)
        except asyncio.TimeoutError:
            pass
        server_cpu = server.cpu_seconds() - cpu0
        ack_lat: list[float] = []
        send_lat: list[float] = []
        last = write_start
        delivered = missing = 0
        for w in watchers:
            for i in range(p.watch_writes):
                t = w.seen.get(seq_base + i)
                if t is None:
                    missing += 1
                    continue
                delivered += 1
                ack_lat.append(t - acked[i])
                send_lat.append(t - sent[i])
                last = max(last, t)
        span = last - write_start
        ack_lat.sort()
        send_lat.sort()
        errors = [repr(w.error) for w in watchers if w.error is not None]
        return {
            "watchers": n_watchers, "writes": p.watch_writes, "writers": len(writers),
            "write_seconds": round(writes_done - write_start, 4),
            "writes_per_second": round(p.watch_writes / (writes_done - write_start), 1),
            "events_delivered": delivered, "events_missing": missing,
            "other_events": sum(w.other for w in watchers),
            "delivery_seconds": round(span, 4),
            "events_per_second": round(delivered / span, 1) if span > 0 else 0.0,
            "ack_to_seen_p50_ms": round(percentile(ack_lat, 50) * 1000, 3),
            "ack_to_seen_p99_ms": round(percentile(ack_lat, 99) * 1000, 3),
            "send_to_seen_p50_ms": round(percentile(send_lat, 50) * 1000, 3),
            "send_to_seen_p99_ms": round(percentile(send_lat, 99) * 1000, 3),
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_us_per_event": (round(server_cpu / delivered * 1e6, 1) if delivered
                                        else None),
            "watcher_errors": errors,
        }
    finally:
        await asyncio.gather(*(w.close() for w in watchers))


async def watch_phase(server: ServerProcess, ssl_ctx: ssl.SSLContext, p: Params,
                      report: Callable[[str], None]) -> list[dict[str, Any]]:
    writers = [Client(server, ssl_ctx) for _ in range(p.watch_writers)]
    writer = writers[0]
    namespace = "bench-watch"
    try:
        await create_namespace(writer, namespace)
        for i in range(p.watch_pods):
            await writer.request("POST", f"/api/v1/namespaces/{namespace}/pods",
                                 data=json.dumps(pod_manifest(namespace, f"pod-{i:05d}",
                                                              i)).encode(),
                                 headers=JSON_HEADERS, expect=201)
        rounds = []
        for n, watchers in enumerate(p.watchers):
            result = await watch_round(server, ssl_ctx, p, writers, namespace, watchers,
                                       seq_base=(n + 1) * 1_000_000)
            rounds.append(result)
            report(f"  {watchers:>3} watchers x {result['writes']} patches: "
                   f"{result['events_delivered']} events in {result['delivery_seconds']:.2f} s "
                   f"= {result['events_per_second']:.0f} events/s; writes "
                   f"{result['writes_per_second']:.0f}/s; ack->seen p50 "
                   f"{result['ack_to_seen_p50_ms']:.2f} ms p99 "
                   f"{result['ack_to_seen_p99_ms']:.2f} ms; "
                   f"srv {result['server_cpu_us_per_event']} cpu-us/event"
                   + (f"; MISSING {result['events_missing']}" if result["events_missing"] else "")
                   + (f"; errors {result['watcher_errors'][:2]}" if result["watcher_errors"]
                      else ""))
        return rounds
    finally:
        await asyncio.gather(*(w.close() for w in writers))


# --------------------------------------------------------------------------------------------
# start-to-ready


async def readyz_once(server: ServerProcess) -> None:
    """A fresh session (new TLS handshake) doing one authenticated GET /readyz."""
    client = Client(server, server.ssl_context())
    try:
        await client.request("GET", "/readyz")
    finally:
        await client.close()


async def timed_start(data_dir: str) -> tuple[ServerProcess, dict[str, float]]:
    server = ServerProcess(data_dir)
    await server.wait_ready()
    await readyz_once(server)
    done = time.perf_counter()
    assert server.ready_at is not None
    return server, {"ready_line_s": server.ready_at - server.spawned_at,
                    "readyz_s": done - server.spawned_at}


async def startup_phase(p: Params, base: str, report: Callable[[str], None]) -> dict[str, Any]:
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    stop_times: list[float] = []
    warm_dir = ""
    for i in range(p.cold_starts):
        data_dir = os.path.join(base, f"cold-{i}")
        server, t = await timed_start(data_dir)
        stop_times.append(server.stop())
        cold.append(t)
        warm_dir = data_dir
    for i in range(p.warm_starts):
        server, t = await timed_start(warm_dir)
        stop_times.append(server.stop())
        warm.append(t)
    out = {}
    for label, runs in (("cold", cold), ("warm", warm)):
        out[label] = {
            "runs": [{k: round(v, 4) for k, v in r.items()} for r in runs],
            "ready_line_median_s": round(median([r["ready_line_s"] for r in runs]), 4),
            "readyz_median_s": round(median([r["readyz_s"] for r in runs]), 4),
        }
        report(f"  {label:<5} starts ({len(runs)}): median to ready line "
               f"{out[label]['ready_line_median_s'] * 1000:.0f} ms, to first authenticated "
               f"/readyz {out[label]['readyz_median_s'] * 1000:.0f} ms "
               f"(min {min(r['readyz_s'] for r in runs) * 1000:.0f}, "
               f"max {max(r['readyz_s'] for r in runs) * 1000:.0f})")
    out["shutdown_median_s"] = round(median(stop_times), 4)
    report(f"  SIGTERM to exit: median {out['shutdown_median_s'] * 1000:.0f} ms")
    return out


# --------------------------------------------------------------------------------------------
# main


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "podling"], cwd=REPO,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"loadavg_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count(), "cpu_model": model,
            "git_commit": commit, "podling_dirty": dirty}


def _db_counts(data_dir: str) -> dict[str, int]:
    """Rows in the stopped server's SQLite file (objects, retained events)."""
    import sqlite3
    path = os.path.join(data_dir, "state.db")
    if not os.path.exists(path):
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("objects", "events")}
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


async def run(p: Params, mode: str, phases: set[str]) -> dict[str, Any]:
    lines: list[str] = []

    def report(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    results: dict[str, Any] = {"mode": mode, "params": asdict(p), "phases": sorted(phases),
                               "server_args": SERVER_ARGS, "environment": environment(),
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    env = results["environment"]
    datastore = next((d for d in ("memory", "etcd") if d in SERVER_ARGS), "SQLite")
    flags = " ".join(["--disable-agent"] + [a for a in SERVER_ARGS if a.startswith("--disable")])
    report(f"podling API server benchmark ({mode}, {datastore}, {flags}) - "
           f"Python {env['python']}, aiohttp {env['aiohttp']}, {env['cpus']} CPUs, "
           f"commit {env['git_commit'][:10]}{' + local changes' if env['podling_dirty'] else ''}")
    report("(client and server share the machine; 'srv cpu-ms/op' is the server's CPU time "
           "per operation)")
    load = env["loadavg_at_start"][0]
    if load > 0.5:
        report(f"NOTE: load average {load:.2f} before starting: other processes are busy, so "
               f"wall-clock figures will be noisy (CPU-time figures less so)")
    base = make_temp_dir("podling-bench-")
    t_all = time.perf_counter()

    if "startup" in phases:
        report("\n[1] start-to-ready: spawn -> ready line / first authenticated GET /readyz")
        results["startup"] = await startup_phase(p, os.path.join(base, "start"), report)

    if phases & {"throughput", "watch"}:
        data_dir = os.path.join(base, "load")
        server = ServerProcess(data_dir)
        await server.wait_ready()
        ssl_ctx = server.ssl_context()
        rss_points: list[dict[str, Any]] = []
        await readyz_once(server)
        await asyncio.sleep(0.5)
        rss_points.append({"point": "idle after start", **server.rss()})

        if "throughput" in phases:
            report("\n[2] throughput (pods: 2 containers, labels, annotations, ports, env, "
                   "resources, probe; keep-alive TLS, one connection per client)")
            results["throughput"] = []
            for concurrency in p.concurrency:
                results["throughput"].append(
                    await throughput_level(server, ssl_ctx, p, concurrency, report, rss_points))

        if "watch" in phases:
            report(f"\n[3] watch fan-out: watchers from the current resourceVersion, then "
                   f"{p.watch_writes} strategic-merge label patches ({p.watch_writers} "
                   f"writer{'s' if p.watch_writers > 1 else ''}, {p.watch_pods} pods)")
            results["watch"] = await watch_phase(server, ssl_ctx, p, report)
            rss_points.append({"point": f"after the watch rounds ({p.watch_pods} pods stored)",
                               **server.rss()})

        # restart on that data dir: what do loading the objects and the retained log cost?
        stop_s = server.stop()
        counts = _db_counts(data_dir)
        server, t = await timed_start(data_dir)
        await asyncio.sleep(0.5)
        results["restart_loaded"] = {"stop_s": round(stop_s, 4), "db_rows": counts,
                                     **{k: round(v, 4) for k, v in t.items()}}
        rss_points.append({"point": f"idle after restart on that data dir "
                                    f"({counts.get('events', '?')} log events)", **server.rss()})
        server.stop()
        results["rss"] = rss_points

        report("\n[4] server RSS (VmRSS; VmHWM = peak so far)")
        for point in rss_points:
            report(f"  {point['point']:<60} {point['VmRSS'] / 1024:>7.1f} MiB  "
                   f"(peak {point['VmHWM'] / 1024:.1f})")
        if "throughput" in phases:
            idle, with_pods = rss_points[0]["VmRSS"], rss_points[1]["VmRSS"]
            results["rss_kib_per_pod"] = round((with_pods - idle) / (p.creates // 2), 2)
            report(f"  ~{results['rss_kib_per_pod']:.1f} KiB of RSS per stored pod (idle -> "
                   f"{p.creates // 2} pods)")
        r = results["restart_loaded"]
        report(f"  restart on that data dir ({counts.get('objects', '?')} objects, "
               f"{counts.get('events', '?')} retained log events): SIGTERM->exit "
               f"{r['stop_s'] * 1000:.0f} ms, spawn->/readyz {r['readyz_s'] * 1000:.0f} ms")

    results["total_seconds"] = round(time.perf_counter() - t_all, 1)
    results["loadavg_at_end"] = list(os.getloadavg())
    results["report"] = lines
    return results


def audit_args(level: str) -> list[str]:
    """Server flags that audit every request at ``level`` into a temporary log."""
    directory = tempfile.mkdtemp(prefix="podling-bench-audit-")
    atexit.register(shutil.rmtree, directory, True)
    policy = os.path.join(directory, "policy.yaml")
    with open(policy, "w") as f:
        f.write(f"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: {level}\n")
    return ["--audit-policy-file", policy, "--audit-log-path",
            os.path.join(directory, "audit.log")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small numbers (finishes in well under a minute)")
    parser.add_argument("--datastore", choices=("sqlite", "etcd", "memory"), default="sqlite",
                        help="the server's --datastore (default: sqlite; etcd: a throw-away "
                             "etcd member on loopback, Debian's etcd-server)")
    parser.add_argument("--phases", default="startup,throughput,watch",
                        help="comma-separated subset of startup,throughput,watch")
    parser.add_argument("--disable-scheduler", action="store_true",
                        help="run the server without its scheduler: the API server's own "
                             "cost (by default each pod created also gets the scheduler's "
                             "status patch and FailedScheduling event, as no node exists)")
    parser.add_argument("--watch-writers", type=int, default=1, metavar="N",
                        help="concurrent writers in the watch rounds (default: 1)")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    parser.add_argument("--audit", choices=("Metadata", "Request", "RequestResponse"),
                        help="audit every request at this level (an audit policy of one rule, "
                             "the log in the temporary data dir's parent): its cost")
    args = parser.parse_args()
    params, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    if args.watch_writers < 1:
        parser.error("--watch-writers must be at least 1")
    params = dataclasses.replace(params, watch_writers=args.watch_writers)
    if args.disable_scheduler:
        SERVER_ARGS.append("--disable-scheduler")
    phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    unknown = phases - {"startup", "throughput", "watch"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.audit:
        SERVER_ARGS.extend(audit_args(args.audit))
    if args.datastore == "etcd":
        SERVER_ARGS.extend(["--datastore", "etcd", "--etcd-endpoints", start_etcd()])
    elif args.datastore != "sqlite":
        SERVER_ARGS.extend(["--datastore", args.datastore])
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        results = asyncio.run(run(params, mode, phases))
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the server and removing temp dirs", file=sys.stderr)
        return 130
    finally:
        _cleanup()
    print(f"\ntotal {results['total_seconds']:.1f} s")
    if not args.no_save:
        save_results(results, "apiserver")
    return 0


def save_results(results: dict[str, Any], name: str) -> None:
    """Write ``bench/results/<name>-<timestamp>.json`` and say where."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"results: {os.path.relpath(path, os.getcwd())}")


if __name__ == "__main__":
    sys.exit(main())
