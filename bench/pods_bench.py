#!/usr/bin/env python3
"""Run the same pod YAMLs through podling and through ``podman kube play``, side by side.

For each engine, in one run:

1. apply -> Running of a 1-container pod (nginx) and of a 3-container pod (nginx + two busybox
   sleepers), and delete -> gone of each (median of a few repetitions);
2. 50 pods (nginx) created one after another by one client, then by 4 concurrent clients:
   pods/s from the first create until every pod is Running;
3. memory per running pod with the 50 sequential pods running: the increase of the summed
   RSS and PSS (``/proc/<pid>/smaps_rollup``) of the engine's processes, divided by the pods.
   podling: the server process (API server + local agent) + its conmons + their containers
   (pause included), minus the same sum before the pods; podman: conmons + containers (infra
   included; podman has no daemon; its shared aardvark-dns counts as the engine), split into
   the engine's own processes (server, conmon, pause / infra catatonit, helpers) and the
   workload's (the app containers);
4. podling only: each pod's stage timeline (``GET /debug/pods/timeline``) reduced to the
   median per stage (ms since the API create) for the single pods and the two bulk phases,
   and the server's CPU per pod in the bulk phases; ``--profile DIR`` records the server
   with py-spy during the bulk phases and prints its top functions.

podling is driven with the real kubectl (``kubectl apply -f``, ``kubectl wait
--for=condition=Ready`` for one pod, one ``kubectl get pods`` every 0.1 s for the 50 as
podman's side polls ``pod ps``, ``kubectl delete --wait``; its own HOME and the data dir's
kubeconfig) against a throw-away ``podling server`` with its local agent (own node name, run
dir, bridge and data dir), images coming from the offline registry mirror
(``podling image registry-demo``). podman gets the same archives with ``podman load`` and runs
with runc and host-allowed rlimits (``/etc/containers/containers.conf`` is written for the run
and the previous file, if any, restored afterwards); Running is polled with ``podman pod
inspect`` / ``podman pod ps``, deletes use ``podman kube down`` (single pods) and ``podman pod
rm -f`` (the 50).

    .venv/bin/python bench/pods_bench.py            # full run (~10 minutes on 2 cores)
    .venv/bin/python bench/pods_bench.py --quick    # 10 pods instead of 50, fewer repeats
      --only podling|podman                         # one engine only
      --images-dir DIR                              # reuse/keep busybox.tar and nginx.tar there
      --no-save                                     # do not write bench/results/pods-*.json
      --profile DIR                                 # py-spy the server in the bulk phases

Everything started is stopped on exit, also on failure, Ctrl-C or SIGTERM: podman pods of this
run removed (and the images/network it added), the podling server stopped and ``podling
purge``d, the registry stopped, temporary directories removed. Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import podstages  # noqa: E402
import pyspy_top  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "bench", "results")
PAUSE_COMMS = ("catatonit", "pause")  # the sandbox / infra process of a pod
PROFILE_DIR: str | None = None  # --profile DIR: py-spy the server during the bulk phases
PYTHON = sys.executable
CONTAINERS_CONF = "/etc/containers/containers.conf"
PODMAN_CONF = """# written by podling bench/pods_bench.py for the duration of a benchmark run
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""
DEMO_IMAGES = ("docker.io/library/busybox:latest", "docker.io/library/nginx:latest")
# A sleeper that leaves on SIGTERM (a bare `sleep` as PID 1 ignores it and every delete would
# wait for the whole grace period, measuring the grace period instead of the engine).
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def log(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------------------------
# clean-up that runs also on failure, Ctrl-C and SIGTERM


class Cleanup:
    """A stack of clean-up callables run in reverse order (each at most once)."""

    def __init__(self) -> None:
        self._stack: list[tuple[str, Callable[[], Any]]] = []

    def push(self, name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        entry = (name, fn)
        self._stack.append(entry)

        def run_now() -> None:
            if entry in self._stack:
                self._stack.remove(entry)
                self._run(entry)
        return run_now

    @staticmethod
    def _run(entry: tuple[str, Callable[[], Any]]) -> None:
        name, fn = entry
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - clean-up must go on
            print(f"clean-up {name!r} failed: {e!r}", file=sys.stderr, flush=True)

    def detach_from(self, mark: int) -> list[Callable[[], None]]:
        """The entries pushed since ``mark`` as run-now callables (in push order); they stay
        on the stack until run."""
        out = []
        for entry in self._stack[mark:]:
            def run_now(entry=entry) -> None:
                if entry in self._stack:
                    self._stack.remove(entry)
                    self._run(entry)
            out.append(run_now)
        return out

    def run_all(self) -> None:
        while self._stack:
            self._run(self._stack.pop())


CLEANUP = Cleanup()


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def make_temp_dir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    CLEANUP.push(f"rm {path}", lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run(cmd: list[str], *, check: bool = True, timeout: float = 300, env=None,
        input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                            input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                           f"{result.stdout}\n{result.stderr}")
    return result


# --------------------------------------------------------------------------------------------
# /proc measurements


def read_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children_map() -> dict[int, list[int]]:
    """ppid -> pids of all processes now."""
    result: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        result.setdefault(ppid, []).append(int(name))
    return result


def descendants(roots: list[int], kids: dict[int, list[int]] | None = None) -> list[int]:
    kids = kids if kids is not None else children_map()
    out: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        for child in kids.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def pids_matching(*needles: str, comm: str | None = None) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if comm is not None:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != comm:
                        continue
            except OSError:
                continue
        line = read_cmdline(pid)
        if line and all(n in line for n in needles):
            found.append(pid)
    return found


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss and Pss of one process in kB (zeros when it is gone)."""
    out = {"rss_kb": 0, "pss_kb": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    out["rss_kb"] = int(line.split()[1])
                elif line.startswith("Pss:"):
                    out["pss_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def mem_sum(pids: list[int]) -> dict[str, int]:
    total = {"rss_kb": 0, "pss_kb": 0, "processes": 0}
    for pid in pids:
        m = smaps_rollup(pid)
        if m["rss_kb"] or m["pss_kb"]:
            total["rss_kb"] += m["rss_kb"]
            total["pss_kb"] += m["pss_kb"]
            total["processes"] += 1
    return total


def cpu_ticks(pid: int) -> dict[str, int]:
    """utime, stime, cutime, cstime (clock ticks) of a process; zeros when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return {"utime": 0, "stime": 0, "cutime": 0, "cstime": 0}
    fields = stat[stat.rindex(")") + 2:].split()
    return {"utime": int(fields[11]), "stime": int(fields[12]),
            "cutime": int(fields[13]), "cstime": int(fields[14])}


def ctx_switches(pid: int) -> int:
    """Voluntary + involuntary context switches over all threads of a process."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def split_pause(conmons: list[int], kids: dict[int, list[int]]) -> tuple[list[int], list[int]]:
    """The conmons' descendants as (pause processes: ``catatonit``, podling's ``/pause``
    and podman's infra ``/catatonit``; the rest: the workload's containers)."""
    pause, workload = [], []
    for pid in descendants(conmons, kids):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        (pause if comm in PAUSE_COMMS else workload).append(pid)
    return pause, workload


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------------------------
# pod manifests (the same YAML for both engines)


def pod_yaml(name: str, kind: str, node: str, labels: dict[str, str] | None = None) -> str:
    """``kind``: 'web' (nginx), 'trio' (nginx + 2 busybox sleepers) or 'sleep' (busybox
    ``sleep 3600``). ``nodeName`` pins the pod to podling's node (podling has no scheduler
    yet); podman ignores it."""
    labels = dict(labels or {})
    labels.setdefault("app", "podling-bench")
    label_lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in sorted(labels.items()))
    web = ("  - name: web\n"
           "    image: nginx\n"
           "    imagePullPolicy: IfNotPresent\n")

    def sleeper(cname: str, command: list[str]) -> str:
        return (f"  - name: {cname}\n"
                "    image: busybox\n"
                "    imagePullPolicy: IfNotPresent\n"
                f"    command: {json.dumps(command)}\n")
    if kind == "web":
        containers = web
    elif kind == "trio":
        containers = web + sleeper("sidecar-a", SLEEPER) + sleeper("sidecar-b", SLEEPER)
    elif kind == "sleep":
        containers = sleeper("sleep", ["sleep", "3600"])
    else:
        raise ValueError(kind)
    return ("apiVersion: v1\n"
            "kind: Pod\n"
            "metadata:\n"
            f"  name: {name}\n"
            "  labels:\n"
            f"{label_lines}"
            "spec:\n"
            f"  nodeName: {node}\n"
            "  containers:\n"
            f"{containers}")


def write_yaml(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------------------------
# images and the offline registry


def demo_archives(images_dir: str | None, work: str) -> str:
    """A directory holding busybox.tar and nginx.tar (built with ``podling image
    build-demo`` unless ``images_dir`` already has them)."""
    target = images_dir or os.path.join(work, "images")
    os.makedirs(target, exist_ok=True)
    if not all(os.path.exists(os.path.join(target, f"{n}.tar")) for n in ("busybox", "nginx")):
        cmd = [PYTHON, "-m", "podling", "image", "build-demo", target]
        cache = "/var/cache/apt/archives"
        if os.path.isdir(cache) and any(n.startswith("nginx_") for n in os.listdir(cache)) \
                and any(n.startswith("nginx-common_") for n in os.listdir(cache)):
            cmd += ["--deb-dir", cache]
        log(f"building the demo images in {target}")
        subprocess.run(cmd, cwd=REPO, check=True, timeout=600)
    return target


class Registry:
    """``podling image registry-demo`` (foreground) on 127.0.0.1, mirroring docker.io."""

    def __init__(self, archives_dir: str, work: str) -> None:
        self.dir = os.path.join(work, "registry-demo")
        os.makedirs(self.dir)
        for name in ("busybox", "nginx"):
            shutil.copy(os.path.join(archives_dir, f"{name}.tar"), self.dir)
        self.registries = os.path.join(work, "registries.yaml")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "podling", "image", "--registries", self.registries,
             "registry-demo", self.dir, "--port", "0"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        CLEANUP.push("stop registry", lambda: stop_process(self.process))
        seen = []
        deadline = time.monotonic() + 180
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "mirrored in" in line:
                break
        if not os.path.exists(self.registries):
            raise RuntimeError("registry-demo did not start:\n" + "".join(seen))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass


# --------------------------------------------------------------------------------------------
# podling


class Podling:
    """A throw-away ``podling server`` with its local agent, driven with the real kubectl."""

    engine = "podling"

    def __init__(self, work: str, registries: str) -> None:
        tag = secrets.token_hex(3)
        self.node = f"pbench-{tag}"
        self.run_dir = f"/run/podling-bench-{tag}"
        self.bridge = f"pbb{tag}"
        self.data_dir = os.path.join(work, "podling-data")
        self.home = os.path.join(work, "podling-home")
        self.log_path = os.path.join(work, "podling-server.log")
        os.makedirs(self.data_dir)
        os.makedirs(self.home)
        shutil.copy(registries, os.path.join(self.data_dir, "registries.yaml"))
        self.env = dict(os.environ, HOME=self.home,
                        KUBECONFIG=os.path.join(self.data_dir, "kubeconfig"))
        CLEANUP.push("podling purge", self._purge)
        self.process = subprocess.Popen(
            [PYTHON, "-m", "podling", "server", "--data-dir", self.data_dir, "--port", "0",
             "--node-name", self.node, "--run-dir", self.run_dir, "--bridge-name", self.bridge],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        CLEANUP.push("stop podling server", self._stop)
        self._wait_ready()

    def _wait_ready(self) -> None:
        seen: list[str] = []
        deadline = time.monotonic() + 90
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "local agent running" in line:
                threading.Thread(target=self._drain, args=(seen,), daemon=True).start()
                return
        raise RuntimeError("podling server did not become ready:\n" + "".join(seen))

    def _drain(self, seen: list[str]) -> None:
        assert self.process.stdout is not None
        with open(self.log_path, "a") as f:
            f.writelines(seen)
            for line in self.process.stdout:
                f.write(line)
                f.flush()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _stop(self) -> None:
        if self.process.poll() is None:
            # let the agent tear pods down itself first; purge cleans whatever is left
            self.kubectl("delete", "pods", "--all", "--grace-period=2", "--wait=true",
                         "--timeout=90s", check=False, timeout=120)
        stop_process(self.process)

    def _purge(self) -> None:
        result = subprocess.run(
            [PYTHON, "-m", "podling", "purge", "--data-dir", self.data_dir, "--run-dir",
             self.run_dir, "--node-name", self.node, "--bridge-name", self.bridge],
            cwd=REPO, capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            raise RuntimeError(f"podling purge failed: {result.stdout}{result.stderr}")
        leftover = [p for p in pids_matching(self.run_dir) if p != os.getpid()]
        if leftover:
            raise RuntimeError(f"processes left under {self.run_dir}: {leftover}")

    def remove_all_pods(self) -> None:
        self.kubectl("delete", "pods", "--all", "--grace-period=2", "--wait=true",
                     "--timeout=120s", check=False, timeout=150)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def kubectl(self, *args: str, check: bool = True, timeout: float = 300,
                input: str | None = None) -> subprocess.CompletedProcess:
        return run(["kubectl", *args], check=check, timeout=timeout, env=self.env, input=input)

    # -- the operations timed ---------------------------------------------------------------

    def noop(self) -> None:
        self.kubectl("get", "--raw", "/readyz")

    def apply(self, path: str) -> None:
        self.kubectl("apply", "-f", path)

    def wait_running(self, names: list[str], timeout: float = 300) -> None:
        """One pod: ``kubectl wait`` (what a user runs). Many: one ``kubectl get pods`` list
        every 0.1 s until all are Ready, as podman's side polls ``pod ps`` (``kubectl wait``
        on many pods checks them one after another: about 0.16 s a pod, a figure of kubectl's
        and not of the engine)."""
        if len(names) == 1:
            self.kubectl("wait", "--for=condition=Ready", "--timeout", f"{int(timeout)}s",
                         f"pod/{names[0]}", timeout=timeout + 30)
            return
        deadline = time.monotonic() + timeout
        query = ('jsonpath={range .items[*]}{.metadata.name}='
                 '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}')
        while True:
            out = self.kubectl("get", "pods", "-o", query).stdout
            ready = {n for n, _, s in (line.partition("=") for line in out.split())
                     if s == "True"}
            if ready >= set(names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"pods not Ready: {sorted(set(names) - ready)[:5]}")
            time.sleep(0.1)

    def delete(self, path: str) -> None:
        self.kubectl("delete", "-f", path, "--wait=true", "--timeout=120s", timeout=150)

    def check_gone(self, name: str) -> None:
        gone = self.kubectl("get", "pod", name, "--ignore-not-found", "-o", "name").stdout
        if gone.strip():
            raise RuntimeError(f"pod {name} still there after delete")

    def delete_many(self, names: list[str], selector: str) -> None:
        self.kubectl("delete", "pods", "-l", selector, "--wait=true", "--timeout=300s",
                     timeout=330)
        left = self.kubectl("get", "pods", "-l", selector, "-o", "name").stdout.split()
        if left:
            raise RuntimeError(f"pods left after delete: {left}")

    def stage_timeline(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """name -> the pod's stage timeline (``GET /debug/pods/timeline``)."""
        return podstages.fetch(self.kubectl, names)

    def processes(self) -> dict[str, list[int]]:
        """The engine's (server, conmon, pause) and the workload's processes (the app
        containers: the other descendants of this node's conmons). The pause runs without
        conmon: its pid is in the sandbox record."""
        kids = children_map()
        conmons = pids_matching(self.run_dir, comm="conmon")
        pause, workload = split_pause(conmons, kids)
        return {"server": [self.pid] + descendants([self.pid], kids),
                "conmon": conmons, "pause": pause + self.pauses(), "workload": workload}

    def pauses(self) -> list[int]:
        """The pause processes without conmon (podling's now), from the sandbox records."""
        found = []
        for path in glob.glob(os.path.join(self.run_dir, "runtime", "sandboxes", "*",
                                           "sandbox.json")):
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue
            if record.get("pause_pid") and not record.get("conmon_pid"):
                found.append(int(record["pause_pid"]))
        return found

    def runtime_count(self) -> int:
        out = run(["runc", "--root", os.path.join(self.run_dir, "runtime", "runc"), "list",
                   "-q"], check=False).stdout
        return len(out.split())


