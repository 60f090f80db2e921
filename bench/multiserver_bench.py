#!/usr/bin/env python3
"""The API on etcd beside SQLite, one server against three: creates, gets, lists, watch
fan-out.

Three set-ups, one after the other, each on fresh state:

    sqlite    one `podling server` on SQLite (the default)
    etcd-1    one server on a three-member etcd cluster (loopback)
    etcd-3    three servers on that cluster (a fresh --etcd-prefix); the clients and the
              watchers are spread over the servers in turn, the watch writer uses the first

Every server runs with ``--disable-agent --disable-scheduler``: what is measured is the API
and its store. The workload, the figures and their meaning are those of
``apiserver_bench.py`` (whose code this reuses): creates and gets with 1 and 8 clients,
JSON lists of one namespace, and N watchers seeing M label patches. Server CPU is summed
over every server of a set-up. Nothing asserts on timings; the report is printed and saved
as ``bench/results/multiserver-<timestamp>.json``.

    .venv/bin/python bench/multiserver_bench.py            # ~3 minutes on 2 cores
    .venv/bin/python bench/multiserver_bench.py --quick    # ~1 minute

On a machine with few cores the three servers, the three etcd members and the client share
the CPUs: three servers then add no capacity, and the figures show what spreading costs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import sys
from typing import Any

import apiserver_bench as ab

FULL = ab.Params(cold_starts=0, warm_starts=0, creates=1000, gets=1000, lists=50,
                 table_lists=10, concurrency=(1, 8), watchers=(50,), watch_writes=500,
                 watch_pods=50, watch_timeout=120.0)
QUICK = ab.Params(cold_starts=0, warm_starts=0, creates=300, gets=300, lists=15,
                  table_lists=5, concurrency=(1, 8), watchers=(20,), watch_writes=150,
                  watch_pods=20, watch_timeout=60.0)
BASE_ARGS = ("--disable-scheduler",)


class ServerGroup:
    """Several servers of one cluster seen as one by apiserver_bench's code: each read of
    ``url`` gives the next server's URL (round robin), so the clients and watchers made
    from the group spread over its servers; CPU and memory are summed."""

    def __init__(self, servers: list[ab.ServerProcess]) -> None:
        self.servers = servers
        self.token = servers[0].token  # one cluster: one admin token
        self._next = itertools.cycle(servers)

    @property
    def url(self) -> str:
        return next(self._next).url

    def restart_round_robin(self) -> None:
        """The next client goes to the first server again."""
        self._next = itertools.cycle(self.servers)

    def ssl_context(self):
        return self.servers[0].ssl_context()  # one CA

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def rss(self) -> dict[str, int]:
        rss = [s.rss() for s in self.servers]
        return {key: sum(r[key] for r in rss) for key in ("VmRSS", "VmHWM")}


async def start_group(base: str, count: int, extra: tuple[str, ...]) -> ServerGroup:
    first = ab.ServerProcess(os.path.join(base, "s0"), (*BASE_ARGS, *extra))
    await first.wait_ready()
    servers = [first]
    token_file = os.path.join(first.data_dir, "server", "token")
    for i in range(1, count):
        server = ab.ServerProcess(os.path.join(base, f"s{i}"),
                                  (*BASE_ARGS, *extra, "--token-file", token_file))
        await server.wait_ready()
        servers.append(server)
    return ServerGroup(servers)


async def measure(name: str, group: ServerGroup, p: ab.Params, report) -> dict[str, Any]:
    report(f"\n[{name}] {len(group.servers)} server(s)")
    ssl_ctx = group.ssl_context()
    out: dict[str, Any] = {"servers": len(group.servers), "throughput": []}
    for concurrency in p.concurrency:
        group.restart_round_robin()
        out["throughput"].append(await ab.throughput_level(
            group, ssl_ctx, p, concurrency, report, []))  # type: ignore[arg-type]
    group.restart_round_robin()
    out["watch"] = await ab.watch_phase(group, ssl_ctx, p, report)  # type: ignore[arg-type]
    return out


def _row(name: str, result: dict[str, Any]) -> str:
    by_c = {level["clients"]: level for level in result["throughput"]}
    watch = result["watch"][-1]
    return (f"  {name:<8} {by_c[1]['create']['per_second']:>9.0f} "
            f"{by_c[8]['create']['per_second']:>9.0f} {by_c[8]['get']['per_second']:>8.0f} "
            f"{by_c[8]['list']['per_second']:>8.1f} {watch['events_per_second']:>10.0f} "
            f"{watch['ack_to_seen_p50_ms']:>9.1f} "
            f"{by_c[8]['create']['server_cpu_ms_per_op']:>9.2f}")


async def run(p: ab.Params, mode: str, setups: list[str]) -> dict[str, Any]:
    lines: list[str] = []

    def report(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    env = ab.environment()
    report(f"podling multi-server benchmark ({mode}) - {env['cpus']} CPUs, commit "
           f"{env['git_commit'][:10]}{' + local changes' if env['podling_dirty'] else ''}")
    base = ab.make_temp_dir("podling-msbench-")
    results: dict[str, Any] = {"mode": mode, "params": ab.asdict(p), "environment": env,
                               "setups": {}}
    etcd_urls = _etcd_cluster(base) if any(s.startswith("etcd") for s in setups) else ""
    for n, setup in enumerate(setups):
        count = 3 if setup == "etcd-3" else 1
        extra = () if setup == "sqlite" else (
            "--datastore", "etcd", "--etcd-endpoints", etcd_urls,
            "--etcd-prefix", f"/bench-{n}")
        group = await start_group(os.path.join(base, setup), count, extra)
        try:
            results["setups"][setup] = await measure(setup, group, p, report)
        finally:
            for server in group.servers:
                server.stop()
    report("\n  set-up   create/s  create/s    get/s   list/s   events/s  ack->seen  srv ms")
    report("           1 client 8 clients 8 clients 8 clients (watchers)  p50 ms  /create")
    for setup, result in results["setups"].items():
        report(_row(setup, result))
    results["report"] = lines
    return results


def _etcd_cluster(base: str) -> str:
    """A three-member etcd cluster for the run (stopped by apiserver_bench's cleanup)."""
    sys.path.insert(0, ab.REPO)
    from podling.storage.etcd.testing import EtcdCluster
    cluster = EtcdCluster(os.path.join(base, "etcd"), 3).start()
    ab._PROCESSES.extend(m.process for m in cluster.members)  # type: ignore[misc]
    return ",".join(cluster.urls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small numbers (~1 minute)")
    parser.add_argument("--setups", default="sqlite,etcd-1,etcd-3",
                        help="comma-separated subset of sqlite,etcd-1,etcd-3")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    args = parser.parse_args()
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if unknown := set(setups) - {"sqlite", "etcd-1", "etcd-3"}:
        parser.error(f"unknown set-ups: {', '.join(sorted(unknown))}")
    params, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    signal.signal(signal.SIGTERM, ab._on_sigterm)
    try:
        results = asyncio.run(run(params, mode, setups))
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers and removing temp dirs", file=sys.stderr)
        return 130
    finally:
        ab._cleanup()
    if not args.no_save:
        ab.save_results(results, "multiserver")
    return 0


if __name__ == "__main__":
    sys.exit(main())
