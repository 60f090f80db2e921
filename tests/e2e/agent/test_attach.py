"""``kubectl attach`` driven through a real pseudo-terminal.

kubectl puts its terminal in raw mode, so the test types ``\\r`` like a user and reads the
container's terminal output back. Detaching is done by killing kubectl (Ctrl-D would end the
container's shell): the container must keep running, and a second attach must reach the very
same shell (a variable set in the first session is still there).
"""

from __future__ import annotations

import signal
import time

import pytest

from streams_util import Pods, busybox, kubectl_pty, pod, tag

# the shell prints the terminal size between markers; the typed text never matches itself
STTY = b"echo S-$(stty size | tr ' ' x)-E\r"
STTY_OUT = rb"S-(\d+)x(\d+)-E"


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    node = cluster.node
    names = {"tty": f"attach-tty-{t}", "plain": f"attach-plain-{t}"}
    manifests = [
        pod(names["tty"], node, [
            {"name": "shell", "image": "busybox", "command": ["sh"], "stdin": True,
             "tty": True},
        ]),
        pod(names["plain"], node, [
            # stdin without a tty: echo every line; a closed stdin ends the loop visibly
            busybox("plain", 'while read line; do echo "got:$line"; done; echo stdin-closed; '
                             "exec sleep 3600", stdin=True),
        ]),
    ]
    p = Pods(cluster, manifests)
    p.names = names
    p.tag = t
    return p


def wait_size(term, rows: int, cols: int, timeout: float = 20.0) -> None:
    """Ask the shell for its terminal size until it is rows x cols (resizes travel
    asynchronously)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        term.write(STTY)
        m = term.expect(STTY_OUT, timeout=max(1.0, deadline - time.monotonic()))
        last = (int(m.group(1)), int(m.group(2)))
        if last == (rows, cols):
            return
        time.sleep(0.2)
    raise AssertionError(f"terminal size is {last}, not {(rows, cols)}")


def assert_still_running(pods, name: str, container: str) -> None:
    p = pods.wait_running(name, timeout=10)
    status = [s for s in p["status"]["containerStatuses"] if s["name"] == container][0]
    assert status["restartCount"] == 0 and "running" in status["state"], status


def test_attach_tty_echo_resize_detach(pods):
    name = pods.names["tty"]
    t = pods.tag
    pods.wait_running(name)
    with kubectl_pty(pods.cluster, "attach", "-it", name, "-c", "shell",
                     rows=25, cols=90) as term:
        term.write(f"M=mark-{t}; echo hello-$((40+2))-{t}\r".encode())
        term.expect(f"hello-42-{t}".encode())
        wait_size(term, 25, 90)
        term.resize(41, 133)
        wait_size(term, 41, 133)
        term.resize(20, 70)
        wait_size(term, 20, 70)
        # detach: kill kubectl, as a lost client would
        term.close(signal.SIGKILL)

    assert_still_running(pods, name, "shell")
    # the same shell answers a second attach
    with kubectl_pty(pods.cluster, "attach", "-it", name, "-c", "shell",
                     rows=30, cols=100) as term:
        term.write(b"echo again-$M-$((1+1))\r")
        term.expect(f"again-mark-{t}-2".encode())
        wait_size(term, 30, 100)
        term.close(signal.SIGTERM)
    assert_still_running(pods, name, "shell")


def test_attach_prints_session_hint(pods):
    """kubectl tells the user how to get a prompt; the attach itself must have worked for
    the shell to answer."""
    name = pods.names["tty"]
    pods.wait_running(name)
    with kubectl_pty(pods.cluster, "attach", "-it", name, "-c", "shell") as term:
        term.expect(rb"If you don't see a command prompt, try pressing enter\.")
        term.write(b"echo hint-$((3*3))\r")
        term.expect(rb"hint-9")
    assert_still_running(pods, name, "shell")


def test_attach_tty_to_a_container_without_tty(pods):
    name = pods.names["plain"]
    t = pods.tag
    pods.wait_running(name)
    with kubectl_pty(pods.cluster, "attach", "-it", name, "-c", "plain") as term:
        term.expect(b"Unable to use a TTY - container plain did not allocate one")
        term.write(f"ping-{t}\n".encode())
        term.expect(f"got:ping-{t}".encode())
        term.close(signal.SIGKILL)
    assert_still_running(pods, name, "plain")
    # stdin stays open across attaches (stdinOnce is false): a second attach is heard
    with kubectl_pty(pods.cluster, "attach", "-i", name, "-c", "plain") as term:
        term.write(f"pong-{t}\n".encode())
        term.expect(f"got:pong-{t}".encode())
        term.close(signal.SIGKILL)
    assert_still_running(pods, name, "plain")
    logs = pods.cluster.kubectl("logs", name, "-c", "plain").stdout
    assert f"got:ping-{t}" in logs and f"got:pong-{t}" in logs, logs
    assert "stdin-closed" not in logs, logs
