"""Durability of the SQLite datastore and clean shutdown.

kill -9 in the middle of a stream of writes must lose no acknowledged write, and the
resourceVersion must never go backwards across a restart. SIGTERM must shut down promptly
even while a watch is open.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import threading
import time

import pytest

from podling_e2e import start_server
from test_watch import Watch, connect, call, ok, pod, unique

ACKS_BEFORE_KILL = 300
WRITERS = 4


@pytest.fixture
def servers(tmp_path):
    """Start servers on demand; every one is stopped at the end of the test."""
    started = []

    def start(*extra: str):
        srv = start_server(str(tmp_path / "data"), str(tmp_path / "home"), *extra)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.kill()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_kill_9_during_writes_loses_no_acknowledged_write(servers):
    first = servers()
    ns = unique("dur")
    ok(first, "POST", "/api/v1/namespaces",
       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    path = f"/api/v1/namespaces/{ns}/pods"
    token = first.token
    acked: dict[str, tuple[str, int]] = {}  # name -> (uid, resourceVersion)
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()
    problems: list[str] = []

    def write(index: int) -> None:
        conn = connect(first, timeout=10)
        n = 0
        try:
            while not stop.is_set():
                name = f"{ns}-w{index}-{n}"
                n += 1
                conn.request("POST", path, body=json.dumps(pod(name)),
                             headers={"Authorization": "Bearer " + token,
                                      "Content-Type": "application/json",
                                      "Accept": "application/json"})
                response = conn.getresponse()
                body = response.read()
                if response.status != 201:
                    problems.append(f"{name}: {response.status} {body[:200]!r}")
                    return
                obj = json.loads(body)
                with lock:
                    acked[name] = (obj["metadata"]["uid"],
                                   int(obj["metadata"]["resourceVersion"]))
                    if len(acked) >= ACKS_BEFORE_KILL:
                        enough.set()
        except (OSError, http.client.HTTPException, ValueError):
            return  # the server died under us: the in-flight write was never acknowledged
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(120), f"only {len(acked)} writes acknowledged; {problems}"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        assert first.process.returncode == -signal.SIGKILL
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a writer is stuck"
    assert not problems, problems
    with lock:
        snapshot = dict(acked)
    assert len(snapshot) >= ACKS_BEFORE_KILL

    second = servers()
    listing = ok(second, "GET", path)
    stored = {p["metadata"]["name"]: p for p in listing["items"]}
    missing = sorted(set(snapshot) - set(stored))
    assert not missing, f"{len(missing)} acknowledged pods lost, e.g. {missing[:5]}"
    for name, (uid, rv) in snapshot.items():
        meta = stored[name]["metadata"]
        assert meta["uid"] == uid, name
        assert int(meta["resourceVersion"]) == rv, name
    # at most the writes in flight at the kill may have landed without an acknowledgement
    assert len(stored) - len(snapshot) <= WRITERS

    newest = max(rv for _, rv in snapshot.values())
    assert int(listing["metadata"]["resourceVersion"]) >= newest
    created = ok(second, "POST", path, pod(unique("after")))
    assert int(created["metadata"]["resourceVersion"]) > newest
    assert int(created["metadata"]["resourceVersion"]) > max(
        int(p["metadata"]["resourceVersion"]) for p in stored.values())

    # a watch from the newest acknowledged version replays only what came after it
    watch = Watch(second, f"{path}?watch=true&resourceVersion={newest}")
    try:
        events = watch.until(lambda e: e["object"]["metadata"]["name"] ==
                             created["metadata"]["name"])
    finally:
        watch.close()
    for event in events:
        assert int(event["object"]["metadata"]["resourceVersion"]) > newest
        assert event["object"]["metadata"]["name"] not in snapshot


def test_a_restart_keeps_objects_and_the_resource_version(servers):
    first = servers()
    ns = unique("restart")
    ok(first, "POST", "/api/v1/namespaces",
       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    path = f"/api/v1/namespaces/{ns}/pods"
    name = unique("p")
    created = ok(first, "POST", path, pod(name))
    patched = ok(first, "PATCH", f"{path}/{name}", {"metadata": {"labels": {"a": "b"}}},
                 content_type="application/merge-patch+json")
    assert first.kill(signal.SIGTERM) == 0

    second = servers()
    stored = ok(second, "GET", f"{path}/{name}")
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]
    assert stored["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    assert stored["metadata"]["labels"] == {"a": "b"}
    status, _ = call(second, "DELETE", f"{path}/{name}")
    assert status == 200
    later = ok(second, "POST", path, pod(unique("q")))
    assert int(later["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])


def test_sigterm_exits_0_promptly_even_with_an_open_watch(servers):
    srv = servers()
    ns = unique("term")
    ok(srv, "POST", "/api/v1/namespaces",
       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    watch = Watch(srv, f"/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion=0")
    try:
        ok(srv, "POST", f"/api/v1/namespaces/{ns}/pods", pod(unique("p")))
        assert [e["type"] for e in watch.take(1)] == ["ADDED"]
        srv.process.send_signal(signal.SIGTERM)
        try:
            code = srv.process.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not exit within 10 s of SIGTERM")
        assert code == 0
        # the open watch ends instead of hanging
        deadline = time.monotonic() + 10
        try:
            while watch.next(max(0.1, deadline - time.monotonic())) is not None:
                assert time.monotonic() < deadline, "the watch kept streaming after exit"
        except (OSError, http.client.HTTPException):
            pass  # the connection was cut: the watch ended too
    finally:
        watch.close()
