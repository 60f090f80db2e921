"""`podling demo`: the whole tour on a throw-away three-node cluster passes every check and
leaves nothing behind — offline: only the first node gets the images, the others pull from
it, and no node is configured with any registry; Ctrl-C in the middle tears the cluster down
too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from podling_e2e import REPO

pytestmark = pytest.mark.e2e


def demo_argv(demo_registry: str, *extra: str) -> list[str]:
    """The demo with the archives the registry fixture built (nothing else of it is used:
    the demo's nodes know no registry but each other)."""
    images = os.path.join(os.path.dirname(demo_registry), "demo")
    return [sys.executable, "-m", "podling", "demo", "--images-dir", images, *extra]


def host_state() -> dict[str, set[str]]:
    """What a demo cluster makes on the host: bridges, run dirs (with the runc containers and
    runtime state in them), mounts, iptables rules tagged with its bridges, processes — what
    the e2e suite's node_leftovers checks, for nodes whose names the test does not know."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f if "podling-demo-" in line}
    procs = subprocess.run(["pgrep", "-af", "podling-demo-"], capture_output=True, text=True)
    return {"bridges": set(re.findall(r"^\d+: (pdemo\w+)[:@]", links, re.M)),
            "run dirs": {d for d in os.listdir("/run") if d.startswith("podling-demo-")},
            "mounts": mounts,
            "iptables": {r for r in rules.splitlines() if "pdemo" in r},
            "processes": {p for p in procs.stdout.splitlines() if "pgrep" not in p}}


def base_dir(output: str) -> str:
    found = re.search(r"a throw-away cluster in (\S+)", output)
    assert found, output
    return found.group(1)


def test_demo_tours_every_feature_and_leaves_nothing(demo_registry):
    before = host_state()
    done = subprocess.run(demo_argv(demo_registry), cwd=REPO, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr
    assert "every check passed" in done.stdout
    assert "✗" not in done.stdout
    for title in ("shareProcessNamespace", "hostAliases", "nodeSelector",
                  "Images come from the first node", "nodeName", "hostNetwork",
                  "postStart and preStop", "imagePullPolicy", "kubectl exec and attach",
                  "Events and kubectl describe"):
        assert title in done.stdout, title
    assert "FailedScheduling" in done.stdout
    assert not os.path.exists(base_dir(done.stdout))
    assert host_state() == before


def test_ctrl_c_tears_the_cluster_down(demo_registry):
    before = host_state()
    process = subprocess.Popen(demo_argv(demo_registry), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        seen.append(line)
        if "2. The seed's pods" in line or time.monotonic() > deadline:
            break
    assert any("2. The seed's pods" in line for line in seen), "".join(seen)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    output = "".join(seen) + rest
    assert process.returncode == 130, output
    assert "interrupted; removing the cluster" in output
    assert not os.path.exists(base_dir(output))
    assert host_state() == before
