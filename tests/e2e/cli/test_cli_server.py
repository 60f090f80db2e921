"""`podling server` configured through a config file and PODLING_* variables, writing its
kubeconfig where --write-kubeconfig says with --write-kubeconfig-mode, and `podling
kubectl` using it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[3])


def wait_ready(process: subprocess.Popen, timeout: float = 30) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "API server ready" in line:
            return seen
    raise AssertionError("server did not become ready:\n" + "".join(seen))


def test_server_from_config_file_and_environment(tmp_path):
    data, copy = tmp_path / "data", tmp_path / "out" / "admin.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(f"data-dir: {data}\nport: 0\ndisable-agent: true\n"
                      "disable-scheduler: true\nwrite-kubeconfig-mode: '0644'\n"
                      "log-level: warning\n")
    env = {**os.environ, "PYTHONPATH": REPO, "PODLING_CONFIG": str(config),
           "PODLING_WRITE_KUBECONFIG": str(copy)}
    process = subprocess.Popen([sys.executable, "-m", "podling", "server", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, cwd=REPO)
    try:
        seen = wait_ready(process)
        assert any(f"kubeconfig: {data}/kubeconfig" in line for line in seen)
        assert f"podling: kubeconfig also written to {copy}\n" in seen  # before "ready"
        assert copy.read_bytes() == (data / "kubeconfig").read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o644
        assert stat.S_IMODE((data / "kubeconfig").stat().st_mode) == 0o644
        out = subprocess.run([sys.executable, "-m", "podling", "kubectl", "get", "ns",
                              "default", "-o", "name"], capture_output=True, text=True,
                             timeout=60, env={**env, "KUBECONFIG": str(copy),
                                              "HOME": str(tmp_path)})
        assert (out.returncode, out.stdout) == (0, "namespace/default\n"), out.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
