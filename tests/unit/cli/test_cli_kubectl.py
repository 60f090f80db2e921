"""`podling kubectl`: exec'd before the engine is imported, with KUBECONFIG chosen as
documented (--data-dir > $KUBECONFIG > $PODLING_DATA_DIR > /var/lib/podling)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from podling.cli.kubectl import kubeconfig_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
# what must not be loaded before kubectl runs: the engine and its heavy dependencies
HEAVY = re.compile(r"^(podling\.(apiserver|agent|runtime|images|network|storage|client|"
                   r"controllers|scheduler|api)|aiohttp|cryptography|yaml|rich|argparse|"
                   r"asyncio|ssl)(\.|$)")


def test_kubeconfig_precedence():
    env = {"KUBECONFIG": "/u/config", "PODLING_DATA_DIR": "/p"}
    assert kubeconfig_for(["--data-dir", "/d", "get", "pods"], env) == (
        "/d/kubeconfig", ["get", "pods"])
    assert kubeconfig_for(["--data-dir=/d", "get"], env) == ("/d/kubeconfig", ["get"])
    assert kubeconfig_for(["get"], env) == ("/u/config", ["get"])
    assert kubeconfig_for(["get"], {"PODLING_DATA_DIR": "/p"}) == ("/p/kubeconfig", ["get"])
    missing = {"PODLING_CONFIG": "/nonexistent/config.yaml"}
    assert kubeconfig_for(["get"], missing) == ("/var/lib/podling/kubeconfig", ["get"])


@pytest.mark.parametrize("line", ["data-dir: /srv/p", "data-dir: '/srv/p'  # here",
                                  'data-dir: "/srv/p"', "data-dir:   /srv/p   # comment"])
def test_kubeconfig_from_the_config_files_data_dir(tmp_path, line):
    config = tmp_path / "config.yaml"
    config.write_text(f"port: 7443\n{line}\nnode-label: [a=b]\n")
    env = {"PODLING_CONFIG": str(config)}
    assert kubeconfig_for(["get"], env) == ("/srv/p/kubeconfig", ["get"])
    assert kubeconfig_for(["get"], dict(env, PODLING_DATA_DIR="/e"))[0] == "/e/kubeconfig"


@pytest.fixture
def fake_kubectl(tmp_path):
    """A kubectl on PATH that prints its KUBECONFIG and arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text('#!/bin/sh\necho "KUBECONFIG=$KUBECONFIG"\necho "ARGS=$*"\n')
    script.chmod(0o755)
    return str(bin_dir)


def run_podling(args, env, *python_flags):
    return subprocess.run([sys.executable, *python_flags, "-m", "podling", *args],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": env.pop("PATH"), "PYTHONPATH": REPO,
                               "PODLING_CONFIG": "/nonexistent/config.yaml", **env})


def test_user_kubeconfig_is_honoured_and_data_dir_flag_wins(fake_kubectl, tmp_path):
    env = {"PATH": fake_kubectl, "KUBECONFIG": "/home/u/.kube/config"}
    out = run_podling(["kubectl", "get", "pods", "-A"], dict(env))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["KUBECONFIG=/home/u/.kube/config", "ARGS=get pods -A"]
    out = run_podling(["kubectl", "--data-dir", str(tmp_path), "get", "nodes"], dict(env))
    assert out.stdout.splitlines() == [f"KUBECONFIG={tmp_path}/kubeconfig", "ARGS=get nodes"]
    assert "does not exist" in out.stderr  # a note, not a failure: kubectl still ran


def test_kubectl_is_execed_before_any_engine_module_is_imported(fake_kubectl):
    out = run_podling(["kubectl", "version", "--client"], {"PATH": fake_kubectl},
                      "-X", "importtime")
    assert out.returncode == 0 and "ARGS=version --client" in out.stdout
    imported = [line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "podling.cli.kubectl" in imported  # the measure works
    heavy = [name for name in imported if HEAVY.match(name)]
    assert heavy == []
    assert len([n for n in imported if n.startswith("podling")]) <= 5


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_help_needs_no_server(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    out = run_podling(["kubectl", "--data-dir", str(tmp_path / "none"), "--help"], env)
    assert out.returncode == 0, out.stderr
    assert "kubectl controls the Kubernetes cluster manager" in out.stdout
    assert out.stderr == ""


def test_missing_kubectl_is_one_line(tmp_path):
    out = run_podling(["kubectl", "get", "pods"], {"PATH": str(tmp_path)})
    assert out.returncode == 127
    assert out.stderr == "podling: kubectl is not installed (apt-get install kubectl)\n"
