"""`kubectl top pod` / `kubectl top node` with the real kubectl against a real node: the
metrics.k8s.io API served from the node's /stats/summary (container cgroups, /proc)."""

from __future__ import annotations

import re
import secrets

import pytest

TAG = secrets.token_hex(3)
BUSY, IDLE = f"top-busy-{TAG}", f"top-idle-{TAG}"


def manifest(name: str, role: str, containers: str, node: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: top-{TAG}, role: {role}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
{containers}"""


# A bare busy loop's working set is ~400Ki, which kubectl prints as 0Mi (it floors to Mi):
# the shell first holds ~4.5 MB of text so that the MEMORY column shows something.
SPIN = """\
  - name: spin
    image: busybox
    command: [sh, -c, 'x=$(seq 1 600000); while :; do :; done']
"""
REST = """\
  - name: rest
    image: busybox
    command: [sleep, '3600']
"""


def millicores(text: str) -> float:
    """kubectl's CPU column: ``998m`` (or whole cores ``1``)."""
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def mebibytes(text: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Ki|Gi)?", text)
    assert match, text
    return int(match.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2**20}[
        match.group(2)]


def rows(output: str) -> list[list[str]]:
    """The table kubectl printed, header first."""
    return [line.split() for line in output.strip().splitlines()]


@pytest.fixture(scope="module")
def pods(cluster):
    cluster.apply(manifest(BUSY, "busy", SPIN + REST, cluster.node))
    cluster.apply(manifest(IDLE, "idle", REST, cluster.node))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{BUSY}", f"pod/{IDLE}",
                    "--timeout=90s", timeout=120)
    yield
    cluster.kubectl("delete", "pod", BUSY, IDLE, "--wait=true", "--timeout=60s",
                    check=False, timeout=90)


def top(cluster, *args: str) -> list[list[str]]:
    return rows(cluster.kubectl("top", *args).stdout)


def busy_row(cluster, wait, *args: str, name: str = BUSY) -> list[str]:
    """The row of ``name`` once its CPU is visibly non-zero (the busy loop may still be
    starting when the first sample is taken)."""
    def ready():
        found = [r for r in top(cluster, *args) if r[0] == name or r[:1] == [name]]
        return found[0] if found and millicores(found[0][-2]) >= 100 else None
    return wait(ready, timeout=60, interval=1, message=f"kubectl top {args}: no CPU for {name}")


def test_top_pod_shows_cpu_and_memory(cluster, pods, wait) -> None:
    header, *body = top(cluster, "pod")
    assert header == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    row = busy_row(cluster, wait, "pod")
    assert millicores(row[1]) >= 100 and row[1].endswith("m")
    assert mebibytes(row[2]) > 0, row
    idle = wait(lambda: [r for r in top(cluster, "pod", IDLE)[1:] if r[0] == IDLE],
                timeout=30, interval=1)[0]
    assert millicores(idle[1]) < millicores(row[1])


def test_top_pod_containers(cluster, pods, wait) -> None:
    busy_row(cluster, wait, "pod", BUSY)
    header, *body = top(cluster, "pod", BUSY, "--containers")
    assert header == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    by_container = {r[1]: r for r in body}
    assert set(by_container) == {"spin", "rest"}
    assert millicores(by_container["spin"][2]) > millicores(by_container["rest"][2])
    assert millicores(by_container["spin"][2]) >= 100


def test_top_pod_label_selector_and_all_namespaces(cluster, pods, wait) -> None:
    busy_row(cluster, wait, "pod")
    names = [r[0] for r in top(cluster, "pod", "-l", f"app=top-{TAG},role=busy")[1:]]
    assert names == [BUSY]
    names = [r[0] for r in top(cluster, "pod", "-l", f"app=top-{TAG}")[1:]]
    assert sorted(names) == sorted([BUSY, IDLE])
    header, *body = top(cluster, "pod", "-A", "-l", f"app=top-{TAG}")
    assert header[:2] == ["NAMESPACE", "NAME"]
    assert {(r[0], r[1]) for r in body} == {("default", BUSY), ("default", IDLE)}


def test_top_node(cluster, pods, wait) -> None:
    def node_row():
        header, *body = top(cluster, "node")
        assert header == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
        found = [r for r in body if r[0] == cluster.node]
        return found[0] if found and millicores(found[0][1]) > 0 else None
    row = wait(node_row, timeout=60, interval=1, message="kubectl top node: no CPU")
    assert mebibytes(row[3]) > 0 and row[2].endswith("%") and row[4].endswith("%")
    assert top(cluster, "node", cluster.node)[1][0] == cluster.node


def test_top_pod_missing(cluster, pods) -> None:
    result = cluster.kubectl("top", "pod", f"missing-{TAG}", check=False)
    assert result.returncode != 0
    assert (f'Error from server (NotFound): podmetrics.metrics.k8s.io "missing-{TAG}" '
            "not found") in result.stderr
