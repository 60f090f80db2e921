"""Smoke test of bench/probes_bench.py: its quick variant (10 pods probed twice a second,
15 s windows) runs to the end on a throw-away cluster, prints its table with a figure for
each variant and leaves nothing behind (the benchmark purges its cluster and fails if
something is left). No timing is asserted, nor the restarts a loaded machine may cause."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark needs root")]


def test_probes_bench_quick_runs() -> None:
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "probes_bench.py"), "--quick",
         "--variants", "net,exec", "--no-floor", "--no-save"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "server (API + agent), % of a core" in out
    server = next(line for line in out.splitlines() if line.startswith("server (API"))
    assert len([float(x) for x in server.split()[-2:]]) == 2, out
    assert "agent (server process) with 10 pods" in out
