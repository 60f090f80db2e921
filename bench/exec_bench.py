#!/usr/bin/env python3
"""Streams side by side: ``kubectl exec`` / ``kubectl port-forward`` through podling vs
``podman exec`` / a port published by podman.

For each engine, in one run, against one pod of two containers (nginx, and busybox running
``httpd`` on 8080 over a directory holding a large file):

1. exec round trip: ``kubectl exec POD -c side -- true`` vs ``podman exec CTR true`` (the
   whole client command, median of N);
   podling also reports the round trip of the API alone: a WebSocket v5 exec of ``true``
   from this process (no kubectl start-up, which is ~60 ms of the whole command here);
2. exec output throughput: ``dd if=/dev/zero bs=1M count=SIZE`` through ``kubectl exec`` vs
   ``podman exec``, stdout read (and counted) by the benchmark, MiB/s (busybox ``head -c``
   writes 4 KiB at a time and is itself the limit near 120 MiB/s); podling also through
   kubectl's SPDY executor (``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``);
3. port-forward request latency: median of N small HTTP/1.0 GETs of nginx's index, one TCP
   connection each, through one running ``kubectl port-forward pod/POD 0:80 0:8080`` vs to
   podman's published ``127.0.0.1:PORT`` (``podman pod create -p``);
4. port-forward throughput: GET of the SIZE file served by busybox httpd, MiB/s; podling
   through kubectl's default (SPDY tunnelled in a WebSocket) and plain SPDY
   (``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``).

The same HTTP client (a raw socket in this process) is used for both engines; podman's
published ports are plain kernel forwarding (no user-space proxy), so the port-forward ratios
show the cost of podling's path (kubectl → API server → node → pod netns) against none.

podling: a throw-away ``podling server`` with its local agent, images from the offline
registry mirror, driven with the real kubectl (as ``pods_bench.py``, whose helpers this
reuses). podman: Debian's podman 4.3 (installed when missing), runc and host-allowed rlimits,
the same demo archives loaded with ``podman load``. The engines run one after the other.

    .venv/bin/python bench/exec_bench.py            # full: N=20, 256 MiB (~1 minute)
    .venv/bin/python bench/exec_bench.py --quick    # N=5, 64 MiB
      --only podling|podman  --images-dir DIR  --no-save

Everything started is stopped on exit, also on failure, Ctrl-C or SIGTERM. Nothing asserts on
timings; byte counts are checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pods_bench import (CLEANUP, Podling, Podman, Registry,  # noqa: E402
                        demo_archives, install_signal_handlers, log,
                        make_temp_dir, median, new_report, ratio_table, run, save_report,
                        side_by_side_args)

MIB = 1024 * 1024
WWW = "/www"


@dataclass(frozen=True)
class Params:
    repeats: int   # exec round trips and small GETs
    size_mib: int  # exec output and the large file


FULL = Params(repeats=20, size_mib=256)
QUICK = Params(repeats=5, size_mib=64)


def side_script(size_mib: int) -> str:
    return (f"mkdir -p {WWW} && echo small > {WWW}/small && "
            f"head -c {size_mib * MIB} /dev/zero > {WWW}/big && touch {WWW}/ready && "
            f"trap 'exit 0' TERM; httpd -f -p 8080 -h {WWW} & wait")


def dd_zeros(size: int) -> list[str]:
    return ["dd", "if=/dev/zero", "bs=1M", f"count={size // MIB}"]


async def _ws_execs(cluster: Podling, pod: str, count: int) -> list[float]:
    """Round trips of ``count`` WebSocket v5 execs of ``true`` (after one to warm up), each on
    a new TCP + TLS connection as kubectl makes it; the kubeconfig, CA and client session are
    set up once, outside the timings."""
    with open(cluster.env["KUBECONFIG"]) as f:
        config = yaml.safe_load(f)
    server, token = config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"]
    context = ssl.create_default_context(
        cafile=os.path.join(os.path.dirname(cluster.env["KUBECONFIG"]), "server", "ca.crt"))
    url = (f"{server}/api/v1/namespaces/default/pods/{pod}/exec?container=side&command=true"
           "&stdout=true&stderr=true")
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count + 1):
            start = time.perf_counter()
            async with session.ws_connect(url, protocols=("v5.channel.k8s.io",), ssl=context,
                                          headers={"Authorization": f"Bearer {token}"}) as ws:
                status = [m.data for m in [msg async for msg in ws] if m.data[:1] == b"\x03"]
            times.append(time.perf_counter() - start)
            if status != [b'\x03{"metadata":{},"status":"Success"}']:
                raise RuntimeError(f"exec over the API: {status!r}")
    return times[1:]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def count_stdout(cmd: list[str], env: dict[str, str] | None = None,
                 timeout: float = 600) -> tuple[int, float]:
    """Run ``cmd``, count its stdout bytes as they stream: (bytes, seconds)."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    count = 0
    try:
        while chunk := process.stdout.read1(MIB):
            count += len(chunk)
        rc = process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    elapsed = time.perf_counter() - start
    reader.join(10)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}): {b''.join(stderr)[-2000:]!r}")
    return count, elapsed


