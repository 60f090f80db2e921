#!/usr/bin/env python3
"""Idle memory of ``podling server`` with its local agent: RSS after a cold start, after a
warm restart and after pod churn (issue 11: ≤ 40 MiB, bounded after churn and restart).

Starts a throw-away server like ``bench/pods_bench.py`` (own node name, run dir, bridge, data
dir; images from ``podling image registry-demo``), then:

- cold: first start on an empty data dir, SETTLE seconds idle, then the server process's
  VmRSS, RssAnon and RssFile and whether ``cryptography``'s native module
  is mapped;
- warm: the server stopped (SIGTERM) and started again on the same data dir, same measures;
- churn: PODS busybox pods created, waited Running, deleted, SETTLE seconds, same measures.

    .venv/bin/python bench/rss_bench.py [--pods N] [--settle S] [--repo DIR] [--images-dir D]

``--repo`` runs another checkout's podling (for before/after). Prints one line per measure;
the server is stopped and purged on exit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pods_bench  # noqa: E402
from pods_bench import (CLEANUP, Podling, Registry, demo_archives,  # noqa: E402
                        install_signal_handlers, make_temp_dir, pod_yaml, stop_process)


def memory(pid: int) -> dict[str, object]:
    fields: dict[str, object] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "Threads:")):
                key, value = line.split(":", 1)
                fields[key] = value.split()[0]
    with open(f"/proc/{pid}/maps") as f:
        fields["cryptography_mapped"] = "cryptography" in f.read()
    return fields


def show(label: str, pid: int) -> None:
    m = memory(pid)
    print(f"{label:6} VmRSS {int(m['VmRSS']) / 1024:6.1f} MiB  anon "
          f"{int(m['RssAnon']) / 1024:6.1f}  file {int(m['RssFile']) / 1024:6.1f}  "
          f"threads {m['Threads']}  cryptography mapped: {m['cryptography_mapped']}", flush=True)


def restart(cluster: Podling) -> None:
    stop_process(cluster.process)
    cluster.process = subprocess.Popen(
        [pods_bench.PYTHON, "-m", "podling", "server", "--data-dir", cluster.data_dir,
         "--port", "0", "--node-name", cluster.node, "--run-dir", cluster.run_dir,
         "--bridge-name", cluster.bridge],
        cwd=pods_bench.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cluster._wait_ready()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--repo")
    parser.add_argument("--images-dir")
    args = parser.parse_args()
    if args.repo:
        pods_bench.REPO = os.path.abspath(args.repo)
        os.environ["PYTHONPATH"] = pods_bench.REPO
    install_signal_handlers()
    try:
        work = make_temp_dir("podling-rss-bench-")
        registry = Registry(demo_archives(args.images_dir, work), work)
        cluster = Podling(work, registry.registries)
        time.sleep(args.settle)
        show("cold", cluster.pid)
        restart(cluster)
        time.sleep(args.settle)
        show("warm", cluster.pid)
        names = [f"rss-{i:03d}" for i in range(args.pods)]
        docs = "---\n".join(pod_yaml(n, "sleep", cluster.node) for n in names)
        cluster.kubectl("apply", "-f", "-", input=docs, timeout=300)
        cluster.wait_running(names, timeout=300)
        show("pods", cluster.pid)
        cluster.remove_all_pods()
        time.sleep(args.settle)
        show("churn", cluster.pid)
    finally:
        CLEANUP.run_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
