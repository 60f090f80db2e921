#!/usr/bin/env python3
""""Quiet when idle": CPU used by podling while nothing changes, with 0 and with 50 pods.

Starts a throw-away ``podling server`` with its local agent (own node name, run dir, bridge,
data dir; images from the offline registry mirror ``podling image registry-demo``), like
``bench/pods_bench.py``. Then, for 0 pods and for 50 pods (busybox ``sleep 3600``, created
with one ``kubectl apply``, waited for with ``kubectl wait --for=condition=Ready``):

- wait until everything is Running and SETTLE seconds more (20 s);
- sample ``/proc/<pid>/stat`` (utime + stime) of the server process, which runs the API server
  and the agent, over WINDOW seconds (60 s); also its reaped children (cutime + cstime: any
  runc/iptables/... it ran in the window), the conmon processes of this node and the
  containers (pause + app) separately, and the server's context switches (all threads) as a
  wake-ups-per-second indicator;
- report each as % of one core.

    .venv/bin/python bench/idle_bench.py            # full: 0 and 50 pods, 60 s windows (~4 min)
    .venv/bin/python bench/idle_bench.py --quick    # 0 and 10 pods, 20 s windows
      --pods N --window S --settle S --images-dir DIR --no-save

The acceptance bar of issue 4 is server + agent under 2 % of one core with 50 pods. Results
are printed and written to ``bench/results/idle-<timestamp>.json``; the server is stopped and
``podling purge``d and the registry stopped on exit, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pods_bench import (CLEANUP, Podling, Registry, cpu_ticks,  # noqa: E402
                        ctx_switches, demo_archives, environment, install_signal_handlers, log,
                        make_temp_dir, pod_yaml, save_report)

TICK = os.sysconf("SC_CLK_TCK")


def sample(cluster: Podling) -> dict[str, Any]:
    procs = cluster.processes()
    server = cpu_ticks(cluster.pid)
    return {
        "t": time.monotonic(),
        "server": server["utime"] + server["stime"],
        "server_children": server["cutime"] + server["cstime"],
        "conmon": {pid: sum(list(cpu_ticks(pid).values())[:2]) for pid in procs["conmon"]},
        "containers": {pid: sum(list(cpu_ticks(pid).values())[:2])
                       for pid in procs["pause"] + procs["workload"]},
        "ctx": ctx_switches(cluster.pid),
    }


def window(cluster: Podling, seconds: float) -> dict[str, Any]:
    a = sample(cluster)
    time.sleep(seconds)
    b = sample(cluster)
    elapsed = b["t"] - a["t"]

    def pct(ticks: float) -> float:
        return 100.0 * ticks / TICK / elapsed

    def group(name: str) -> float:
        # processes present at both ends (a process that came or went is not idle anyway)
        return sum(b[name][pid] - a[name][pid] for pid in b[name] if pid in a[name])
    out = {
        "window_s": elapsed,
        "server_pct": pct(b["server"] - a["server"]),
        "server_children_pct": pct(b["server_children"] - a["server_children"]),
        "conmon_pct": pct(group("conmon")),
        "containers_pct": pct(group("containers")),
        "conmon_processes": len(b["conmon"]),
        "container_processes": len(b["containers"]),
        "server_wakeups_per_s": (b["ctx"] - a["ctx"]) / elapsed,
    }
    out["server_total_pct"] = out["server_pct"] + out["server_children_pct"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pods", type=int)
    parser.add_argument("--window", type=float)
    parser.add_argument("--settle", type=float)
    parser.add_argument("--images-dir")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("idle_bench needs root", file=sys.stderr)
        return 2
    install_signal_handlers()
    pods = args.pods or (10 if args.quick else 50)
    win = args.window or (20.0 if args.quick else 60.0)
    settle = args.settle if args.settle is not None else (5.0 if args.quick else 20.0)
    report: dict[str, Any] = {"mode": "quick" if args.quick else "full", "pods": pods,
                              "window_s": win, "settle_s": settle,
                              "environment": environment(),
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    cluster = None
    try:
        work = make_temp_dir("podling-idle-bench-")
        archives = demo_archives(args.images_dir, work)
        registry = Registry(archives, work)
        cluster = Podling(work, registry.registries)
        log(f"server pid {cluster.pid}, node {cluster.node}")
        # the image is pulled once beforehand so that the 0-pod window is really idle
        warm = pod_yaml("idle-warm", "sleep", cluster.node)
        cluster.kubectl("apply", "-f", "-", input=warm)
        cluster.wait_running(["idle-warm"], timeout=120)
        cluster.kubectl("delete", "pod", "idle-warm", "--grace-period=2", "--wait=true")

        time.sleep(settle)
        log(f"measuring 0 pods for {win:.0f}s")
        report["zero_pods"] = window(cluster, win)
        log(f"  {json.dumps(report['zero_pods'])}")

        docs = "---\n".join(pod_yaml(f"idle-{i:03d}", "sleep", cluster.node,
                                     {"bench": "idle"}) for i in range(pods))
        start = time.perf_counter()
        cluster.kubectl("apply", "-f", "-", input=docs, timeout=300)
        cluster.wait_running([f"idle-{i:03d}" for i in range(pods)], timeout=300)
        report["all_running_s"] = time.perf_counter() - start
        log(f"{pods} pods Running after {report['all_running_s']:.1f}s; settling {settle:.0f}s")
        time.sleep(settle)
        log(f"measuring {pods} pods for {win:.0f}s")
        report["with_pods"] = window(cluster, win)
        log(f"  {json.dumps(report['with_pods'])}")
        running = cluster.kubectl("get", "pods", "-l", "bench=idle", "--no-headers").stdout
        report["still_running"] = sum(1 for line in running.splitlines() if "Running" in line)

        z, w = report["zero_pods"], report["with_pods"]
        rows = [("server (API + agent), % of a core", "server_pct"),
                ("  its reaped children (runc, ...), %", "server_children_pct"),
                ("conmon processes, % (all together)", "conmon_pct"),
                ("containers (pause + sleep), %", "containers_pct"),
                ("server wake-ups (ctx switches)/s", "server_wakeups_per_s")]
        lines = [f"{'':40}{'0 pods':>10}{f'{pods} pods':>10}"]
        for label, key in rows:
            lines.append(f"{label:40}{z[key]:10.2f}{w[key]:10.2f}")
        lines.append(f"{'conmon processes':40}{z['conmon_processes']:10d}"
                     f"{w['conmon_processes']:10d}")
        table = "\n".join(lines)
        print(table, flush=True)
        report["table"] = table
        verdict = "under" if w["server_total_pct"] < 2.0 else "OVER"
        log(f"server + agent with {pods} pods: {w['server_total_pct']:.2f} % of one core "
            f"({verdict} the 2 % bar)")
    except BaseException:
        if cluster is not None:
            print("---- podling server log (tail)\n" + cluster.log_tail(), file=sys.stderr)
        raise
    finally:
        CLEANUP.run_all()
    if not args.no_save:
        save_report(report, "idle")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
