#!/usr/bin/env python3
"""Benchmark the scheduler: throughput (pods bound per second) and latency (create → bound).

Starts a real ``python -m podling server --disable-agent`` subprocess (port 0, a temporary
data dir, ``--datastore`` sqlite by default), creates N agent-less Ready nodes through the
API, and runs :class:`podling.scheduler.Scheduler` in this process. For N in (3, 50):

* **backlog**: 1,000 pods are created while no scheduler runs; then the scheduler starts.
  Throughput = pods / (scheduler start → last pod seen bound); latency = scheduler start →
  each pod seen bound (p50 / p99).
* **stream**: the scheduler runs while 1,000 pods are created by 8 concurrent creators.
  Latency = the create request's response → the pod seen bound (p50 / p99); throughput =
  pods / (first create → last bound).

"Seen bound" is when a watch on pods opened by this benchmark (separate from the
scheduler's informers) delivers the pod with ``spec.nodeName`` set. Pods request 100m cpu and
64Mi memory; nodes have 64 cpu, 256Gi and room for every pod. The scheduler, the watch and
the creators share this process's event loop; the server is its own process. Nothing asserts
on timings: this prints a report (and writes JSON to bench/results/).

    .venv/bin/python bench/scheduler_bench.py [--pods 1000] [--nodes 3,50]
                                              [--datastore sqlite|memory] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from podling.client import ApiClient, ClientConfig  # noqa: E402
from podling.scheduler import Scheduler  # noqa: E402

RESULTS_DIR = os.path.join(REPO, "bench", "results")
NS = "bench"
READY_TIMEOUT = 30.0


class Server:
    """A ``podling server --disable-agent`` subprocess in a temporary data dir."""

    def __init__(self, datastore: str) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="podling-sched-bench-")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podling", "server", "--data-dir", self.data_dir,
             "--port", "0", "--disable-agent", "--datastore", datastore],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._ready = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "API server ready" in line:
                self._ready.set()
        self._ready.set()

    async def wait_ready(self) -> ClientConfig:
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait, READY_TIMEOUT)
        if self.process.poll() is not None or not any("API server ready" in l for l in self.lines):
            raise RuntimeError("podling server did not start:\n" + "".join(self.lines))
        return ClientConfig.from_kubeconfig(os.path.join(self.data_dir, "kubeconfig"),
                                            max_connections=64)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def node_body(name: str, max_pods: int) -> dict[str, Any]:
    res = {"cpu": "64", "memory": "256Gi", "pods": str(max_pods)}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "bench": "true"}},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod_body(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": "100m",
                                                                "memory": "64Mi"}}}]}}


class BoundWatch:
    """Records when each pod of the namespace is first seen with a nodeName."""

    def __init__(self, client: ApiClient, expected: int) -> None:
        self.client = client
        self.expected = expected
        self.bound_at: dict[str, float] = {}
        self.nodes: dict[str, int] = {}
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _, rv = await self.client.list("pods", NS)
        self._task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        async with contextlib.aclosing(self.client.watch("pods", NS, resource_version=rv,
                                                         timeout_seconds=3600)) as events:
            async for type_, obj in events:
                node = (obj.get("spec") or {}).get("nodeName")
                name = obj["metadata"]["name"]
                if type_ == "MODIFIED" and node and name not in self.bound_at:
                    self.bound_at[name] = time.perf_counter()
                    self.nodes[node] = self.nodes.get(node, 0) + 1
                    if len(self.bound_at) >= self.expected:
                        self.done.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


@dataclass
class Result:
    mode: str
    nodes: int
    pods: int
    seconds: float
    pods_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    spread_min: int
    spread_max: int


async def create_pods(client: ApiClient, count: int, concurrency: int,
                      created_at: dict[str, float]) -> None:
    names = iter(f"p{i:05d}" for i in range(count))

    async def worker() -> None:
        for name in names:
            await client.create("pods", pod_body(name), NS)
            created_at[name] = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_case(config: ClientConfig, mode: str, num_nodes: int, num_pods: int) -> Result:
    async with ApiClient(config) as client:
        with contextlib.suppress(Exception):
            await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": NS}})
        max_pods = max(110, num_pods // num_nodes + 20)
        await asyncio.gather(*(client.create("nodes", node_body(f"node-{i:03d}", max_pods))
                               for i in range(num_nodes)))
        watch = BoundWatch(client, num_pods)
        await watch.start()
        scheduler = Scheduler(client)
        created_at: dict[str, float] = {}
        try:
            if mode == "backlog":
                await create_pods(client, num_pods, 8, created_at)
                t0 = time.perf_counter()
                scheduler.start()
                await asyncio.wait_for(watch.done.wait(), 600)
                starts = {name: t0 for name in created_at}
            else:
                scheduler.start()
                await scheduler.wait_synced(30)
                t0 = time.perf_counter()
                await create_pods(client, num_pods, 8, created_at)
                await asyncio.wait_for(watch.done.wait(), 600)
                starts = created_at
            elapsed = max(watch.bound_at.values()) - t0
        finally:
            await scheduler.stop()
            await watch.stop()
        lat = [(watch.bound_at[n] - starts[n]) * 1000 for n in watch.bound_at if n in starts]
        counts = list(watch.nodes.values()) + [0] * (num_nodes - len(watch.nodes))
        return Result(mode, num_nodes, num_pods, round(elapsed, 3),
                      round(num_pods / elapsed, 1), round(percentile(lat, 50), 1),
                      round(percentile(lat, 99), 1), round(max(lat), 1), min(counts),
                      max(counts))


async def main_async(args: argparse.Namespace) -> list[Result]:
    results = []
    for num_nodes in args.nodes:
        for mode in ("backlog", "stream"):
            server = Server(args.datastore)
            try:
                config = await server.wait_ready()
                result = await run_case(config, mode, num_nodes, args.pods)
            finally:
                server.stop()
            results.append(result)
            print(f"{mode:<8} nodes={num_nodes:<3} pods={result.pods}  "
                  f"{result.pods_per_second:7.1f} pods/s  ({result.seconds:.2f} s)  "
                  f"latency p50 {result.p50_ms:8.1f} ms  p99 {result.p99_ms:8.1f} ms  "
                  f"max {result.max_ms:8.1f} ms  pods/node {result.spread_min}..{result.spread_max}",
                  flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[3, 50])
    parser.add_argument("--datastore", default="sqlite", choices=("sqlite", "memory"))
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    print(f"scheduler benchmark: {args.pods} pods, nodes {args.nodes}, datastore "
          f"{args.datastore}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}", flush=True)
    results = asyncio.run(main_async(args))
    if not args.no_save:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        path = os.path.join(RESULTS_DIR, time.strftime("scheduler-%Y%m%d-%H%M%S.json"))
        with open(path, "w") as f:
            json.dump({"datastore": args.datastore, "cpus": os.cpu_count(),
                       "results": [asdict(r) for r in results]}, f, indent=2)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
