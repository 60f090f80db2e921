"""Start-up of `podling kubectl` against plain kubectl (issue 12).

    python bench/kubectl_startup.py [--runs 30] [--before /path/to/other/checkout]

Runs ``kubectl version --client`` directly, then ``python -m podling kubectl version
--client`` with this tree's podling (PYTHONPATH = this repository) and, with ``--before
DIR``, with another checkout's (e.g. the main branch before the change). For each: wall
time per run (median, min, max), CPU time of the child (utime + stime, from wait4: resists
a busy machine better than wall time) and the number of modules Python imported before the
exec (``-X importtime``: noise-free, and what the change is about). Nothing is asserted.
Run it under the shared bench lock::

    flock /tmp/podling-bench.lock .venv/bin/python bench/kubectl_startup.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """(wall seconds, child CPU seconds, stderr) of one run."""
    read, write = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: stdout to /dev/null, stderr to the pipe, cwd not a checkout
        os.close(read)
        os.chdir(env["HOME"])  # `python -m` puts the cwd first on sys.path
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(write, 2)
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {b''.join(chunks).decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, b"".join(chunks)


def _modules(stderr: bytes) -> int:
    return sum(1 for line in stderr.decode(errors="replace").splitlines()
               if line.startswith("import time:") and "|" in line
               and not line.rstrip().endswith("imported package"))


def measure(label: str, argv: list[str], env: dict[str, str], runs: int,
            python: bool) -> dict[str, float]:
    _run(argv, env)  # warm the page cache
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, _ = _run(argv, env)
        walls.append(wall)
        cpus.append(cpu)
    result = {"wall_median_ms": statistics.median(walls) * 1000, "wall_min_ms":
              min(walls) * 1000, "wall_max_ms": max(walls) * 1000,
              "cpu_median_ms": statistics.median(cpus) * 1000}
    if python:
        _, _, err = _run([argv[0], "-X", "importtime", *argv[1:]], env)
        result["modules_imported"] = _modules(err) - 1  # minus the header line
    print(f"{label:<34} wall median {result['wall_median_ms']:6.1f} ms "
          f"(min {result['wall_min_ms']:.1f}, max {result['wall_max_ms']:.1f})  "
          f"cpu {result['cpu_median_ms']:6.1f} ms"
          + (f"  modules {result['modules_imported']}" if python else ""), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--before", default="", help="another checkout to compare with")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubectl-bench-") as home:
        base = {"PATH": os.environ["PATH"], "HOME": home,
                "KUBECONFIG": os.path.join(home, "none")}
        command = ["version", "--client"]
        print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs each", flush=True)
        measure("kubectl", ["kubectl", *command], base, args.runs, python=False)
        measure("python -c pass (interpreter floor)", [args.python, "-c", "pass"],
                base, args.runs, python=True)
        variants = [("podling kubectl (this tree)", REPO)]
        if args.before:
            variants.append((f"podling kubectl ({os.path.basename(args.before)})",
                             os.path.abspath(args.before)))
        for label, tree in variants:
            measure(label, [args.python, "-m", "podling", "kubectl", *command],
                    dict(base, PYTHONPATH=tree), args.runs, python=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
