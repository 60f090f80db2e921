"""Kubernetes object semantics over HTTP: system metadata, the global resourceVersion,
optimistic concurrency, graceful deletion, finalizers, namespace lifecycle, generation,
deletecollection and server-side dry run."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import urllib.parse

from builders import make_node
from test_watch import Watch, call, name_of, ok, pod, unique, unscheduled

STALE = ("the object has been modified; please apply your changes to the latest version and "
         "try again")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MERGE = "application/merge-patch+json"


def ns_create(server, name: str | None = None) -> str:
    name = name or unique("s")
    ok(server, "POST", "/api/v1/namespaces",
       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def pods(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods"


def leases(ns: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


def lease(name: str, **meta) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, **meta}, "spec": {"holderIdentity": "e2e"}}


def scheduled_pod(name: str, grace: int | None = None) -> dict:
    """test_watch's pod, bound to a node that does not exist."""
    obj = unscheduled(name).node("e2e-absent-node")
    if grace is not None:
        obj.grace(grace)
    return obj.build()


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def status_of(server, path: str) -> int:
    return call(server, "GET", path)[0]


def wait_gone(server, path: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while status_of(server, path) != 404:
        assert time.monotonic() < deadline, f"{path} still exists after {timeout} s"
        time.sleep(0.1)


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


# -- system metadata and resourceVersion -----------------------------------------------------


def test_create_sets_uid_creation_timestamp_and_resource_version(server):
    ns = ns_create(server)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    body = pod(unique("meta"))
    body["metadata"].update(uid="client-chosen", resourceVersion="12345",
                            creationTimestamp="2001-01-01T00:00:00Z")
    status, created = call(server, "POST", pods(ns), body)
    after = dt.datetime.now(dt.timezone.utc)
    assert status == 201, created
    meta = created["metadata"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", meta["uid"])
    assert RFC3339.match(meta["creationTimestamp"])
    assert before - dt.timedelta(seconds=1) <= parse_time(meta["creationTimestamp"]) <= after
    assert meta["resourceVersion"].isdigit() and meta["resourceVersion"] != "12345"
    assert meta["namespace"] == ns
    assert meta["generation"] == 1
    fetched = ok(server, "GET", f"{pods(ns)}/{meta['name']}")
    assert {k: fetched["metadata"][k] for k in ("uid", "creationTimestamp", "resourceVersion")} \
        == {k: meta[k] for k in ("uid", "creationTimestamp", "resourceVersion")}

    # the uid of a PUT is a precondition (409, as Kubernetes' defaultUpdatedObjectInfo);
    # a changed creationTimestamp is silently reset
    path = f"{pods(ns)}/{meta['name']}"
    fetched["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    status, body = call(server, "PUT", path, fetched)
    assert status == 409, body
    assert body["reason"] == "Conflict"
    assert "Precondition failed: UID in precondition" in body["message"]
    fetched["metadata"]["uid"] = meta["uid"]
    fetched["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    fetched["metadata"]["labels"] = {"changed": "yes"}
    updated = ok(server, "PUT", path, fetched)
    assert updated["metadata"]["creationTimestamp"] == meta["creationTimestamp"]
    assert updated["metadata"]["labels"] == {"changed": "yes"}
    current = ok(server, "GET", path)
    assert current["metadata"]["uid"] == meta["uid"]
    assert current["metadata"]["creationTimestamp"] == meta["creationTimestamp"]


def test_one_global_resource_version_increases_across_resources(server):
    ns = ns_create(server)
    name = unique("g")
    first = ok(server, "POST", pods(ns), pod(name))
    other_ns = ok(server, "POST", "/api/v1/namespaces",
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": unique("g")}})
    a_lease = ok(server, "POST", leases(ns), lease(unique("l")))
    patched = ok(server, "PATCH", f"{pods(ns)}/{name}", {"metadata": {"labels": {"x": "1"}}},
                 content_type=MERGE)
    assert rv(first) < rv(other_ns) < rv(a_lease) < rv(patched)
    pod_list = ok(server, "GET", pods(ns))
    ns_list = ok(server, "GET", "/api/v1/namespaces")
    assert int(pod_list["metadata"]["resourceVersion"]) >= rv(patched)
    assert int(ns_list["metadata"]["resourceVersion"]) >= rv(patched)


def test_update_with_a_stale_resource_version_is_a_conflict(server):
    ns = ns_create(server)
    name = unique("stale")
    ok(server, "POST", pods(ns), pod(name))
    original = ok(server, "GET", f"{pods(ns)}/{name}")
    fresh = dict(original, metadata=dict(original["metadata"], labels={"round": "1"}))
    updated = ok(server, "PUT", f"{pods(ns)}/{name}", fresh)
    assert rv(updated) > rv(original)

    stale = dict(original, metadata=dict(original["metadata"], labels={"round": "2"}))
    status, body = call(server, "PUT", f"{pods(ns)}/{name}", stale)
    assert status == 409, body
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "Conflict"
    assert body["code"] == 409
    assert body["message"] == f'Operation cannot be fulfilled on pods "{name}": {STALE}'
    assert body["details"]["name"] == name and body["details"]["kind"] == "pods"
    assert ok(server, "GET", f"{pods(ns)}/{name}")["metadata"]["labels"] == {"round": "1"}

    # a merge patch carrying the stale version is refused the same way
    status, body = call(server, "PATCH", f"{pods(ns)}/{name}",
                        {"metadata": {"resourceVersion": original["metadata"]["resourceVersion"],
                                      "labels": {"round": "3"}}}, content_type=MERGE)
    assert status == 409 and body["reason"] == "Conflict", body


def test_concurrent_creates_of_one_name_have_exactly_one_winner(server):
    ns = ns_create(server)
    name = unique("race")
    barrier = threading.Barrier(20)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait(10)
        outcome = call(server, "POST", pods(ns), pod(name))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create, daemon=True) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    codes = sorted(status for status, _ in results)
    assert codes == [201] + [409] * 19, codes
    winner = next(body for status, body in results if status == 201)
    for status, body in results:
        if status == 409:
            assert body["reason"] == "AlreadyExists", body
            assert body["message"] == f'pods "{name}" already exists'
            assert body["details"] == {"name": name, "kind": "pods"}
    stored = ok(server, "GET", f"{pods(ns)}/{name}")
    assert stored["metadata"]["uid"] == winner["metadata"]["uid"]


# -- graceful deletion ---------------------------------------------------------------------


def test_deleting_a_scheduled_pod_is_graceful_then_forced(server):
    ns = ns_create(server)
    name = unique("grace")
    ok(server, "POST", pods(ns), scheduled_pod(name, grace=45))
    path = f"{pods(ns)}/{name}"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    status, deleted = call(server, "DELETE", path)
    assert status == 200, deleted
    meta = deleted["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 45
    when = parse_time(meta["deletionTimestamp"])
    assert before + dt.timedelta(seconds=40) <= when <= before + dt.timedelta(seconds=50)
    still = ok(server, "GET", path)
    assert still["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
    assert still["metadata"]["deletionGracePeriodSeconds"] == 45

    # a second delete with a longer grace period does not extend it
    status, again = call(server, "DELETE", path, {"gracePeriodSeconds": 60})
    assert status == 200
    assert again["metadata"]["deletionGracePeriodSeconds"] == 45

    status, _ = call(server, "DELETE", path + "?gracePeriodSeconds=0")
    assert status == 200
    assert status_of(server, path) == 404


def test_the_requested_grace_period_overrides_the_pods(server):
    ns = ns_create(server)
    name = unique("req")
    ok(server, "POST", pods(ns), scheduled_pod(name, grace=45))
    path = f"{pods(ns)}/{name}"
    status, deleted = call(server, "DELETE", path, {"gracePeriodSeconds": 7})
    assert status == 200
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 7
    assert ok(server, "GET", path)["metadata"]["deletionGracePeriodSeconds"] == 7
    # a shorter grace period shortens it
    status, shorter = call(server, "DELETE", path, {"gracePeriodSeconds": 3})
    assert status == 200
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 3
    assert parse_time(shorter["metadata"]["deletionTimestamp"]) <= \
        parse_time(deleted["metadata"]["deletionTimestamp"])
    assert call(server, "DELETE", path, {"gracePeriodSeconds": 0})[0] == 200
    assert status_of(server, path) == 404


def test_a_default_grace_period_of_30_seconds_applies(server):
    ns = ns_create(server)
    name = unique("dflt")
    created = ok(server, "POST", pods(ns), scheduled_pod(name))
    assert created["spec"]["terminationGracePeriodSeconds"] == 30
    status, deleted = call(server, "DELETE", f"{pods(ns)}/{name}")
    assert status == 200
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 30
    assert call(server, "DELETE", f"{pods(ns)}/{name}?gracePeriodSeconds=0")[0] == 200


def test_unscheduled_and_finished_pods_are_removed_at_once(server):
    ns = ns_create(server)
    unscheduled, finished = unique("unsched"), unique("done")
    ok(server, "POST", pods(ns), pod(unscheduled))
    status, _ = call(server, "DELETE", f"{pods(ns)}/{unscheduled}")
    assert status == 200
    assert status_of(server, f"{pods(ns)}/{unscheduled}") == 404

    ok(server, "POST", pods(ns), scheduled_pod(finished, grace=45))
    ok(server, "PATCH", f"{pods(ns)}/{finished}/status", {"status": {"phase": "Succeeded"}},
       content_type=MERGE)
    assert ok(server, "GET", f"{pods(ns)}/{finished}")["status"]["phase"] == "Succeeded"
    status, _ = call(server, "DELETE", f"{pods(ns)}/{finished}")
    assert status == 200
    assert status_of(server, f"{pods(ns)}/{finished}") == 404


def test_graceful_deletion_is_seen_by_a_watch_as_modified_then_deleted(server):
    ns = ns_create(server)
    name = unique("wd")
    created = ok(server, "POST", pods(ns), scheduled_pod(name, grace=20))
    watch = Watch(server, f"{pods(ns)}?watch=true&resourceVersion={rv(created)}")
    try:
        call(server, "DELETE", f"{pods(ns)}/{name}")
        call(server, "DELETE", f"{pods(ns)}/{name}?gracePeriodSeconds=0")
        events = watch.take(2)
    finally:
        watch.close()
    assert [(e["type"], name_of(e)) for e in events] == [("MODIFIED", name), ("DELETED", name)]
    assert events[0]["object"]["metadata"]["deletionGracePeriodSeconds"] == 20


# -- finalizers ----------------------------------------------------------------------------


def _check_finalizer_blocks(server, path: str) -> dict:
    status, deleted = call(server, "DELETE", path)
    assert status == 200, deleted
    assert deleted["metadata"].get("deletionTimestamp"), deleted["metadata"]
    kept = ok(server, "GET", path)
    assert kept["metadata"]["finalizers"] == ["example.com/x"]
    assert kept["metadata"]["deletionTimestamp"] == deleted["metadata"]["deletionTimestamp"]
    assert kept["metadata"].get("deletionGracePeriodSeconds") == 0
    return kept


def test_a_pod_finalizer_keeps_it_until_a_patch_clears_it(server):
    ns = ns_create(server)
    name = unique("fin")
    body = pod(name)
    body["metadata"]["finalizers"] = ["example.com/x"]
    ok(server, "POST", pods(ns), body)
    path = f"{pods(ns)}/{name}"
    _check_finalizer_blocks(server, path)
    # another label change keeps it; clearing the finalizers removes it
    ok(server, "PATCH", path, {"metadata": {"labels": {"still": "here"}}}, content_type=MERGE)
    assert status_of(server, path) == 200
    status, body = call(server, "PATCH", path, {"metadata": {"finalizers": None}},
                        content_type=MERGE)
    assert status == 200, body
    assert status_of(server, path) == 404


def test_a_lease_finalizer_keeps_it_until_an_update_clears_it(server):
    ns = ns_create(server)
    name = unique("finl")
    ok(server, "POST", leases(ns), lease(name, finalizers=["example.com/x"]))
    path = f"{leases(ns)}/{name}"
    kept = _check_finalizer_blocks(server, path)
    kept["metadata"]["finalizers"] = []
    status, body = call(server, "PUT", path, kept)
    assert status == 200, body
    assert status_of(server, path) == 404


def test_a_cluster_scoped_finalizer_keeps_it_until_a_json_patch_clears_it(server):
    name = unique("finn")
    ok(server, "POST", "/api/v1/nodes",
       make_node(name).bare().set_meta(finalizers=["example.com/x"]).build())
    path = f"/api/v1/nodes/{name}"
    _check_finalizer_blocks(server, path)
    status, body = call(server, "PATCH", path,
                        [{"op": "remove", "path": "/metadata/finalizers"}],
                        content_type="application/json-patch+json")
    assert status == 200, body
    assert status_of(server, path) == 404


# -- namespaces ----------------------------------------------------------------------------


def test_deleting_a_namespace_terminates_then_removes_it_and_its_contents(server):
    ns = ns_create(server)
    names = [unique("c") for _ in range(3)]
    for name in names:
        ok(server, "POST", pods(ns), pod(name))
    ok(server, "POST", leases(ns), lease(unique("l")))
    status, deleted = call(server, "DELETE", f"/api/v1/namespaces/{ns}")
    assert status == 200, deleted
    assert deleted["status"]["phase"] == "Terminating"
    assert deleted["metadata"].get("deletionTimestamp")
    wait_gone(server, f"/api/v1/namespaces/{ns}")
    assert ok(server, "GET", pods(ns))["items"] == []
    assert ok(server, "GET", leases(ns))["items"] == []
    # the name can be used again afterwards
    ns_create(server, ns)
    assert ok(server, "GET", f"/api/v1/namespaces/{ns}")["status"]["phase"] == "Active"


def test_a_terminating_namespace_refuses_new_content_and_waits_for_its_objects(server):
    ns = ns_create(server)
    held = pod(unique("held"))
    held["metadata"]["finalizers"] = ["example.com/x"]
    ok(server, "POST", pods(ns), held)
    ok(server, "POST", pods(ns), pod(unique("free")))
    assert call(server, "DELETE", f"/api/v1/namespaces/{ns}")[0] == 200

    # the namespace drains everything but the held pod, and stays Terminating for it
    deadline = time.monotonic() + 20
    while [p["metadata"]["name"] for p in ok(server, "GET", pods(ns))["items"]] != \
            [held["metadata"]["name"]]:
        assert time.monotonic() < deadline, "namespace contents were not deleted"
        time.sleep(0.1)
    current = ok(server, "GET", f"/api/v1/namespaces/{ns}")
    assert current["status"]["phase"] == "Terminating"
    held_now = ok(server, "GET", f"{pods(ns)}/{held['metadata']['name']}")
    assert held_now["metadata"].get("deletionTimestamp")

    status, body = call(server, "POST", pods(ns), pod(unique("late")))
    assert status == 403, body
    assert body["reason"] == "Forbidden"
    assert body["message"] == (f"unable to create new content in namespace {ns} because it "
                               f"is being terminated")

    ok(server, "PATCH", f"{pods(ns)}/{held['metadata']['name']}",
       {"metadata": {"finalizers": None}}, content_type=MERGE)
    wait_gone(server, f"/api/v1/namespaces/{ns}")


def test_the_default_namespace_cannot_be_deleted(server):
    for name in ("default", "kube-system", "kube-public"):
        status, body = call(server, "DELETE", f"/api/v1/namespaces/{name}")
        assert status == 403, body
        assert body["reason"] == "Forbidden"
        assert body["message"] == (f'namespaces "{name}" is forbidden: this namespace may not '
                                   f'be deleted')
        current = ok(server, "GET", f"/api/v1/namespaces/{name}")
        assert current["status"]["phase"] == "Active"
        assert not current["metadata"].get("deletionTimestamp")


# -- generation ----------------------------------------------------------------------------


def test_pod_generation_tracks_spec_changes_only(server):
    ns = ns_create(server)
    name = unique("gen")
    path = f"{pods(ns)}/{name}"
    assert ok(server, "POST", pods(ns), pod(name))["metadata"]["generation"] == 1
    labelled = ok(server, "PATCH", path, {"metadata": {"labels": {"a": "b"}}}, content_type=MERGE)
    assert labelled["metadata"]["generation"] == 1
    imaged = ok(server, "PATCH", path, {"spec": {"containers": [{"name": "c",
                                                                  "image": "busybox:1.37"}]}},
                content_type="application/strategic-merge-patch+json")
    assert imaged["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert imaged["metadata"]["generation"] == 2
    status_only = ok(server, "PATCH", path + "/status",
                     {"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                                 "reason": "Unschedulable"}]}},
                     content_type=MERGE)
    assert status_only["metadata"]["generation"] == 2
    assert ok(server, "GET", path)["metadata"]["generation"] == 2


# -- deletecollection ----------------------------------------------------------------------


def test_deletecollection_deletes_only_what_the_label_selector_matches(server):
    ns = ns_create(server)
    doomed = [unique("a") for _ in range(3)]
    kept = [unique("b") for _ in range(2)]
    for name in doomed:
        ok(server, "POST", pods(ns), pod(name, app="a"))
    for name in kept:
        ok(server, "POST", pods(ns), pod(name, app="b"))
    status, body = call(server, "DELETE",
                        f"{pods(ns)}?labelSelector={urllib.parse.quote('app=a')}")
    assert status == 200, body
    assert body["kind"] == "PodList"
    assert sorted(p["metadata"]["name"] for p in body["items"]) == sorted(doomed)
    left = [p["metadata"]["name"] for p in ok(server, "GET", pods(ns))["items"]]
    assert sorted(left) == sorted(kept)


# -- dry run -------------------------------------------------------------------------------


def test_dry_run_create_update_and_delete_change_nothing(server):
    ns = ns_create(server)
    ghost = unique("ghost")
    status, would_be = call(server, "POST", pods(ns) + "?dryRun=All", pod(ghost))
    assert status == 201, would_be
    assert would_be["metadata"]["name"] == ghost and would_be["metadata"]["uid"]
    assert status_of(server, f"{pods(ns)}/{ghost}") == 404

    name = unique("real")
    created = ok(server, "POST", pods(ns), pod(name))
    path = f"{pods(ns)}/{name}"
    changed = dict(created, metadata=dict(created["metadata"], labels={"dry": "run"}))
    status, body = call(server, "PUT", path + "?dryRun=All", changed)
    assert status == 200, body
    assert body["metadata"]["labels"] == {"dry": "run"}
    status, body = call(server, "PATCH", path + "?dryRun=All",
                        {"metadata": {"labels": {"dry": "patch"}}}, content_type=MERGE)
    assert status == 200 and body["metadata"]["labels"] == {"dry": "patch"}, body
    stored = ok(server, "GET", path)
    assert stored["metadata"].get("labels", {}) == {}
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    status, _ = call(server, "DELETE", path + "?dryRun=All")
    assert status == 200
    stored = ok(server, "GET", path)
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert not stored["metadata"].get("deletionTimestamp")

    graceful = unique("gdry")
    ok(server, "POST", pods(ns), scheduled_pod(graceful, grace=30))
    status, body = call(server, "DELETE", f"{pods(ns)}/{graceful}?dryRun=All")
    assert status == 200, body
    assert not ok(server, "GET", f"{pods(ns)}/{graceful}")["metadata"].get("deletionTimestamp")

    status, body = call(server, "DELETE", f"{pods(ns)}?dryRun=All")
    assert status == 200, body
    assert len(ok(server, "GET", pods(ns))["items"]) == 2

    status, body = call(server, "POST", pods(ns) + "?dryRun=Some", pod(unique("bad")))
    assert status == 400, body
