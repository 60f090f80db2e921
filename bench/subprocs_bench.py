#!/usr/bin/env python3
"""Every subprocess podling spawns for a pod's start and delete, with its wall and CPU time.

Starts a throw-away ``podling server`` (as ``pods_bench.py``), pulls busybox once, then
records the kernel's scheduler tracepoints system-wide with ``perf record`` (fork, exec, exit
and context switches: no ptrace, so the traced programs run at full speed) while

1. one 1-container pod (busybox ``sleep``) is applied, waited for Ready and deleted;
2. N pods (``--pods``, default 10) are applied at once, waited for and deleted at once.

From the trace it keeps the processes descended from the server (threads folded into their
process), names each by the programs it exec'd (``setpriv→runc``), and reports per program:
how many ran, the median wall time (exec to exit) and the CPU time (time on a CPU, from the
context switches), per pod. Long-lived monitors (conmon, the pause) are counted, and their CPU
until the pod's delete is included.

    .venv/bin/python bench/subprocs_bench.py [--pods N] [--images-dir DIR] [--keep-trace]

Needs root and ``perf``. Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pods_bench import (CLEANUP, Podling, Registry, demo_archives,  # noqa: E402
                        install_signal_handlers, make_temp_dir, mem_sum, pod_yaml)

EVENTS = ("sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit,"
          "sched:sched_switch")
_LINE = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<pid>-?\d+)/(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+"
                   r"(?P<time>[\d.]+):\s+sched:(?P<event>\w+):\s+(?P<rest>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass
class Task:
    tid: int
    parent: int
    tgid: int = 0
    forked_from: str = ""  # the parent's program, for a child that never execs (daemons)
    execs: list[str] = field(default_factory=list)
    exec_at: float = 0.0
    exit_at: float = 0.0
    cpu: float = 0.0


def parse_trace(text: str, root: int) -> list[Task]:
    """The processes (thread-group leaders, threads' CPU folded in) descended from ``root``."""
    tasks: dict[int, Task] = {root: Task(root, 0, root)}
    running: dict[int, tuple[int, float]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t, ev, f = float(m["time"]), m["event"], dict(_FIELD.findall(m["rest"]))
        tid, tgid = int(m["tid"]), int(m["pid"])
        if tid in tasks and tgid > 0:
            tasks[tid].tgid = tgid
        if ev == "sched_process_fork":
            parent, child = int(f["pid"]), int(f["child_pid"])
            if parent in tasks:
                execs = tasks[parent].execs
                tasks[child] = Task(child, parent, forked_from=execs[-1] if execs else "",
                                    exec_at=t)  # wall from the fork when it never execs
        elif ev == "sched_process_exec" and tid in tasks:
            task = tasks[tid]
            if not task.execs:
                task.exec_at = t
            task.execs.append(os.path.basename(f["filename"]))
        elif ev == "sched_process_exit" and tid in tasks:
            tasks[tid].exit_at = t
        elif ev == "sched_switch":
            cpu = int(m["cpu"])
            prev = running.pop(cpu, None)
            if prev is not None and prev[0] in tasks:
                tasks[prev[0]].cpu += t - prev[1]
            running[cpu] = (int(f["next_pid"]), t)
    return _fold_threads(tasks, root)


def _fold_threads(tasks: dict[int, Task], root: int) -> list[Task]:
    leaders: dict[int, Task] = {}
    for task in tasks.values():
        tgid = task.tgid or task.tid
        if tgid == root:
            continue
        if tgid == task.tid:
            leaders.setdefault(task.tid, task)
    for task in tasks.values():
        tgid = task.tgid or task.tid
        if tgid != task.tid and tgid in leaders:
            leaders[tgid].cpu += task.cpu
    for task in leaders.values():
        if not task.execs and task.forked_from:
            task.execs = [f"{task.forked_from} (forked)"]
    return [t for t in leaders.values() if t.execs]


def summarise(procs: list[Task], pods: int) -> list[dict[str, object]]:
    groups: dict[str, list[Task]] = {}
    for p in procs:
        groups.setdefault("→".join(p.execs), []).append(p)
    rows = []
    for name, items in sorted(groups.items(), key=lambda kv: -sum(t.cpu for t in kv[1])):
        walls = [t.exit_at - t.exec_at for t in items if t.exit_at and t.exec_at]
        rows.append({"program": name, "per_pod": len(items) / pods,
                     "wall_ms_median": 1000 * statistics.median(walls) if walls else None,
                     "cpu_ms_per_pod": 1000 * sum(t.cpu for t in items) / pods,
                     "cpu_ms_each": 1000 * statistics.mean(t.cpu for t in items)})
    return rows


def print_rows(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n{title}")
    print(f"| {'program':38} | per pod | wall ms (median) | CPU ms each | CPU ms per pod |")
    print(f"|{'-' * 40}|---------|------------------|-------------|----------------|")
    total_n = total_cpu = 0.0
    for r in rows:
        wall = r["wall_ms_median"]
        wall_s = f"{wall:.1f}" if isinstance(wall, float) else "-"
        print(f"| {r['program']:38} | {r['per_pod']:7.2f} | {wall_s:>16} | "
              f"{r['cpu_ms_each']:11.2f} | {r['cpu_ms_per_pod']:14.2f} |")
        total_n += float(r["per_pod"])  # type: ignore[arg-type]
        total_cpu += float(r["cpu_ms_per_pod"])  # type: ignore[arg-type]
    print(f"| {'total':38} | {total_n:7.2f} | {'':>16} | {'':>11} | {total_cpu:14.2f} |")


def traced(cluster: Podling, work: str, name: str, action) -> list[Task]:
    data = os.path.join(work, f"{name}.perf")
    perf = subprocess.Popen(["perf", "record", "-q", "-o", data, "-e", EVENTS, "-a"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # perf is recording
        action()
        time.sleep(1.0)  # late exits (conmon after the delete)
    finally:
        perf.send_signal(2)
        perf.wait(30)
    text = subprocess.run(["perf", "script", "-i", data, "-F",
                           "comm,pid,tid,cpu,time,event,trace"], capture_output=True,
                          text=True, check=True).stdout
    return parse_trace(text, cluster.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--images-dir")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("subprocs_bench needs root", file=sys.stderr)
        return 2
    install_signal_handlers()
    try:
        work = make_temp_dir("podling-subprocs-bench-")
        registry = Registry(demo_archives(args.images_dir, work), work)
        cluster = Podling(work, registry.registries)
        warm = pod_yaml("warm", "sleep", cluster.node)
        cluster.kubectl("apply", "-f", "-", input=warm)
        cluster.wait_running(["warm"], timeout=120)
        cluster.kubectl("delete", "pod", "warm", "--grace-period=0", "--wait=true")

        def one() -> None:
            cluster.kubectl("apply", "-f", "-", input=pod_yaml("one", "sleep", cluster.node))
            cluster.wait_running(["one"], timeout=60)
            cluster.kubectl("delete", "pod", "one", "--grace-period=0", "--wait=true")
        print_rows("one 1-container pod: apply → Ready → delete --grace-period=0",
                   summarise(traced(cluster, work, "one", one), 1))
        names = [f"bulk-{i}" for i in range(args.pods)]

        memory: dict[str, dict[str, int]] = {}

        def bulk() -> None:
            text = "---\n".join(pod_yaml(n, "sleep", cluster.node, {"set": "bulk"})
                                for n in names)
            cluster.kubectl("apply", "-f", "-", input=text)
            cluster.wait_running(names, timeout=300)
            procs = cluster.processes()
            memory["conmon"] = mem_sum(procs["conmon"])
            memory["pause"] = mem_sum(cluster.pauses())
            cluster.kubectl("delete", "pods", "-l", "set=bulk", "--grace-period=0",
                            "--wait=true", timeout=300)
        print_rows(f"{args.pods} pods at once, per pod",
                   summarise(traced(cluster, work, "bulk", bulk), args.pods))
        print(f"\nwith {args.pods} pods running: " + "; ".join(
            f"{k}: {v['processes']} processes, PSS {v['pss_kb'] / args.pods:.0f} KiB/pod, "
            f"RSS {v['rss_kb'] / args.pods:.0f} KiB/pod" for k, v in memory.items()))
    finally:
        CLEANUP.run_all()
    return 0


if __name__ == "__main__":
    tempfile.tempdir = None
    sys.exit(main())
