"""Watch over raw HTTP: the chunked JSON-lines stream and the semantics kubectl and informers
rely on (docs/kubectl-compatibility.md §7).

Every watch here is a plain ``http.client`` request over TLS (the server's CA, the bearer
token) whose body is read line by line against a deadline. Pods carry a scheduler name no
scheduler answers to, so the only changes a watch sees are the writes the test makes.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import threading
import time
import urllib.parse
import uuid

from builders import PodBuilder, make_pod
from podling_e2e import start_server

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
NO_SCHEDULER = "podling-e2e-no-scheduler"


# -- HTTP helpers --------------------------------------------------------------------------


def connect(server, timeout: float = 30) -> http.client.HTTPSConnection:
    url = urllib.parse.urlsplit(server.url)
    context = ssl.create_default_context(cafile=server.ca_file)
    return http.client.HTTPSConnection(url.hostname, url.port, context=context,
                                       timeout=timeout)


def call(server, method: str, path: str, body=None, *,
         content_type: str = "application/json", accept: str = "application/json"):
    """One request on a fresh connection; (status, decoded JSON body)."""
    conn = connect(server)
    try:
        headers = {"Authorization": "Bearer " + server.token, "Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def ok(server, method: str, path: str, body=None, **kwargs) -> dict:
    status, answer = call(server, method, path, body, **kwargs)
    assert 200 <= status < 300, f"{method} {path} -> {status}: {answer}"
    return answer


class Watch:
    """An open watch; ``next()`` returns the next decoded event, or None at the end."""

    def __init__(self, server, path: str, *, accept: str = "application/json") -> None:
        self.conn = connect(server)
        self.conn.request("GET", path, headers={"Authorization": "Bearer " + server.token,
                                                 "Accept": accept})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, (self.response.status, self.response.read())
        self.ended = False

    def next(self, timeout: float = 10) -> dict | None:
        """The next event within ``timeout`` seconds; None when the server ended the stream."""
        if self.ended:
            return None
        self.conn.sock.settimeout(timeout)
        try:
            line = self.response.readline()
        except (socket.timeout, TimeoutError):
            raise AssertionError(f"no watch event within {timeout} s") from None
        if not line:
            self.ended = True
            return None
        return json.loads(line)

    def take(self, count: int, timeout: float = 20, *, skip_bookmarks: bool = True) -> list[dict]:
        """Exactly ``count`` events (bookmarks aside) within ``timeout`` seconds overall."""
        deadline = time.monotonic() + timeout
        events: list[dict] = []
        while len(events) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(events)} of {count} events: {summary(events)}"
            event = self.next(remaining)
            assert event is not None, f"stream ended after {summary(events)}"
            if skip_bookmarks and event["type"] == "BOOKMARK":
                continue
            events.append(event)
        return events

    def until(self, stop, timeout: float = 20) -> list[dict]:
        """Events up to and including the first for which ``stop(event)`` is true."""
        deadline = time.monotonic() + timeout
        events: list[dict] = []
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"condition not met; events so far: {summary(events)}"
            event = self.next(remaining)
            assert event is not None, f"stream ended after {summary(events)}"
            if event["type"] == "BOOKMARK":
                continue
            events.append(event)
            if stop(event):
                return events

    def close(self) -> None:
        self.conn.close()


def summary(events: list[dict]) -> list[tuple]:
    return [(e["type"], name_of(e), rv_of(e)) for e in events]


def name_of(event: dict) -> str | None:
    return (event["object"].get("metadata") or {}).get("name")


def rv_of(event: dict) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


def unscheduled(name: str, **labels: str) -> PodBuilder:
    """A bare pod (image busybox:1.36, ``labels`` even if none) that no scheduler takes."""
    return (make_pod(name, None).container("c", "busybox:1.36").bare().labels(**labels)
            .scheduler(NO_SCHEDULER))


def pod(name: str, **labels: str) -> dict:
    return unscheduled(name, **labels).build()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_namespace(server) -> str:
    name = unique("w")
    ok(server, "POST", "/api/v1/namespaces",
       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def pods_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods"


def create_pod(server, ns: str, name: str, **labels: str) -> dict:
    return ok(server, "POST", pods_path(ns), pod(name, **labels))


def merge_patch(server, ns: str, name: str, patch: dict) -> dict:
    return ok(server, "PATCH", f"{pods_path(ns)}/{name}", patch,
              content_type="application/merge-patch+json")


def label(server, ns: str, name: str, **labels) -> dict:
    return merge_patch(server, ns, name, {"metadata": {"labels": labels}})


def list_rv(server, ns: str) -> str:
    return ok(server, "GET", pods_path(ns))["metadata"]["resourceVersion"]


# -- resourceVersion semantics -------------------------------------------------------------


def test_watch_from_zero_sends_existing_objects_as_added_then_live_changes(server):
    ns = new_namespace(server)
    created = {n: create_pod(server, ns, n, app="web") for n in (unique("a"), unique("b"))}
    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion=0")
    try:
        initial = watch.take(2)
        assert {e["type"] for e in initial} == {"ADDED"}
        assert {name_of(e): rv_of(e) for e in initial} == \
            {n: int(p["metadata"]["resourceVersion"]) for n, p in created.items()}
        for event in initial:
            assert event["object"]["kind"] == "Pod"
            assert event["object"]["apiVersion"] == "v1"

        live = unique("c")
        added = create_pod(server, ns, live)
        first = next(iter(created))
        patched = label(server, ns, first, tier="front")
        status, _ = call(server, "DELETE", f"{pods_path(ns)}/{live}")
        assert status == 200
        events = watch.take(3)
        assert [(e["type"], name_of(e)) for e in events] == \
            [("ADDED", live), ("MODIFIED", first), ("DELETED", live)]
        assert rv_of(events[0]) == int(added["metadata"]["resourceVersion"])
        assert rv_of(events[1]) == int(patched["metadata"]["resourceVersion"])
        assert events[1]["object"]["metadata"]["labels"] == {"app": "web", "tier": "front"}
        assert rv_of(events[2]) > rv_of(events[1])
    finally:
        watch.close()


def test_watch_from_a_list_resource_version_sends_only_later_events(server):
    ns = new_namespace(server)
    before = unique("before")
    create_pod(server, ns, before)
    label(server, ns, before, step="1")
    rv = list_rv(server, ns)
    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion={rv}")
    try:
        after = unique("after")
        created = create_pod(server, ns, after)
        events = watch.take(1)
        assert [(e["type"], name_of(e)) for e in events] == [("ADDED", after)]
        assert rv_of(events[0]) == int(created["metadata"]["resourceVersion"]) > int(rv)
    finally:
        watch.close()


def test_watch_from_a_retained_older_version_replays_exactly_the_writes_after_it(server):
    ns = new_namespace(server)
    names = [unique("p") for _ in range(4)]
    create_pod(server, ns, names[0])
    start = list_rv(server, ns)

    expected: list[tuple[str, str, int | None]] = []  # (type, name, rv or None for deletes)
    for name in names[1:]:
        expected.append(("ADDED", name, int(create_pod(server, ns, name)["metadata"]["resourceVersion"])))
    for i in range(5):
        target = names[i % len(names)]
        expected.append(("MODIFIED", target,
                         int(label(server, ns, target, round=str(i))["metadata"]["resourceVersion"])))
    assert call(server, "DELETE", f"{pods_path(ns)}/{names[2]}")[0] == 200
    expected.append(("DELETED", names[2], None))
    sentinel = unique("sentinel")

    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion={start}")
    try:
        create_pod(server, ns, sentinel)
        events = watch.until(lambda e: name_of(e) == sentinel)
    finally:
        watch.close()
    replayed, last = events[:-1], events[-1]
    assert [(e["type"], name_of(e)) for e in replayed] == [(t, n) for t, n, _ in expected], \
        summary(events)
    for event, (_, _, rv) in zip(replayed, expected):
        if rv is not None:
            assert rv_of(event) == rv
    rvs = [rv_of(e) for e in events]
    assert rvs == sorted(set(rvs)), f"not strictly increasing: {rvs}"
    assert rvs[0] > int(start)
    assert last["type"] == "ADDED"


def test_watch_from_a_compacted_version_gets_an_expired_error_event(tmp_path):
    srv = start_server(str(tmp_path / "data"), str(tmp_path / "home"), "--history", "20")
    try:
        ns = new_namespace(srv)
        name = unique("churn")
        first = create_pod(srv, ns, name)
        old_rv = first["metadata"]["resourceVersion"]
        for i in range(50):
            label(srv, ns, name, i=str(i))
        watch = Watch(srv, f"{pods_path(ns)}?watch=true&resourceVersion={old_rv}")
        try:
            event = watch.next(10)
            assert event is not None, "stream ended without an ERROR event"
            assert event["type"] == "ERROR", event
            status = event["object"]
            assert status["kind"] == "Status"
            assert status["apiVersion"] == "v1"
            assert status["status"] == "Failure"
            assert status["code"] == 410
            assert status["reason"] == "Expired"
            assert status["message"].startswith(f"too old resource version: {old_rv} ")
            assert watch.next(10) is None, "the stream should end after the 410"
        finally:
            watch.close()

        # a retained version still works on the same server
        recent = list_rv(srv, ns)
        watch = Watch(srv, f"{pods_path(ns)}?watch=true&resourceVersion={recent}")
        try:
            label(srv, ns, name, i="last")
            assert [e["type"] for e in watch.take(1)] == ["MODIFIED"]
        finally:
            watch.close()
    finally:
        srv.kill()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_watch_with_a_malformed_resource_version_is_a_bad_request(server):
    status, body = call(server, "GET", f"{pods_path('default')}?watch=true&resourceVersion=abc")
    assert status == 400
    assert body["kind"] == "Status" and body["reason"] == "BadRequest"


# -- selectors -----------------------------------------------------------------------------


def test_label_selector_watch_turns_match_changes_into_added_and_deleted(server):
    ns = new_namespace(server)
    blue, red, later = unique("blue"), unique("red"), unique("later")
    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion=0"
                          f"&labelSelector=color%3Dblue")
    try:
        create_pod(server, ns, blue, color="blue")
        create_pod(server, ns, red, color="red")
        label(server, ns, red, size="l")          # still red: unseen
        to_red = label(server, ns, blue, color="red")  # stops matching
        to_blue = label(server, ns, red, color="blue")  # starts matching
        label(server, ns, red, size="xl")         # still blue: MODIFIED
        create_pod(server, ns, later, color="blue")
        events = watch.until(lambda e: name_of(e) == later)
    finally:
        watch.close()
    assert [(e["type"], name_of(e)) for e in events] == [
        ("ADDED", blue), ("DELETED", blue), ("ADDED", red), ("MODIFIED", red), ("ADDED", later)]
    left, joined = events[1], events[2]
    assert rv_of(left) == int(to_red["metadata"]["resourceVersion"])
    assert rv_of(joined) == int(to_blue["metadata"]["resourceVersion"])
    assert joined["object"]["metadata"]["labels"]["color"] == "blue"
    # Kubernetes' watch cache sends the last state the watcher could see (the object as it
    # was before the change, which still matched) with the event's resourceVersion.
    assert left["object"]["metadata"]["labels"]["color"] == "blue", left["object"]["metadata"]


def test_field_selector_on_metadata_name_sees_only_that_object(server):
    ns = new_namespace(server)
    target, other = unique("target"), unique("other")
    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion=0"
                          f"&fieldSelector=metadata.name%3D{target}")
    try:
        create_pod(server, ns, other)
        create_pod(server, ns, target)
        label(server, ns, other, x="1")
        label(server, ns, target, x="1")
        assert call(server, "DELETE", f"{pods_path(ns)}/{other}")[0] == 200
        assert call(server, "DELETE", f"{pods_path(ns)}/{target}")[0] == 200
        create_pod(server, ns, target, again="yes")
        events = watch.until(lambda e: e["type"] == "ADDED" and
                             e["object"]["metadata"].get("labels", {}).get("again") == "yes")
    finally:
        watch.close()
    assert [(e["type"], name_of(e)) for e in events] == [
        ("ADDED", target), ("MODIFIED", target), ("DELETED", target), ("ADDED", target)]


def test_watch_on_a_single_named_object_from_zero_starts_with_it(server):
    """`kubectl get pod X -w` drops the first event, so it must be the synthetic ADDED."""
    ns = new_namespace(server)
    name = unique("single")
    create_pod(server, ns, name)
    create_pod(server, ns, unique("noise"))
    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion=0"
                          f"&fieldSelector=metadata.name%3D{name}")
    try:
        first = watch.take(1)
        assert [(e["type"], name_of(e)) for e in first] == [("ADDED", name)]
        label(server, ns, name, seen="yes")
        assert [(e["type"], name_of(e)) for e in watch.take(1)] == [("MODIFIED", name)]
    finally:
        watch.close()


# -- stream lifetime and bookmarks ---------------------------------------------------------


def test_timeout_seconds_ends_the_stream_cleanly(server):
    ns = new_namespace(server)
    watch = Watch(server, f"{pods_path(ns)}?watch=true&timeoutSeconds=1")
    try:
        assert watch.response.getheader("Transfer-Encoding", "").lower() == "chunked"
        deadline = time.monotonic() + 15
        events = []
        while True:
            assert time.monotonic() < deadline, "the watch outlived timeoutSeconds=1"
            event = watch.next(deadline - time.monotonic())
            if event is None:
                break
            events.append(event)
        assert events == []
        # a clean end: the terminating chunk arrived, nothing is left half-read
        assert watch.response.read() == b""
        assert watch.response.isclosed()
    finally:
        watch.close()


def test_bookmarks_arrive_on_an_idle_watch_and_never_go_backwards(tmp_path):
    srv = start_server(str(tmp_path / "data"), str(tmp_path / "home"),
                       "--watch-bookmark-interval", "0.5")
    try:
        ns = new_namespace(srv)
        rv = list_rv(srv, ns)
        watch = Watch(srv, f"{pods_path(ns)}?watch=true&allowWatchBookmarks=true"
                           f"&resourceVersion={rv}")
        try:
            name = unique("bm")
            create_pod(srv, ns, name)
            seen = []
            last_rv = int(rv)
            deadline = time.monotonic() + 15
            bookmarks = []
            while len(bookmarks) < 2:
                assert time.monotonic() < deadline, f"no bookmarks: {summary(seen)}"
                event = watch.next(deadline - time.monotonic())
                assert event is not None
                seen.append(event)
                if event["type"] == "BOOKMARK":
                    if any(e["type"] == "ADDED" for e in seen):
                        bookmarks.append(event)
                    obj = event["object"]
                    assert obj["kind"] == "Pod" and obj["apiVersion"] == "v1"
                    assert rv_of(event) >= last_rv, summary(seen)
                else:
                    assert event["type"] == "ADDED" and name_of(event) == name
                    assert rv_of(event) > last_rv
                last_rv = max(last_rv, rv_of(event))
            added = [e for e in seen if e["type"] == "ADDED"]
            assert len(added) == 1
            assert all(rv_of(b) >= rv_of(added[0]) for b in bookmarks)
        finally:
            watch.close()

        # without allowWatchBookmarks no bookmark is sent
        watch = Watch(srv, f"{pods_path(ns)}?watch=true&resourceVersion={rv}&timeoutSeconds=2")
        try:
            events = []
            while (event := watch.next(15)) is not None:
                events.append(event)
            assert [e["type"] for e in events] == ["ADDED"]
        finally:
            watch.close()
    finally:
        srv.kill()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


# -- Table watch ---------------------------------------------------------------------------


def test_table_watch_sends_one_row_tables_with_columns_only_first(server):
    ns = new_namespace(server)
    existing, live = unique("t1"), unique("t2")
    create_pod(server, ns, existing)
    watch = Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion=0", accept=TABLE_ACCEPT)
    try:
        assert watch.response.getheader("Content-Type", "").startswith("application/json")
        create_pod(server, ns, live)
        label(server, ns, live, x="y")
        events = watch.take(3)
    finally:
        watch.close()
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "MODIFIED"]
    names = []
    for i, event in enumerate(events):
        table = event["object"]
        assert table["kind"] == "Table"
        assert table["apiVersion"] == "meta.k8s.io/v1"
        assert len(table["rows"]) == 1
        row = table["rows"][0]
        names.append(row["cells"][0])
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["name"] == row["cells"][0]
        if i == 0:
            columns = [c["name"] for c in table["columnDefinitions"]]
            assert columns[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
        else:
            assert not table.get("columnDefinitions"), table
    assert names == [existing, live, live]


# -- concurrency ---------------------------------------------------------------------------


def test_a_watcher_that_stops_reading_holds_up_no_one_and_later_gets_every_event(server):
    """~12 MB of events is more than the sockets buffer, so the server must queue for the
    stalled watcher (its fast path refuses, the watch task writes with flow control) while
    the live watcher and the writes carry on."""
    ns = new_namespace(server)
    name = unique("big")
    create_pod(server, ns, name)
    path = f"{pods_path(ns)}?watch=true&resourceVersion={list_rv(server, ns)}"
    stalled, live = Watch(server, path), Watch(server, path)
    updates, filler = 200, "x" * 60_000
    seen_live: list[dict] = []
    errors: list[BaseException] = []

    def read_live() -> None:
        try:
            seen_live.extend(live.take(updates, timeout=120))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    reader = threading.Thread(target=read_live, daemon=True)
    reader.start()
    try:
        acked = [rv_of({"object": merge_patch(server, ns, name, {"metadata": {
            "annotations": {"n": str(i), "fill": filler}}})}) for i in range(updates)]
        reader.join(120)
        assert not reader.is_alive() and not errors, errors or "the live watcher got stuck"
        seen_stalled = stalled.take(updates, timeout=120)
    finally:
        stalled.close()
        live.close()
    assert [rv_of(e) for e in seen_live] == acked
    assert [rv_of(e) for e in seen_stalled] == acked
    assert [e["object"]["metadata"]["annotations"]["n"] for e in seen_stalled] == \
        [str(i) for i in range(updates)]


def test_concurrent_writers_are_seen_by_every_watcher_in_one_order(server):
    ns = new_namespace(server)
    writers, updates = 3, 100
    names = [unique(f"w{i}") for i in range(writers)]
    for name in names:
        create_pod(server, ns, name)
    rv = list_rv(server, ns)
    watchers = [Watch(server, f"{pods_path(ns)}?watch=true&resourceVersion={rv}")
                for _ in range(3)]
    errors: list[BaseException] = []
    acked: dict[str, list[int]] = {n: [] for n in names}

    def write(name: str) -> None:
        conn = connect(server)
        try:
            for i in range(updates):
                conn.request("PATCH", f"{pods_path(ns)}/{name}",
                             body=json.dumps({"metadata": {"annotations": {"n": str(i)}}}),
                             headers={"Authorization": "Bearer " + server.token,
                                      "Content-Type": "application/merge-patch+json",
                                      "Accept": "application/json"})
                response = conn.getresponse()
                body = json.loads(response.read())
                assert response.status == 200, body
                acked[name].append(int(body["metadata"]["resourceVersion"]))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in names]
    results: list[list[dict]] = [[] for _ in watchers]

    def read(index: int) -> None:
        try:
            results[index] = watchers[index].take(writers * updates, timeout=90)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(3)]
    try:
        for thread in threads + readers:
            thread.start()
        for thread in threads + readers:
            thread.join(120)
            assert not thread.is_alive(), "a writer or watcher got stuck"
    finally:
        for watcher in watchers:
            watcher.close()
    assert not errors, errors
    sequences = [[(e["type"], name_of(e), rv_of(e)) for e in events] for events in results]
    assert len(sequences[0]) == writers * updates
    assert sequences[0] == sequences[1] == sequences[2]
    rvs = [rv for _, _, rv in sequences[0]]
    assert rvs == sorted(set(rvs)), "resourceVersions not strictly increasing"
    assert {t for t, _, _ in sequences[0]} == {"MODIFIED"}
    assert sorted(rvs) == sorted(rv for values in acked.values() for rv in values)
    for name in names:
        counters = [int(e["object"]["metadata"]["annotations"]["n"])
                    for e in results[0] if name_of(e) == name]
        assert counters == list(range(updates)), name
