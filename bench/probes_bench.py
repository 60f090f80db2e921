#!/usr/bin/env python3
"""Probe cost: the agent's CPU with N pods each probed for readiness and liveness every second.

Starts a throw-away ``podling server`` with its local agent like ``bench/pods_bench.py`` (own
node name, run dir, bridge, data dir; images from the offline registry mirror). For each
variant, N pods (busybox ``httpd`` serving a page on port 8080) are created with one
``kubectl apply`` and waited for with ``kubectl wait --for=condition=Ready``; after SETTLE
seconds the CPU is sampled over WINDOW seconds, then the pods are deleted:

    none   no probes (the baseline of N running pods)
    net    readinessProbe httpGet :8080/ + livenessProbe tcpSocket :8080, periodSeconds 1
    exec   readinessProbe exec ``cat /www/index.html`` + livenessProbe exec ``true``,
           periodSeconds 1 (each run is a ``runc exec`` through conmon)

Measured from ``/proc/<pid>/stat``: utime + stime of the server process (the API server and the
local agent share it; the probes add nothing to the API server once the pods are Ready: a
result that does not change writes nothing), its reaped children (cutime + cstime: the
conmon / ``runc exec`` processes of exec probes), and all processes below this node's conmons
(the probed containers, with ``httpd`` and the exec'd commands), each as % of one core; plus
the server's context switches per second. For the net variant, a *floor*: the same
connections made by this script with plain blocking sockets (a GET and a connect per pod per
second), its own CPU as % of a core: what TCP to the pods costs the caller in the kernel plus
a minimal user space, which no prober can go below. The goal of issue 10 is the agent under 5 % of one
core with 50 pods (2 probes per second each, 100 probes/s).

    .venv/bin/python bench/probes_bench.py            # 50 pods, 60 s windows (~8 minutes)
    .venv/bin/python bench/probes_bench.py --quick    # 10 pods, 15 s windows (smoke test)
      --pods N --window S --settle S --variants none,net,exec --images-dir DIR --no-save
      --no-floor                                      # skip the floor measurement

podman is not compared: its healthchecks are systemd timers running ``podman healthcheck
run`` (a fresh podman process per check), a different cost model, and podman has no
readiness probes. Results are printed and written to ``bench/results/probes-<ts>.json``;
everything is stopped, deleted and ``podling purge``d on exit, also on failure or Ctrl-C.
Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pods_bench import (CLEANUP, Podling, Registry, cpu_ticks,  # noqa: E402
                        ctx_switches, demo_archives, environment, install_signal_handlers, log,
                        make_temp_dir, save_report)

TICK = os.sysconf("SC_CLK_TCK")
HTTPD = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
VARIANTS = ("none", "net", "exec")


def probes(variant: str) -> dict[str, Any]:
    every = {"periodSeconds": 1, "timeoutSeconds": 1}
    if variant == "net":
        return {"readinessProbe": {"httpGet": {"path": "/", "port": 8080}, **every},
                "livenessProbe": {"tcpSocket": {"port": 8080}, **every}}
    if variant == "exec":
        return {"readinessProbe": {"exec": {"command": ["cat", "/www/index.html"]}, **every},
                "livenessProbe": {"exec": {"command": ["true"]}, **every}}
    return {}


def pod_doc(name: str, node: str, variant: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "probes"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "web", "image": "busybox",
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", HTTPD], **probes(variant)}]}}


def sample(cluster: Podling) -> dict[str, Any]:
    procs = cluster.processes()
    server = cpu_ticks(cluster.pid)
    return {"t": time.monotonic(), "server": server["utime"] + server["stime"],
            "children": server["cutime"] + server["cstime"],
            "containers": {pid: sum(list(cpu_ticks(pid).values())[:2])
                           for pid in procs["pause"] + procs["workload"]},
            "ctx": ctx_switches(cluster.pid)}


def window(cluster: Podling, seconds: float) -> dict[str, Any]:
    a = sample(cluster)
    time.sleep(seconds)
    b = sample(cluster)
    elapsed = b["t"] - a["t"]

    def pct(ticks: float) -> float:
        return round(100.0 * ticks / TICK / elapsed, 2)
    containers = sum(b["containers"][p] - a["containers"][p]
                     for p in b["containers"] if p in a["containers"])
    return {"window_s": round(elapsed, 1), "server_pct": pct(b["server"] - a["server"]),
            "exec_children_pct": pct(b["children"] - a["children"]),
            "containers_pct": pct(containers),
            "server_wakeups_per_s": round((b["ctx"] - a["ctx"]) / elapsed, 1)}


def floor(cluster: Podling, names: list[str], seconds: float) -> dict[str, Any]:
    """The same connections as the net variant's probes (a GET and a connect per pod per
    second) made by this process with blocking sockets and no framework: the kernel's share
    (TCP over the bridge and veth, accounted to the caller) plus a minimal user space."""
    pods = json.loads(cluster.kubectl("get", "pods", "-l", "bench=probes", "-o",
                                      "json").stdout)["items"]
    ips = [p["status"]["podIP"] for p in pods if p["metadata"]["name"] in names]
    request = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.32\r\n" \
        b"Connection: close\r\n\r\n"
    cpu0, t0 = time.process_time(), time.monotonic()
    done = 0
    while time.monotonic() - t0 < seconds:
        tick = time.monotonic()
        for ip in ips:
            with socket.create_connection((ip, 8080), timeout=1) as s:
                s.sendall(request)
                while s.recv(65536):
                    pass
            socket.create_connection((ip, 8080), timeout=1).close()
            done += 2
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    elapsed = time.monotonic() - t0
    return {"floor_pct": round(100.0 * (time.process_time() - cpu0) / elapsed, 2),
            "floor_connections_per_s": round(done / elapsed, 1)}


def run_variant(cluster: Podling, variant: str, pods: int, win: float,
                settle: float, with_floor: bool = True) -> dict[str, Any]:
    names = [f"probe-{variant}-{i:03d}" for i in range(pods)]
    docs = "".join(json.dumps(pod_doc(n, cluster.node, variant)) + "\n" for n in names)
    start = time.perf_counter()
    cluster.kubectl("apply", "-f", "-", input=docs, timeout=300)
    cluster.wait_running(names, timeout=300)
    ready_s = time.perf_counter() - start
    log(f"{variant}: {pods} pods Ready after {ready_s:.1f}s; settling {settle:.0f}s")
    time.sleep(settle)
    out = window(cluster, win)
    out["all_ready_s"] = round(ready_s, 1)
    restarts = cluster.kubectl("get", "pods", "-l", "bench=probes", "-o", "json").stdout
    out["restarts"] = sum(s.get("restartCount", 0) for p in json.loads(restarts)["items"]
                          for s in p["status"].get("containerStatuses") or [])
    if variant == "net" and with_floor:
        out.update(floor(cluster, names, min(win, 20.0)))
    log(f"  {json.dumps(out)}")
    cluster.delete_many(names, "bench=probes")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pods", type=int)
    parser.add_argument("--window", type=float)
    parser.add_argument("--settle", type=float)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--images-dir")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("probes_bench needs root", file=sys.stderr)
        return 2
    install_signal_handlers()
    pods = args.pods or (10 if args.quick else 50)
    win = args.window or (15.0 if args.quick else 60.0)
    settle = args.settle if args.settle is not None else (3.0 if args.quick else 15.0)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    report: dict[str, Any] = {"mode": "quick" if args.quick else "full", "pods": pods,
                              "window_s": win, "settle_s": settle,
                              "environment": environment(),
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": {}}
    cluster = None
    try:
        work = make_temp_dir("podling-probes-bench-")
        registry = Registry(demo_archives(args.images_dir, work), work)
        cluster = Podling(work, registry.registries)
        log(f"server pid {cluster.pid}, node {cluster.node}")
        for variant in variants:
            report["variants"][variant] = run_variant(cluster, variant, pods, win, settle,
                                                      not args.no_floor)
        print(table(report["variants"], pods), flush=True)
        net = report["variants"].get("net")
        if net is not None:
            verdict = "under" if net["server_pct"] < 5.0 else "OVER"
            log(f"agent (server process) with {pods} pods × 2 probes/s: "
                f"{net['server_pct']:.2f} % of one core ({verdict} the 5 % goal)")
    except BaseException:
        if cluster is not None:
            print("---- podling server log (tail)\n" + cluster.log_tail(), file=sys.stderr)
        raise
    finally:
        CLEANUP.run_all()
    if not args.no_save:
        save_report(report, "probes")
    return 0


def table(results: dict[str, dict[str, Any]], pods: int) -> str:
    rows = [("server (API + agent), % of a core", "server_pct"),
            ("  exec children (conmon, runc), %", "exec_children_pct"),
            ("containers (httpd, exec'd), %", "containers_pct"),
            ("server wake-ups (ctx switches)/s", "server_wakeups_per_s"),
            ("container restarts (should be 0)", "restarts")]
    if any("floor_pct" in r for r in results.values()):
        rows.insert(1, ("  floor: bare sockets, same traffic, %", "floor_pct"))
    lines = [f"{pods} pods{'':32}" + "".join(f"{v:>10}" for v in results)]
    for label, key in rows:
        lines.append(f"{label:40}" + "".join(
            f"{r[key]:10.2f}" if key in r else f"{'-':>10}" for r in results.values()))
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