# --------------------------------------------------------------------------------------------
# podman


class Podman:
    """Debian's podman 4.3 with runc and host-allowed rlimits (see docs/host-notes.md §8)."""

    engine = "podman"

    def __init__(self, archives_dir: str, prefix: str) -> None:
        self.prefix = prefix
        if shutil.which("podman") is None:
            log("installing podman (apt-get install -y podman)")
            subprocess.run(["apt-get", "install", "-y", "podman"], check=True, timeout=900,
                           stdout=subprocess.DEVNULL)
        self.version = run(["podman", "--version"]).stdout.strip()
        self._write_conf()
        networks_dir = "/etc/containers/networks"
        if not os.path.exists(networks_dir):
            # podman creates it (with a lock file) on first use; leave no trace of this run
            CLEANUP.push("rm networks dir", lambda: shutil.rmtree(networks_dir)
                         if set(os.listdir(networks_dir)) <= {"netavark.lock"} else None)
        before_images = set(self._images())
        before_networks = set(run(["podman", "network", "ls", "--format", "{{.Name}}"])
                              .stdout.split())
        CLEANUP.push("podman images/networks", lambda: self._remove_added(before_images,
                                                                          before_networks))
        CLEANUP.push("podman pods", self.remove_all_pods)
        for name in ("busybox", "nginx"):
            run(["podman", "load", "-i", os.path.join(archives_dir, f"{name}.tar")])

    def _write_conf(self) -> None:
        backup = None
        if os.path.exists(CONTAINERS_CONF):
            with open(CONTAINERS_CONF, "rb") as f:
                backup = f.read()
        os.makedirs(os.path.dirname(CONTAINERS_CONF), exist_ok=True)

        def restore() -> None:
            if backup is None:
                os.unlink(CONTAINERS_CONF)
            else:
                with open(CONTAINERS_CONF, "wb") as f:
                    f.write(backup)
        CLEANUP.push("restore containers.conf", restore)
        with open(CONTAINERS_CONF, "w") as f:
            f.write(PODMAN_CONF)

    def _images(self) -> list[str]:
        out = run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
        return out.split()

    def _remove_added(self, images: set[str], networks: set[str]) -> None:
        added = [i for i in self._images() if i not in images]
        if added:
            run(["podman", "rmi", "-f", *added], check=False)
        for net in run(["podman", "network", "ls", "--format", "{{.Name}}"]).stdout.split():
            if net not in networks:
                run(["podman", "network", "rm", "-f", net], check=False)

    def our_pods(self) -> list[str]:
        out = run(["podman", "pod", "ps", "--format", "{{.Name}}"], check=False).stdout
        return [n for n in out.split() if n.startswith(self.prefix)]

    def remove_all_pods(self) -> None:
        pods = self.our_pods()
        if pods:
            run(["podman", "pod", "rm", "-f", "-t", "0", *pods], check=False, timeout=600)
        left = self.our_pods()
        if left:
            raise RuntimeError(f"podman pods left: {left}")

    # -- the operations timed ---------------------------------------------------------------

    def noop(self) -> None:
        run(["podman", "pod", "exists", "nonexistent-podling-bench"], check=False)

    def apply(self, path: str) -> None:
        run(["podman", "kube", "play", path])

    def _states(self) -> dict[str, str]:
        out = run(["podman", "pod", "ps", "--format", "{{.Name}} {{.Status}}"]).stdout
        states = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                states[parts[0]] = parts[1]
        return states

    def wait_running(self, names: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        if len(names) == 1:
            while True:
                state = run(["podman", "pod", "inspect", names[0], "--format", "{{.State}}"],
                            check=False).stdout.strip()
                if state == "Running":
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{names[0]} not Running: {state}")
                time.sleep(0.05)
        while True:
            states = self._states()
            if all(states.get(n) == "Running" for n in names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("podman pods not Running: "
                                   f"{[n for n in names if states.get(n) != 'Running']}")
            time.sleep(0.1)

    def delete(self, path: str) -> None:
        run(["podman", "kube", "down", path])

    def check_gone(self, name: str) -> None:
        if run(["podman", "pod", "exists", name], check=False).returncode == 0:
            raise RuntimeError(f"podman pod {name} still there after kube down")

    def delete_many(self, names: list[str], selector: str) -> None:  # noqa: ARG002
        run(["podman", "pod", "rm", "-f", *names], timeout=600)
        left = [n for n in self.our_pods() if n in set(names)]
        if left:
            raise RuntimeError(f"podman pods left: {left}")

    stage_timeline = None  # podman records no per-stage times

    def processes(self) -> dict[str, list[int]]:
        """The engine's (conmons, the infra containers' catatonit, the shared aardvark-dns;
        podman has no daemon) and the workload's processes (the app containers)."""
        kids = children_map()
        conmons = pids_matching("/var/lib/containers/storage", comm="conmon")
        pause, workload = split_pause(conmons, kids)
        return {"conmon": conmons, "pause": pause, "helpers": pids_matching(comm="aardvark-dns"),
                "workload": workload}

    def runtime_count(self) -> int:
        return len(self.our_pods())


# --------------------------------------------------------------------------------------------
# the phases


@dataclass(frozen=True)
class Params:
    repeats: int   # apply -> Running / delete -> gone repetitions per pod kind
    pods: int      # pods in the sequential and the concurrent runs
    clients: int   # concurrent clients


FULL = Params(repeats=5, pods=50, clients=4)
QUICK = Params(repeats=2, pods=10, clients=4)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def single_pods(eng, p: Params, yaml_dir: str, node: str, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    noop = [timed(eng.noop) for _ in range(5)]
    out["client_noop_s"] = median(noop)
    for kind, label in (("web", "1-container"), ("trio", "3-container")):
        name = f"{prefix}{kind}"
        path = write_yaml(yaml_dir, f"{eng.engine}-{name}",
                          pod_yaml(name, kind, node, {"bench": "single"}))
        runs, deletes, stages, delete_stages, applies, floors = [], [], [], [], [], []
        for i in range(p.repeats):
            start = time.perf_counter()
            eng.apply(path)
            applied = time.perf_counter() - start
            eng.wait_running([name], timeout=90)
            running = time.perf_counter() - start
            ready = time.monotonic()
            # the same wait once more, on a pod already Running: what the client's wait
            # costs when the engine has nothing left to do
            floors.append(timed(lambda: eng.wait_running([name], timeout=90)))
            applies.append(applied)
            stages += pod_stages(eng, [name], ready)
            time.sleep(1.0)
            asked = time.monotonic()
            gone = timed(lambda: eng.delete(path))  # returns once the pod is gone
            eng.check_gone(name)  # a sanity check, outside the figure
            delete_stages += pod_delete_stages(eng, name, asked, asked + gone)
            runs.append(running)
            deletes.append(gone)
            log(f"  {eng.engine} {label} #{i + 1}: apply {applied:.2f}s, Running after "
                f"{running:.2f}s, delete -> gone {gone:.2f}s")
            time.sleep(1.0)
        out[kind] = {"apply_to_running_s": runs, "delete_to_gone_s": deletes,
                     "apply_median_s": median(applies),
                     "wait_on_running_median_s": median(floors),
                     "apply_to_running_median_s": median(runs),
                     "delete_to_gone_median_s": median(deletes)}
        if stages:
            out[kind]["stages"] = podstages.summary(stages)
        if delete_stages:
            out[kind]["delete_stages"] = podstages.summary(delete_stages)
    return out


def timelines(eng, names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> its timeline item; {} for an engine without them or when the endpoint fails
    (logged)."""
    if eng.stage_timeline is None:
        return {}
    try:
        return eng.stage_timeline(names)
    except Exception as e:  # noqa: BLE001 - the figures go on without the breakdown
        log(f"  {eng.engine}: no stage timeline: {str(e).strip()[:300]}")
        return {}


def pod_stages(eng, names: list[str], ready: float | None = None) -> list[dict[str, float]]:
    """The stage timelines of ``names`` (with ``kubectl.ready`` at monotonic ``ready`` when
    given); [] without timelines."""
    found = timelines(eng, names)
    return [podstages.with_ready(found[n], ready) if ready is not None else
            dict(found[n]["stages"]) for n in names if n in found]


def pod_delete_stages(eng, name: str, asked: float, gone: float) -> list[dict[str, float]]:
    """The deleted pod ``name``'s ``delete.*`` stages in ms since monotonic ``asked`` (and
    ``kubectl.gone`` at ``gone``); [] without a timeline."""
    found = timelines(eng, [name])
    return [podstages.delete_stages(found[name], asked, gone)] if name in found else []


def many_pods(eng, p: Params, yaml_dir: str, node: str, prefix: str, clients: int,
              measure_memory: bool, baseline: dict[str, Any] | None) -> dict[str, Any]:
    tag = "seq" if clients == 1 else f"par{clients}"
    names = [f"{prefix}{tag}-{i:03d}" for i in range(p.pods)]
    paths = [write_yaml(yaml_dir, f"{eng.engine}-{n}", pod_yaml(n, "web", node, {"bench": tag}))
             for n in names]
    shares = [list(zip(names, paths))[c::clients] for c in range(clients)]
    errors: list[BaseException] = []

    def client(share: list[tuple[str, str]]) -> None:
        try:
            for _, path in share:
                eng.apply(path)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    cpu_before = server_cpu(eng)
    with profiled(eng, tag) as profile:
        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(s,)) for s in shares]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        created = time.perf_counter() - start
        if errors:
            raise errors[0]
        eng.wait_running(names, timeout=240)
        running = time.perf_counter() - start
    result: dict[str, Any] = {"pods": p.pods, "clients": clients, "creates_done_s": created,
                              "all_running_s": running, "pods_per_s": p.pods / running}
    if cpu_before is not None:
        result["server_cpu_ms_per_pod"] = cpu_per_pod(cpu_before, server_cpu(eng), p.pods)
    if profile is not None:
        result["profile"] = pyspy_top.summarise(profile.path)
        log(pyspy_top.top_text(result["profile"]))
    stages = pod_stages(eng, names)
    if stages:
        result["stages"] = podstages.summary(stages)
    log(f"  {eng.engine} {p.pods} pods, {clients} client(s): creates done {created:.1f}s, all "
        f"Running {running:.1f}s -> {p.pods / running:.2f} pods/s")
    if measure_memory:
        time.sleep(5.0)  # let the last pods' start-up settle
        result["memory"] = memory_report(eng, p.pods, baseline)
    delete = timed(lambda: eng.delete_many(names, f"bench={tag}"))
    result["delete_all_s"] = delete
    log(f"  {eng.engine} delete all {p.pods}: {delete:.1f}s")
    return result


def server_cpu(eng) -> dict[str, int] | None:
    """podling's server process CPU ticks (utime, stime, and cutime / cstime of the children
    it reaped: runc, CNI plugins, iptables); None for podman (no server process)."""
    return cpu_ticks(eng.pid) if eng.engine == "podling" else None


def cpu_per_pod(before: dict[str, int], after: dict[str, int], pods: int) -> dict[str, float]:
    """Milliseconds of CPU per pod: the server itself and its reaped children."""
    ms = 1000.0 / os.sysconf("SC_CLK_TCK") / pods

    def d(*keys: str) -> float:
        return sum(after[k] - before[k] for k in keys) * ms
    return {"server": d("utime", "stime"), "children": d("cutime", "cstime")}


class _Profile:
    def __init__(self, path: str) -> None:
        self.path = path


@contextlib.contextmanager
def profiled(eng, tag: str):
    """With ``--profile DIR``, record podling's server with py-spy (``--gil``) while the
    block runs into DIR/<tag>.raw; yields the _Profile or None."""
    if PROFILE_DIR is None or eng.engine != "podling":
        yield None
        return
    os.makedirs(PROFILE_DIR, exist_ok=True)
    out = _Profile(os.path.join(PROFILE_DIR, f"{tag}.raw"))
    with pyspy_top.PySpy(eng.pid, out.path):
        yield out


def memory_snapshot(eng) -> dict[str, Any]:
    return {group: mem_sum(pids) for group, pids in eng.processes().items()}


def memory_report(eng, pods: int, baseline: dict[str, Any] | None) -> dict[str, Any]:
    """Per running pod: the increase of each group's RSS / PSS and processes over
    ``baseline``, and their sums for the engine (every group but ``workload``: server,
    conmon, pause, podman's helpers) and for the workload (the app containers)."""
    now = memory_snapshot(eng)
    base = baseline or {}
    per_pod: dict[str, Any] = {}

    def delta(group: str, key: str) -> float:
        return (now[group][key] - base.get(group, {}).get(key, 0)) / pods
    engine_groups = [g for g in now if g != "workload"]
    for key in ("rss_kb", "pss_kb", "processes"):
        for group in now:
            per_pod[f"{group}_{key}"] = delta(group, key)
        per_pod[f"engine_{key}"] = sum(delta(g, key) for g in engine_groups)
        per_pod[f"total_{key}"] = per_pod[f"engine_{key}"] + per_pod[f"workload_{key}"]
    per_pod["processes"] = per_pod.pop("total_processes")
    parts = ", ".join(f"{g} {per_pod[g + '_pss_kb'] / 1024:.2f}" for g in now)
    log(f"  {eng.engine} memory per running pod: PSS engine "
        f"{per_pod['engine_pss_kb'] / 1024:.2f} MiB + workload "
        f"{per_pod['workload_pss_kb'] / 1024:.2f} MiB; RSS {per_pod['total_rss_kb'] / 1024:.2f}"
        f" MiB; {per_pod['processes']:.1f} processes ({parts})")
    return {"baseline": base, "with_pods": now, "per_pod": per_pod}


def warm_up(eng, yaml_dir: str, node: str, prefix: str) -> None:
    """Run one 3-container pod once so that images are pulled / the infra image is built."""
    name = f"{prefix}warm"
    path = write_yaml(yaml_dir, f"{eng.engine}-{name}", pod_yaml(name, "trio", node))
    eng.apply(path)
    eng.wait_running([name], timeout=120)
    eng.delete(path)
    eng.check_gone(name)
    return {"ok": True}


def bench_engine(eng, p: Params, yaml_dir: str, node: str, prefix: str) -> dict[str, Any]:
    """All phases on one engine; a failing phase is recorded (``error``), its pods removed,
    and the next phase runs."""
    log(f"== {eng.engine}")
    result: dict[str, Any] = {}

    def phase(key: str, fn: Callable[[], Any]) -> None:
        try:
            result[key] = fn()
        except Exception as e:  # noqa: BLE001 - report and go on
            log(f"  {eng.engine} {key} FAILED: {str(e).strip()[:600]}")
            result[key] = {"error": str(e)[:4000]}
            eng.remove_all_pods()
        time.sleep(2.0)

    phase("warm_up", lambda: warm_up(eng, yaml_dir, node, prefix))
    phase("single", lambda: single_pods(eng, p, yaml_dir, node, prefix))
    baseline = memory_snapshot(eng)
    phase("sequential", lambda: many_pods(eng, p, yaml_dir, node, prefix, 1, True, baseline))
    phase("concurrent", lambda: many_pods(eng, p, yaml_dir, node, prefix, p.clients, False,
                                          None))
    if eng.runtime_count():
        log(f"  {eng.engine}: containers/pods left after the run")
        result["leftovers"] = eng.runtime_count()
    return result


# --------------------------------------------------------------------------------------------
# report


def environment() -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "memory_gib": round(mem_kb / 1024 / 1024, 1), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


def figures(r: dict[str, Any]) -> dict[str, float | None]:
    def get(*keys: str) -> float | None:
        value: Any = r
        for k in keys:
            if not isinstance(value, dict) or k not in value:
                return None
            value = value[k]
        return value

    def mib(v: float | None) -> float | None:
        return None if v is None else v / 1024
    return {
        "client no-op (s)": get("single", "client_noop_s"),
        "1-container apply -> Running (s)": get("single", "web", "apply_to_running_median_s"),
        "  of it the apply command (s)": get("single", "web", "apply_median_s"),
        "  the wait, on a pod already Running (s)": get("single", "web",
                                                       "wait_on_running_median_s"),
        "3-container apply -> Running (s)": get("single", "trio", "apply_to_running_median_s"),
        "1-container delete -> gone (s)": get("single", "web", "delete_to_gone_median_s"),
        "3-container delete -> gone (s)": get("single", "trio", "delete_to_gone_median_s"),
        "N pods, 1 client (pods/s)": get("sequential", "pods_per_s"),
        "N pods, 4 clients (pods/s)": get("concurrent", "pods_per_s"),
        "N pods, 1 client: server CPU/pod (ms)": get("sequential", "server_cpu_ms_per_pod",
                                                     "server"),
        "N pods, 4 clients: server CPU/pod (ms)": get("concurrent", "server_cpu_ms_per_pod",
                                                      "server"),
        "N pods, 1 client: creates done (s)": get("sequential", "creates_done_s"),
        "N pods, 4 clients: creates done (s)": get("concurrent", "creates_done_s"),
        "delete N pods at once (s)": get("sequential", "delete_all_s"),
        "memory per pod, RSS (MiB)": mib(get("sequential", "memory", "per_pod", "total_rss_kb")),
        "memory per pod, PSS (MiB)": mib(get("sequential", "memory", "per_pod", "total_pss_kb")),
        "  engine's own PSS (MiB)": mib(get("sequential", "memory", "per_pod", "engine_pss_kb")),
        "  workload's PSS (MiB)": mib(get("sequential", "memory", "per_pod", "workload_pss_kb")),
        "processes per pod": get("sequential", "memory", "per_pod", "processes"),
    }


def side_by_side_args(description: str, quick_help: str,
                      profile: bool = False) -> argparse.Namespace:
    """The command line of a podling-vs-podman benchmark (``profile``: with --profile)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--only", choices=("podling", "podman"))
    parser.add_argument("--images-dir", help="keep/reuse the demo image archives here")
    parser.add_argument("--no-save", action="store_true")
    if profile:
        parser.add_argument("--profile", metavar="DIR",
                            help="py-spy podling's server during the bulk phases into DIR")
    return parser.parse_args()


def new_report(args: argparse.Namespace, params: Any) -> dict[str, Any]:
    """The head of a benchmark's JSON report: mode, parameters, machine, start time."""
    return {"mode": "quick" if args.quick else "full", "params": params.__dict__,
            "environment": environment(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save_report(report: dict[str, Any], kind: str) -> str:
    """Write ``report`` as ``bench/results/<kind>-<timestamp>.json``; returns the path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    log(f"saved {path}")
    return path


def print_table(results: dict[str, Any], pods: int) -> str:
    return ratio_table(f"(N = {pods})", {e: figures(r) for e, r in results.items()})


def print_stages(results: dict[str, Any], pods: int) -> str:
    """podling's per-stage medians (ms since the API create) of the four phases."""
    r = results.get("podling") or {}
    columns = {}
    for title, keys in (("1-container", ("single", "web")), ("3-container", ("single", "trio")),
                        (f"{pods} pods, 1 cl.", ("sequential",)),
                        (f"{pods} pods, 4 cl.", ("concurrent",))):
        value: Any = r
        for k in keys + ("stages", "median_ms"):
            value = value.get(k) if isinstance(value, dict) else None
        if value:
            columns[title] = value
    text = podstages.print_table(columns)
    deletes = {title: r["single"][kind]["delete_stages"]["median_ms"]
               for title, kind in (("1-container", "web"), ("3-container", "trio"))
               if "delete_stages" in r.get("single", {}).get(kind, {})}
    if deletes:
        text += "\n" + podstages.print_table(deletes, title="delete (median ms since kubectl)")
    return text


def ratio_table(title: str, columns: dict[str, dict[str, float | None]],
                width: int = 42) -> str:
    """Print (and return) one row per figure, a column per engine (podling, podman) and
    their ratio; ``-`` where an engine has no such figure (or it failed)."""
    engines = [e for e in ("podling", "podman") if e in columns]
    rows = list(next(iter(columns.values())).keys()) if columns else []

    def cell(v: float | None) -> str:
        return f"{'-':>12}" if v is None else f"{v:12.2f}"
    header = f"{title:{width}}" + "".join(f"{e:>12}" for e in engines)
    if len(engines) == 2:
        header += f"{'podling/podman':>16}"
    lines = [header]
    for row in rows:
        values = [columns[e].get(row) for e in engines]
        line = f"{row:{width}}" + "".join(cell(v) for v in values)
        if len(engines) == 2 and values[1] and values[0] is not None:
            line += f"{values[0] / values[1]:16.2f}"
        lines.append(line)
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main() -> int:
    global PROFILE_DIR
    args = side_by_side_args(__doc__.split("\n")[0], "10 pods, 2 repetitions", profile=True)
    PROFILE_DIR = args.profile
    if os.geteuid() != 0:
        print("pods_bench needs root", file=sys.stderr)
        return 2
    install_signal_handlers()
    p = QUICK if args.quick else FULL
    report = new_report(args, p)
    results: dict[str, Any] = {}
    podling = None
    try:
        work = make_temp_dir("podling-pods-bench-")
        yaml_dir = os.path.join(work, "yaml")
        os.makedirs(yaml_dir)
        archives = demo_archives(args.images_dir, work)
        tag = secrets.token_hex(2)
        node = "pbench-node"
        podling_stops: list[Callable[[], None]] = []
        if args.only != "podman":
            mark = len(CLEANUP._stack)
            registry = Registry(archives, work)
            podling = Podling(work, registry.registries)
            podling_stops = CLEANUP.detach_from(mark)
            node = podling.node
            report["podling"] = {"node": podling.node, "run_dir": podling.run_dir}
        # the same YAML for both engines: nodeName is podling's node (podman ignores it)
        if podling is not None:
            results["podling"] = bench_engine(podling, p, yaml_dir, node, f"pb{tag}-")
            # stop podling (server, pods, purge, registry) before podman runs
            for stop in reversed(podling_stops):
                stop()
        if args.only != "podling":
            podman = Podman(archives, f"pb{tag}-")
            report["podman_version"] = podman.version
            results["podman"] = bench_engine(podman, p, yaml_dir, node, f"pb{tag}-")
        report["results"] = results
        report["table"] = print_table(results, p.pods)
        report["stages_table"] = print_stages(results, p.pods)
    except BaseException:
        if podling is not None:
            print("---- podling server log (tail)\n" + podling.log_tail(), file=sys.stderr)
        raise
    finally:
        CLEANUP.run_all()
    if not args.no_save:
        save_report(report, "pods")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
