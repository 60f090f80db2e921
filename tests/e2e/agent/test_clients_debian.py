"""Debian 12's kubectl companions, unmodified, against podling: ``kubectx``/``kubens``
(package kubectx), ``kubecolor`` and ``kubetail``. Each drives the real kubectl, with a copy
of the kubeconfig podling writes and a HOME of its own (their state files live there).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest
import yaml

from clients_util import SCRIPT
from manifests import busybox, pod
from streams_util import Pods, PtyProcess, tag

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TICKER = "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done"


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (make install-test installs it)")


@pytest.fixture
def env(tmp_path, cluster):
    """HOME and KUBECONFIG of the tools' own: a copy of podling's kubeconfig."""
    home = tmp_path / "home"
    home.mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(cluster.server.kubeconfig, kubeconfig)
    return dict(os.environ, HOME=str(home), KUBECONFIG=str(kubeconfig), TERM="dumb")


def run(env: dict, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a tool in a session of its own: kubetail ends with `kill 0` (its whole group)."""
    return subprocess.run(list(argv), capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True)


def current(env: dict) -> tuple[str, str]:
    """(current context, its namespace) as the kubeconfig file now says."""
    with open(env["KUBECONFIG"]) as f:
        config = yaml.safe_load(f)
    name = config["current-context"]
    context = [c for c in config["contexts"] if c["name"] == name][0]["context"]
    return name, context.get("namespace", "")


# -- kubectx / kubens -------------------------------------------------------------------------


def test_kubectx_lists_and_switches_contexts(env):
    need("kubectx")
    with open(env["KUBECONFIG"]) as f:
        config = yaml.safe_load(f)
    first = config["current-context"]
    ops = dict(config["contexts"][0], name="ops")
    ops["context"] = dict(ops["context"], namespace="kube-system")
    config["contexts"].append(ops)
    with open(env["KUBECONFIG"], "w") as f:
        yaml.safe_dump(config, f)

    listed = run(env, "kubectx")
    assert listed.returncode == 0 and listed.stdout.split() == sorted([first, "ops"]), listed
    switched = run(env, "kubectx", "ops")
    assert switched.returncode == 0, switched.stderr
    assert 'Switched to context "ops".' in switched.stdout
    assert current(env) == ("ops", "kube-system")
    assert run(env, "kubectx", "-c").stdout.strip() == "ops"
    pods = run(env, "kubectl", "get", "pods")  # the switched context reaches the server
    assert pods.returncode == 0 and "No resources found in kube-system namespace." in \
        pods.stderr, pods
    back = run(env, "kubectx", "-")
    assert back.returncode == 0 and f'Switched to context "{first}".' in back.stdout, back
    assert current(env)[0] == first
    missing = run(env, "kubectx", "nowhere")
    assert missing.returncode == 1 and 'no context exists with the name: "nowhere"' in \
        missing.stderr, missing


def test_kubens_lists_and_switches_namespaces(env, cluster):
    need("kubens")
    namespace = f"team-{tag()}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        listed = run(env, "kubens")
        assert listed.returncode == 0, listed.stderr
        assert {"default", "kube-system", namespace} <= set(listed.stdout.split())
        switched = run(env, "kubens", namespace)
        assert switched.returncode == 0, switched.stderr
        assert f'Active namespace is "{namespace}".' in switched.stderr
        assert current(env)[1] == namespace
        assert run(env, "kubens", "-c").stdout.strip() == namespace
        pods = run(env, "kubectl", "get", "pods")
        assert f"No resources found in {namespace} namespace." in pods.stderr, pods
        missing = run(env, "kubens", "nowhere")
        assert missing.returncode == 1, missing
        assert 'no namespace exists with name "nowhere"' in missing.stderr, missing
        assert current(env)[1] == namespace
        back = run(env, "kubens", "-")
        assert back.returncode == 0 and current(env)[1] == "default", back
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# -- kubecolor and kubetail: two ticking pods and one that must not match ----------------------


