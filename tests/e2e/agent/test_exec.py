"""``kubectl exec`` through the API server to the node: the seed scenario (ps in a shared and
in private PID namespaces), exit codes, stdin, 100 MiB of output, stdout/stderr separation,
an interactive ``-it`` shell under a real pseudo-terminal, and the errors kubectl users see.

Every transport-dependent test runs twice: WebSocket v5 (kubectl 1.32's default) and SPDY/3.1
(``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``). All pods are applied at once by the module
fixture so they start in parallel.
"""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from streams_util import (SLEEPER, SPDY_EXEC, WEBSOCKET, Pods, busybox, kubectl, kubectl_hash,
                          kubectl_pty, pod, tag)

TRANSPORTS = [pytest.param(WEBSOCKET, id="websocket"), pytest.param(SPDY_EXEC, id="spdy")]
BIG = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    node = cluster.node
    names = {"shared": f"shared-pid-{t}", "private": f"private-pid-{t}",
             "worker": f"exec-worker-{t}", "done": f"exec-done-{t}"}
    manifests = [
        # examples/seed/shared-pid.yaml
        pod(names["shared"], node, [
            {"name": "nginx", "image": "nginx"},
            {"name": "shell", "image": "busybox", "stdin": True, "tty": True},
        ], shareProcessNamespace=True),
        pod(names["private"], node, [
            busybox("one", "trap 'exit 0' TERM; sleep 3602 & wait"),
            busybox("two", "trap 'exit 0' TERM; sleep 3603 & wait"),
        ]),
        pod(names["worker"], node, [busybox("main", SLEEPER)]),
        pod(names["done"], node, [busybox("main", "true")], restartPolicy="Never"),
    ]
    p = Pods(cluster, manifests)
    p.names = names
    p.tag = t
    return p


def ps_aux(text: str) -> dict[int, str]:
    """PID -> COMMAND of busybox ``ps aux`` output (``PID USER COMMAND``)."""
    lines = text.splitlines()
    assert lines and lines[0].split()[0] == "PID" and "COMMAND" in lines[0], text
    column = lines[0].index("COMMAND")
    rows = {}
    for line in lines[1:]:
        fields = line.split()
        if fields and fields[0].isdigit():
            rows[int(fields[0])] = line[column:].strip() or fields[-1]
    return rows


def run(pods, *args, extra_env=None, input=None, timeout=60):
    return kubectl(pods.cluster, *args, extra_env=extra_env, input=input, timeout=timeout)


# -- the seed scenario ----------------------------------------------------------------------


def test_shared_pid_namespace_ps_shows_pause_as_pid_1_and_nginx(pods):
    name = pods.names["shared"]
    pods.wait_running(name)
    out = run(pods, "exec", name, "-c", "shell", "--", "ps", "aux")
    assert out.returncode == 0, out.stderr.decode()
    rows = ps_aux(out.stdout.decode())
    # Kubernetes shows /pause; ours is catatonit bind-mounted as /pause, run as `/pause -P`.
    assert rows.get(1) == "/pause -P", rows
    assert any(cmd.startswith("nginx: master process") for cmd in rows.values()), rows
    assert any(cmd.startswith("nginx: worker process") for cmd in rows.values()), rows
    assert any(cmd == "ps aux" for cmd in rows.values()), rows
    # the shell container's own main process (busybox sh, not PID 1)
    assert any(cmd.split()[0] in ("sh", "/bin/sh") for pid, cmd in rows.items() if pid != 1), rows


def test_private_pid_namespaces_each_container_is_pid_1(pods):
    name = pods.names["private"]
    pods.wait_running(name)
    for container, own, theirs in (("one", "sleep 3602", "sleep 3603"),
                                   ("two", "sleep 3603", "sleep 3602")):
        out = run(pods, "exec", name, "-c", container, "--", "ps", "aux")
        assert out.returncode == 0, out.stderr.decode()
        rows = ps_aux(out.stdout.decode())
        assert rows.get(1, "").startswith("sh -c") and own in rows[1], (container, rows)
        assert any(cmd == own for cmd in rows.values()), (container, rows)
        assert not any(theirs in cmd for cmd in rows.values()), (container, rows)
        assert not any(cmd.startswith("/pause") for cmd in rows.values()), (container, rows)
        assert not any("nginx" in cmd for cmd in rows.values()), (container, rows)


# -- exit codes, stdin, output --------------------------------------------------------------


@pytest.mark.parametrize("env", TRANSPORTS)
def test_exit_codes(pods, env):
    name = pods.names["worker"]
    pods.wait_running(name)
    ok = run(pods, "exec", name, "--", "true", extra_env=env)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"", b""), ok

    three = run(pods, "exec", name, "--", "sh", "-c", "exit 3", extra_env=env)
    assert three.returncode == 3, three
    assert b"command terminated with exit code 3" in three.stderr, three.stderr

    missing = f"no-such-binary-{pods.tag}"
    gone = run(pods, "exec", name, "--", missing, extra_env=env)
    assert gone.returncode == 127, gone
    assert missing.encode() in gone.stderr and b"not found" in gone.stderr, gone.stderr


