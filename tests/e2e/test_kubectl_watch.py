"""The real kubectl: `get -w`, `delete` (plain, --wait, graceful, --force) and `wait --for=delete`.

One server per module; each test works in its own namespace. Long-running kubectl processes
are read line by line with deadlines (kubectl_util.LineReader), never slept on.
"""

from __future__ import annotations

import re

import pytest

from kubectl_util import LineReader, is_gone, jsonpath, new_namespace, pod_manifest, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(shared_server):
    return new_namespace(shared_server, "kw")


def _create(server, ns, name, **kwargs):
    server.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest(name, **kwargs))


def _first(line: str) -> str:
    return line.split()[0] if line.split() else ""


def test_get_pods_watch_prints_new_and_changed_pods(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "w-old")
    reader = LineReader(srv.kubectl_popen("get", "pods", "-n", ns, "-w"))
    try:
        header = reader.wait_for(lambda l: _first(l) == "NAME", what="the header")
        assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        row = reader.wait_for(lambda l: _first(l) == "w-old", what="the existing row")
        assert row.split()[1:4] == ["0/1", "Pending", "0"]

        _create(srv, ns, "w-new")
        row = reader.wait_for(lambda l: _first(l) == "w-new", what="the created pod")
        assert row.split()[1:3] == ["0/1", "Pending"]

        srv.kubectl("label", "-n", ns, "pod", "w-old", "changed=yes")
        reader.wait_for(lambda l: _first(l) == "w-old", what="the relabelled pod")

        srv.kubectl("delete", "-n", ns, "pod", "w-new", "--wait=false")
        reader.wait_for(lambda l: _first(l) == "w-new", what="the deleted pod")
        assert reader.process.poll() is None, "get -w must keep watching"
    finally:
        reader.stop()


def test_get_pods_watch_all_namespaces(shared_server, ns):
    srv = shared_server
    reader = LineReader(srv.kubectl_popen("get", "pods", "-A", "-w"))
    try:
        reader.wait_for(lambda l: l.split()[:2] == ["NAMESPACE", "NAME"], what="the header")
        _create(srv, ns, "w-any")
        row = reader.wait_for(lambda l: l.split()[:2] == [ns, "w-any"], what="the new pod")
        assert "Pending" in row.split()
    finally:
        reader.stop()


def test_get_pod_watch_json_prints_modified_object(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "w-json", labels={"app": "a"})
    reader = LineReader(srv.kubectl_popen("get", "pod", "w-json", "-n", ns, "-w", "-o", "json"))
    try:
        [initial] = reader.read_json_objects(1)
        assert initial["kind"] == "Pod" and initial["metadata"]["name"] == "w-json"
        assert initial["metadata"]["labels"] == {"app": "a"}

        srv.kubectl("label", "-n", ns, "pod", "w-json", "stage=two")
        [modified] = reader.read_json_objects(1)
        assert modified["metadata"]["labels"] == {"app": "a", "stage": "two"}
        assert int(modified["metadata"]["resourceVersion"]) > \
            int(initial["metadata"]["resourceVersion"])
    finally:
        reader.stop()


def test_get_pod_watch_output_watch_events(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "w-events")
    reader = LineReader(srv.kubectl_popen("get", "pod", "w-events", "-n", ns, "-w", "-o", "json",
                                          "--output-watch-events"))
    try:
        [first] = reader.read_json_objects(1)
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "w-events"
        srv.kubectl("annotate", "-n", ns, "pod", "w-events", "seen=1")
        [event] = reader.read_json_objects(1)
        assert event["type"] == "MODIFIED", event["type"]
        assert event["object"]["metadata"]["annotations"]["seen"] == "1"
    finally:
        reader.stop()


def test_delete_unscheduled_pod_is_immediate(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "d-now")
    out = srv.kubectl("delete", "-n", ns, "pod", "d-now", "--wait=false").stdout
    assert out.strip() == 'pod "d-now" deleted'
    # No node ever ran it, so it is gone at once: no polling here.
    result = srv.kubectl("get", "-n", ns, "pod", "d-now", check=False)
    assert result.returncode != 0
    assert 'Error from server (NotFound): pods "d-now" not found' in result.stderr

    _create(srv, ns, "d-wait")
    out = srv.kubectl("delete", "-n", ns, "pod", "d-wait", "--wait", timeout=30).stdout
    assert out.strip() == 'pod "d-wait" deleted'
    assert is_gone(srv, "-n", ns, "pod", "d-wait")

    missing = srv.kubectl("delete", "-n", ns, "pod", "d-never", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_wait_for_delete_while_another_process_deletes(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "d-waited")
    waiter = srv.kubectl_popen("wait", "-n", ns, "--for=delete", "pod/d-waited",
                               "--timeout=20s", "-v=6")
    out, log = LineReader(waiter), LineReader(waiter, "stderr")
    try:
        # -v=6 logs each request once its answer arrives: delete only once the watch is open.
        log.wait_for(lambda l: "watch=true" in l and "d-waited" in l,
                     what="kubectl wait to open its watch")
        srv.kubectl("delete", "-n", ns, "pod", "d-waited", "--wait=false")
        line = out.wait_for(lambda l: "d-waited" in l, timeout=20, what="kubectl wait's result")
        assert line == "pod/d-waited condition met"
        assert waiter.wait(10) == 0
    finally:
        out.stop()
        log.stop()


def test_bound_pod_graceful_delete_then_force(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "d-bound", spec_extra={"nodeName": "node-that-never-answers"})
    out = srv.kubectl("delete", "-n", ns, "pod", "d-bound", "--wait=false").stdout
    assert out.strip() == 'pod "d-bound" deleted'

    # Bound to a node: only marked for deletion, the (absent) kubelet must finish it.
    meta = jsonpath(srv, "-n", ns, "pod", "d-bound",
                    path="{.metadata.deletionTimestamp} {.metadata.deletionGracePeriodSeconds}")
    stamp, grace = meta.split()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), meta
    assert grace == "30"
    row = srv.kubectl("get", "-n", ns, "pod", "d-bound").stdout.splitlines()[1].split()
    assert row[0] == "d-bound" and row[2] == "Terminating", row

    # A second plain delete does not make it go away either.
    srv.kubectl("delete", "-n", ns, "pod", "d-bound", "--wait=false")
    assert not is_gone(srv, "-n", ns, "pod", "d-bound")

    forced = srv.kubectl("delete", "-n", ns, "pod", "d-bound", "--grace-period=0", "--force")
    assert forced.stdout.strip() == 'pod "d-bound" force deleted'
    assert "Immediate deletion does not wait" in forced.stderr
    assert is_gone(srv, "-n", ns, "pod", "d-bound")


def test_delete_by_label_and_all(shared_server, ns):
    srv = shared_server
    for name, app in (("dl-a", "x"), ("dl-b", "x"), ("dl-c", "y")):
        _create(srv, ns, name, labels={"app": app})
    out = srv.kubectl("delete", "-n", ns, "pods", "-l", "app=x").stdout
    assert sorted(out.splitlines()) == ['pod "dl-a" deleted', 'pod "dl-b" deleted']
    assert srv.kubectl("get", "-n", ns, "pods", "-o", "name").stdout.split() == ["pod/dl-c"]
    srv.kubectl("delete", "-n", ns, "pods", "--all")
    wait_until(lambda: srv.kubectl("get", "-n", ns, "pods", "-o", "name").stdout == "",
               message="every pod to be deleted")