def http_get(port: int, path: str, timeout: float = 120) -> tuple[int, int]:
    """GET over a new connection to 127.0.0.1:port; (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"no HTTP answer: {head[:200]!r}")
            head += chunk
        header, _, body = head.partition(b"\r\n\r\n")
        count = len(body)
        while chunk := s.recv(MIB):
            count += len(chunk)
    return int(header.split()[1]), count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# the engines, behind one small interface


class PodlingTarget:
    engine = "podling"

    def __init__(self, cluster: Podling, p: Params, name: str) -> None:
        self.cluster = cluster
        self.name = name
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"nodeName": cluster.node, "terminationGracePeriodSeconds": 2,
                             "containers": [
                                 {"name": "web", "image": "nginx"},
                                 {"name": "side", "image": "busybox",
                                  "command": ["sh", "-c", side_script(p.size_mib)]}]}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        cluster.wait_running([name], timeout=120)
        wait_until(lambda: self.exec_ok(["test", "-f", f"{WWW}/ready"]), 120, "the big file")
        self.forward: subprocess.Popen | None = None
        self.ports: dict[int, int] = {}

    def exec_ok(self, argv: list[str]) -> bool:
        return self.cluster.kubectl("exec", self.name, "-c", "side", "--", *argv,
                                    check=False).returncode == 0

    def exec_true(self) -> None:
        self.cluster.kubectl("exec", self.name, "-c", "side", "--", "true")

    def exec_output(self, size: int) -> tuple[int, float]:
        return count_stdout(["kubectl", "exec", self.name, "-c", "side", "--",
                             *dd_zeros(size)], env=self.cluster.env)

    def exec_output_spdy(self, size: int) -> tuple[int, float]:
        """The same through kubectl's SPDY executor (its fallback protocol)."""
        return count_stdout(["kubectl", "exec", self.name, "-c", "side", "--",
                             *dd_zeros(size)],
                            env=dict(self.cluster.env, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false"))

    def exec_api_times(self, count: int) -> list[float]:
        """``true`` by WebSocket v5 execs straight to the API server (each waits for its
        status): the round trips, in seconds."""
        return asyncio.run(_ws_execs(self.cluster, self.name, count))

    def open_ports(self, *, spdy: bool = False) -> dict[int, int]:
        """Start one ``kubectl port-forward`` for 80 and 8080: remote -> local port. ``spdy``:
        plain SPDY instead of kubectl's default, SPDY tunnelled in a WebSocket."""
        self.close_ports()
        self.ports = {}
        env = dict(self.cluster.env, KUBECTL_PORT_FORWARD_WEBSOCKETS="false") if spdy \
            else self.cluster.env
        self.forward = subprocess.Popen(
            ["kubectl", "port-forward", f"pod/{self.name}", "0:80", "0:8080"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env)
        CLEANUP.push("stop kubectl port-forward", self.close_ports)
        assert self.forward.stdout is not None
        deadline = time.monotonic() + 30
        while len(self.ports) < 2:
            line = self.forward.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"kubectl port-forward did not start: {line!r}")
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
            if m:
                self.ports[int(m.group(2))] = int(m.group(1))
        threading.Thread(target=lambda: [None for _ in self.forward.stdout],
                         daemon=True).start()
        return self.ports

    def close_ports(self) -> None:
        if self.forward is not None and self.forward.poll() is None:
            self.forward.terminate()
            self.forward.wait(10)


class PodmanTarget:
    engine = "podman"

    def __init__(self, podman: Podman, p: Params, name: str) -> None:
        self.ports = {80: free_port(), 8080: free_port()}
        self.pod = name
        self.ctr = f"{name}-side"
        run(["podman", "pod", "create", "--name", name,
             "-p", f"127.0.0.1:{self.ports[80]}:80", "-p", f"127.0.0.1:{self.ports[8080]}:8080"])
        run(["podman", "run", "-d", "--pod", name, "--name", f"{name}-web",
             "docker.io/library/nginx:latest"])
        run(["podman", "run", "-d", "--pod", name, "--name", self.ctr,
             "docker.io/library/busybox:latest", "sh", "-c", side_script(p.size_mib)])
        wait_until(lambda: run(["podman", "exec", self.ctr, "test", "-f", f"{WWW}/ready"],
                               check=False).returncode == 0, 120, "the big file")

    def exec_true(self) -> None:
        run(["podman", "exec", self.ctr, "true"])

    def exec_output(self, size: int) -> tuple[int, float]:
        return count_stdout(["podman", "exec", self.ctr, *dd_zeros(size)])

    def open_ports(self) -> dict[int, int]:
        return self.ports

    def close_ports(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# the measurements


def bench_target(target, p: Params) -> dict[str, Any]:
    log(f"== {target.engine}")
    out: dict[str, Any] = {}
    size = p.size_mib * MIB

    def phase(key: str, fn: Callable[[], Any]) -> None:
        try:
            out[key] = fn()
            log(f"  {target.engine} {key}: {json.dumps(out[key])[:300]}")
        except Exception as e:  # noqa: BLE001 - report and go on
            log(f"  {target.engine} {key} FAILED: {str(e).strip()[:600]}")
            out[key] = {"error": str(e)[:4000]}

    def exec_round_trip() -> dict[str, Any]:
        target.exec_true()  # warm
        times = [timed(target.exec_true) for _ in range(p.repeats)]
        return {"median_s": median(times), "min_s": min(times), "samples": times}

    def exec_api_round_trip() -> dict[str, Any]:
        times = target.exec_api_times(p.repeats)
        return {"median_s": median(times), "min_s": min(times), "samples": times}

    def exec_throughput(output: Callable[[int], tuple[int, float]]) -> dict[str, Any]:
        runs = []
        for _ in range(2):
            count, elapsed = output(size)
            if count != size:
                raise RuntimeError(f"exec output: {count} bytes, expected {size}")
            runs.append(count / MIB / elapsed)
        return {"mib_per_s": max(runs), "runs_mib_per_s": runs, "bytes": size}

    def forward_latency() -> dict[str, Any]:
        ports = target.open_ports()
        http_get(ports[80], "/")  # warm (and proves it works)
        times = []
        for _ in range(p.repeats):
            start = time.perf_counter()
            status, _ = http_get(ports[80], "/")
            times.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"GET / answered {status}")
        return {"median_s": median(times), "min_s": min(times), "samples": times}

    def forward_throughput(spdy: bool = False) -> dict[str, Any]:
        ports = target.open_ports(spdy=True) if spdy else \
            target.open_ports() if not getattr(target, "ports", None) else target.ports
        runs = []
        for _ in range(2):
            start = time.perf_counter()
            status, count = http_get(ports[8080], "/big", timeout=600)
            elapsed = time.perf_counter() - start
            if (status, count) != (200, size):
                raise RuntimeError(f"GET /big: {status}, {count} bytes (expected {size})")
            runs.append(count / MIB / elapsed)
        return {"mib_per_s": max(runs), "runs_mib_per_s": runs, "bytes": size}

    phase("exec_round_trip", exec_round_trip)
    if hasattr(target, "exec_api_times"):
        phase("exec_api_round_trip", exec_api_round_trip)
    phase("exec_throughput", lambda: exec_throughput(target.exec_output))
    if hasattr(target, "exec_output_spdy"):
        phase("exec_throughput_spdy", lambda: exec_throughput(target.exec_output_spdy))
    phase("forward_latency", forward_latency)
    phase("forward_throughput", forward_throughput)
    if target.engine == "podling":
        phase("forward_throughput_spdy", lambda: forward_throughput(spdy=True))
    target.close_ports()
    return out


def figures(r: dict[str, Any]) -> dict[str, float | None]:
    def get(key: str, field: str, scale: float = 1.0) -> float | None:
        v = (r.get(key) or {}).get(field)
        return None if v is None else v * scale
    return {
        "exec round trip, median (ms)": get("exec_round_trip", "median_s", 1000),
        "  of which API + node, no kubectl (ms)": get("exec_api_round_trip", "median_s", 1000),
        "exec output throughput (MiB/s)": get("exec_throughput", "mib_per_s"),
        "  SPDY instead of WebSocket (MiB/s)": get("exec_throughput_spdy", "mib_per_s"),
        "port-forward small GET, median (ms)": get("forward_latency", "median_s", 1000),
        "port-forward throughput (MiB/s)": get("forward_throughput", "mib_per_s"),
        "  plain SPDY, no WebSocket (MiB/s)": get("forward_throughput_spdy", "mib_per_s"),
    }


def print_table(results: dict[str, Any], p: Params) -> str:
    return ratio_table(f"(N = {p.repeats}, {p.size_mib} MiB)",
                       {e: figures(r) for e, r in results.items()})


def main() -> int:
    args = side_by_side_args(__doc__.split("\n")[0], "N=5, 64 MiB")
    if os.geteuid() != 0:
        print("exec_bench needs root", file=sys.stderr)
        return 2
    install_signal_handlers()
    p = QUICK if args.quick else FULL
    report = new_report(args, p)
    results: dict[str, Any] = {}
    cluster = None
    try:
        work = make_temp_dir("podling-exec-bench-")
        archives = demo_archives(args.images_dir, work)
        tag = secrets.token_hex(2)
        if args.only != "podman":
            mark = len(CLEANUP._stack)  # noqa: SLF001 - the same dance as pods_bench.main
            registry = Registry(archives, work)
            cluster = Podling(work, registry.registries)
            stops = CLEANUP.detach_from(mark)
            target = PodlingTarget(cluster, p, f"xb{tag}-pod")
            results["podling"] = bench_target(target, p)
            for stop in reversed(stops):  # podling down before podman runs
                stop()
            cluster = None
        if args.only != "podling":
            podman = Podman(archives, f"xb{tag}-")
            report["podman_version"] = podman.version
            results["podman"] = bench_target(PodmanTarget(podman, p, f"xb{tag}-pod"), p)
        report["results"] = results
        report["table"] = print_table(results, p)
    except BaseException:
        if cluster is not None:
            print("---- podling server log (tail)\n" + cluster.log_tail(), file=sys.stderr)
        raise
    finally:
        CLEANUP.run_all()
    if not args.no_save:
        save_report(report, "exec")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