@pytest.mark.parametrize("env", TRANSPORTS)
def test_stdin_piped(pods, env):
    name = pods.names["worker"]
    pods.wait_running(name)
    out = run(pods, "exec", "-i", name, "--", "cat", input=b"hi\n", extra_env=env)
    assert (out.returncode, out.stdout) == (0, b"hi\n"), out

    # 4 MiB of every byte value in, its checksum out: stdin is binary-safe and reaches EOF
    data = os.urandom(4 << 20)
    summed = run(pods, "exec", "-i", name, "--", "md5sum", input=data, extra_env=env)
    assert summed.returncode == 0, summed
    assert summed.stdout.split()[0].decode() == hashlib.md5(data).hexdigest(), summed


@pytest.mark.parametrize("env", TRANSPORTS)
def test_stdout_and_stderr_separated_without_tty(pods, env):
    name = pods.names["worker"]
    pods.wait_running(name)
    out = run(pods, "exec", name, "--", "sh", "-c",
              "echo out-$((1+1)); echo err-$((2+2)) >&2; echo out-end", extra_env=env)
    assert out.returncode == 0, out
    assert out.stdout == b"out-2\nout-end\n", out
    assert out.stderr == b"err-4\n", out


@pytest.mark.parametrize("env", TRANSPORTS)
def test_100_mib_of_output_intact(pods, env):
    """The bytes kubectl prints are the bytes the container wrote (checksum computed in the
    container on stderr, of kubectl's stdout here)."""
    name = pods.names["worker"]
    pods.wait_running(name)
    script = (f"f=/tmp/big-$$; head -c {BIG} /dev/urandom | tee $f; "
              "md5sum $f >&2; rm -f $f")
    digest, count, stderr, rc = kubectl_hash(pods.cluster, "exec", name, "--", "sh", "-c",
                                             script, extra_env=env, timeout=240)
    assert rc == 0, stderr
    assert count == BIG, (count, stderr)
    inside = stderr.split()[0].decode()
    assert digest == inside, (digest, stderr)


def test_websocket_is_used_without_fallback(pods):
    """kubectl 1.32 tries WebSocket v5 first and silently falls back to SPDY; at -v=4 a
    fallback is logged ("RemoteCommand fallback")."""
    name = pods.names["worker"]
    pods.wait_running(name)
    out = run(pods, "exec", "-v=4", name, "--", "echo", "via-websocket")
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert out.stdout == b"via-websocket\n"
    assert b"fallback" not in out.stderr.lower(), out.stderr.decode()[-3000:]


@pytest.mark.parametrize("env", TRANSPORTS)
def test_interactive_tty_shell(pods, env):
    """``kubectl exec -it POD -- sh`` under a pseudo-terminal: typed input runs, the terminal
    size reaches the container, and ``exit 5`` is kubectl's exit code."""
    name = pods.names["worker"]
    pods.wait_running(name)
    with kubectl_pty(pods.cluster, "exec", "-it", name, "--", "sh", extra_env=env,
                     rows=27, cols=101) as term:
        term.write(b"echo tty-$((6*7))-ok\r")
        term.expect(rb"tty-42-ok")
        term.write(b"echo S-$(stty size | tr ' ' x)-E\r")
        term.expect(rb"S-27x101-E")
        term.write(b"[ -t 0 ] && echo is-a-$((1))-tty\r")
        term.expect(rb"is-a-1-tty")
        term.write(b"exit 5\r")
        assert term.wait(20) == 5, term.seen[-2000:]


# -- errors ---------------------------------------------------------------------------------


def test_exec_into_missing_pod(pods):
    missing = f"no-such-pod-{pods.tag}"
    out = run(pods, "exec", missing, "--", "true")
    assert out.returncode == 1, out
    assert f'Error from server (NotFound): pods "{missing}" not found' in out.stderr.decode()


@pytest.mark.parametrize("env", TRANSPORTS)
def test_exec_into_missing_container(pods, env):
    name = pods.names["worker"]
    pods.wait_running(name)
    out = run(pods, "exec", name, "-c", "nope", "--", "true", extra_env=env)
    assert out.returncode != 0, out
    assert f"container nope is not valid for pod {name}" in out.stderr.decode(), out.stderr


def test_exec_into_completed_pod(pods):
    name = pods.names["done"]
    pods.wait_phase(name, "Succeeded")
    out = run(pods, "exec", name, "--", "true")
    assert out.returncode == 1, out
    assert ("cannot exec into a container in a completed pod; current phase is Succeeded"
            in out.stderr.decode()), out.stderr


def test_stderr_message_format_of_a_failed_command(pods):
    """`command terminated with exit code N` is the last line kubectl prints, once."""
    name = pods.names["worker"]
    pods.wait_running(name)
    out = run(pods, "exec", name, "--", "sh", "-c", "echo partial; exit 42")
    assert out.returncode == 42, out
    assert out.stdout == b"partial\n"
    lines = [line for line in out.stderr.decode().splitlines() if line.strip()]
    assert lines and re.fullmatch(r"command terminated with exit code 42", lines[-1]), lines