@pytest.fixture(scope="module")
def tickers(cluster):
    t = tag()
    names = [f"tail-{t}-a", f"tail-{t}-b", f"other-{t}"]
    p = Pods(cluster, [pod(n, cluster.node, [busybox("main", TICKER)]) for n in names[:2]]
             + [pod(names[2], cluster.node, [busybox("main", SCRIPT)])])
    for name in names:
        p.wait_running(name)
    p.names = names
    p.prefix = f"tail-{t}"
    return p


def test_kubecolor_colours_get_and_describe(env, tickers):
    need("kubecolor")
    name = tickers.names[0]
    coloured = run(env, "kubecolor", "--force-colors", "get", "pods", "-o", "wide")
    assert coloured.returncode == 0, coloured.stderr
    assert ANSI.search(coloured.stdout), coloured.stdout
    plain = ANSI.sub("", coloured.stdout)
    assert re.search(r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s", plain, re.M)
    assert re.search(rf"^{name}\s+1/1\s+Running\s+0\s", plain, re.M), plain

    described = run(env, "kubecolor", "--force-colors", "describe", "pod", name)
    assert described.returncode == 0 and ANSI.search(described.stdout), described
    text = ANSI.sub("", described.stdout)
    assert re.search(rf"^Name:\s+{name}$", text, re.M) and \
        re.search(r"^Status:\s+Running$", text, re.M), text

    piped = run(env, "kubecolor", "get", "pod", name)  # not a terminal: kubectl's own output
    assert piped.returncode == 0 and not ANSI.search(piped.stdout), piped
    assert piped.stdout.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS",
                                                    "AGE"]
    missing = run(env, "kubecolor", "get", "pod", "nowhere")
    assert missing.returncode == 1 and 'pods "nowhere" not found' in missing.stderr, missing


# kubetail 1.6.5 joins its per-pod commands with bash's ${a[@]/#/ & }: bash 5.2 (Debian 12)
# reads that "&" as "the matched text" (shopt patsub_replacement, on by default), so tailing
# more than one pod fails with "syntax error near unexpected token `kubectl'" against any
# cluster (johanhaleby/kubetail#133). The script runs unmodified with that option off.
KUBETAIL_SEVERAL = ["bash", "+O", "patsub_replacement", "/usr/bin/kubetail"]


def test_kubetail_reads_the_matching_pods_logs(env, tickers):
    need("kubetail")
    a, b, _other = tickers.names
    done = run(env, *KUBETAIL_SEVERAL, tickers.prefix, "--follow", "false", "--since", "5m",
               "--colored-output", "false")
    # it always ends with `kill 0`, its own SIGTERM included
    assert done.returncode in (0, -signal.SIGTERM) and not done.stderr, done
    lines = [line.rstrip() for line in done.stdout.splitlines()]  # it ends each with " "
    assert lines[:3] == ["Will tail 2 logs...", a, b], lines[:5]
    for name in (a, b):
        assert f"[{name}] tick-1" in lines, lines
    assert not [line for line in lines if "other-" in line or "hello" in line]


def test_kubetail_follows_new_lines(env, tickers):
    """In a terminal, as people run it: GNU tail, its last stage, block-buffers into a pipe."""
    need("kubetail")
    name = tickers.names[0]
    terminal = PtyProcess(["kubetail", name, "--colored-output", "false"], env)
    try:
        terminal.expect(rb"Will tail 1 logs\.\.\.\r?\n" + re.escape(name).encode())
        newest = _last_tick(env, name)
        while int(terminal.expect(rf"\[{name}\] tick-(\d+)".encode()).group(1)) <= newest:
            pass  # a tick written after kubetail started arrives: it follows
    finally:
        try:
            os.killpg(terminal.process.pid, signal.SIGTERM)  # kubetail and its kubectl
        except ProcessLookupError:
            pass
        terminal.close()


def _last_tick(env: dict, name: str) -> int:
    out = run(env, "kubectl", "logs", name, "--tail", "1").stdout
    return int(out.strip().rsplit("-", 1)[1])
