"""The official `kubernetes` Python client against a real podling server.

CoreV1Api (pods, pod status, bindings, nodes, namespaces, events), CoordinationV1Api (leases)
and kubernetes.watch.Watch, as controllers and operators use them.

Most models here set api_version and kind; a body without them (defaulted from the URL by
Kubernetes) has a test of its own at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import threading
import time
import uuid

import pytest
from builders import make_pod
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NS = "default"
WAIT = 15.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod_body(name: str, labels: dict | None = None, **spec) -> dict:
    """A bare pod (image busybox:1.36, ``labels`` even if none; ``spec`` fields spelled as
    in the API), as the dict the client sends for a V1Pod."""
    return (make_pod(name, None).container("c", "busybox:1.36").bare()
            .labels(**(labels or {})).set_spec(**spec).build())


def wait_for(condition, timeout: float = WAIT, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


@pytest.fixture(scope="module")
def api_client(shared_server):
    api = shared_server.api_client()
    yield api
    api.close()


@pytest.fixture(scope="module")
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def merge_client(shared_server):
    """An ApiClient whose PATCH requests are JSON merge patches.

    The generated patch methods choose strategic merge for a dict body and JSON patch for a
    list; a default Content-Type header overrides that choice."""
    api = shared_server.api_client()
    api.set_default_header("Content-Type", "application/merge-patch+json")
    yield api
    api.close()


@pytest.fixture(scope="module")
def coordination(api_client) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client)


# -- pods: create, read, list ----------------------------------------------------------------

def test_create_and_read_pod(core):
    name = unique("read")
    created = core.create_namespaced_pod(NS, pod_body(name, {"app": "read"}))
    assert isinstance(created, client.V1Pod)
    assert created.metadata.name == name
    assert created.metadata.namespace == NS
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp.tzinfo is not None
    assert created.status.phase == "Pending"
    # defaults applied by the server
    assert created.spec.restart_policy == "Always"
    assert created.spec.dns_policy == "ClusterFirst"
    assert created.spec.termination_grace_period_seconds == 30
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"

    got = core.read_namespaced_pod(name, NS)
    assert got.metadata.uid == created.metadata.uid
    assert got.metadata.resource_version == created.metadata.resource_version
    assert got.metadata.labels == {"app": "read"}


def test_read_missing_pod_is_404(core):
    name = unique("missing")
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod(name, NS)
    assert info.value.status == 404
    body = status_of(info.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == f'pods "{name}" not found'


def test_create_twice_is_409_already_exists(core):
    name = unique("twice")
    core.create_namespaced_pod(NS, pod_body(name))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(NS, pod_body(name))
    assert info.value.status == 409
    body = status_of(info.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == f'pods "{name}" already exists'
    assert body["details"] == {"name": name, "kind": "pods"}


def test_list_with_label_selector(core):
    tag = unique("tag")
    names = [unique("lbl") for _ in range(3)]
    for i, name in enumerate(names):
        core.create_namespaced_pod(NS, pod_body(name, {"suite": tag, "tier": "a" if i else "b"}))
    listed = core.list_namespaced_pod(NS, label_selector=f"suite={tag}")
    assert sorted(p.metadata.name for p in listed.items) == sorted(names)
    assert listed.metadata.resource_version
    only_a = core.list_namespaced_pod(NS, label_selector=f"suite={tag},tier=a")
    assert sorted(p.metadata.name for p in only_a.items) == sorted(names[1:])
    not_a = core.list_namespaced_pod(NS, label_selector=f"suite={tag},tier notin (a)")
    assert [p.metadata.name for p in not_a.items] == [names[0]]
    exists = core.list_namespaced_pod(NS, label_selector=f"suite={tag},!tier")
    assert exists.items == []
    # across namespaces too
    everywhere = core.list_pod_for_all_namespaces(label_selector=f"suite={tag}")
    assert sorted(p.metadata.name for p in everywhere.items) == sorted(names)


def test_list_with_field_selector(core):
    tag = unique("fs")
    first, second = unique("fsel"), unique("fsel")
    core.create_namespaced_pod(NS, pod_body(first, {"suite": tag}))
    core.create_namespaced_pod(NS, pod_body(second, {"suite": tag}))
    by_name = core.list_namespaced_pod(NS, field_selector=f"metadata.name={first}")
    assert [p.metadata.name for p in by_name.items] == [first]
    not_first = core.list_namespaced_pod(NS, label_selector=f"suite={tag}",
                                         field_selector=f"metadata.name!={first}")
    assert [p.metadata.name for p in not_first.items] == [second]
    pending = core.list_namespaced_pod(NS, label_selector=f"suite={tag}",
                                       field_selector="status.phase=Pending,spec.nodeName=")
    assert sorted(p.metadata.name for p in pending.items) == sorted([first, second])
    running = core.list_namespaced_pod(NS, label_selector=f"suite={tag}",
                                       field_selector="status.phase=Running")
    assert running.items == []


def test_unsupported_field_selector_is_400(core):
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod(NS, field_selector="spec.bogus=x")
    assert info.value.status == 400
    assert status_of(info.value)["reason"] == "BadRequest"


# -- watch -----------------------------------------------------------------------------------

def _rv(obj) -> int:
    return int(obj.metadata.resource_version)


def test_watch_replays_added_modified_deleted_in_order(core):
    tag = unique("w")
    name = unique("watched")
    start = core.list_namespaced_pod(NS, label_selector=f"suite={tag}").metadata.resource_version
    core.create_namespaced_pod(NS, pod_body(name, {"suite": tag}))
    core.patch_namespaced_pod(name, NS, {"metadata": {"labels": {"step": "patched"}}})
    core.delete_namespaced_pod(name, NS)

    events = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, NS, label_selector=f"suite={tag}",
                          resource_version=start, timeout_seconds=10):
        events.append(event)
        if event["type"] == "DELETED":
            w.stop()
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["object"].metadata.name == name for e in events)
    assert isinstance(events[0]["object"], client.V1Pod)
    assert events[1]["object"].metadata.labels["step"] == "patched"
    versions = [_rv(e["object"]) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 3, versions
    assert versions[0] > int(start)
    assert events[0]["raw_object"]["kind"] == "Pod"


def test_watch_streams_live_events(core):
    tag = unique("live")
    name = unique("live")
    start = core.list_namespaced_pod(NS, label_selector=f"suite={tag}").metadata.resource_version
    received: queue.Queue = queue.Queue()
    w = watch.Watch()

    def consume() -> None:
        try:
            for event in w.stream(core.list_namespaced_pod, NS, label_selector=f"suite={tag}",
                                  resource_version=start, timeout_seconds=20):
                received.put((event["type"], event["object"]))
        except Exception as exc:  # surfaced in the main thread
            received.put(("ERROR", exc))
        received.put(("END", None))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        core.create_namespaced_pod(NS, pod_body(name, {"suite": tag}))
        kind, obj = received.get(timeout=WAIT)
        assert kind == "ADDED", obj
        added_rv = _rv(obj)

        core.patch_namespaced_pod(name, NS, {"metadata": {"annotations": {"n": "1"}}})
        kind, obj = received.get(timeout=WAIT)
        assert kind == "MODIFIED", obj
        assert obj.metadata.annotations == {"n": "1"}
        modified_rv = _rv(obj)

        core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        kind, obj = received.get(timeout=WAIT)
        assert kind == "DELETED", obj
        deleted_rv = _rv(obj)
        assert added_rv < modified_rv < deleted_rv
    finally:
        w.stop()
    # the stream ends by itself once stopped or timed out
    while True:
        kind, obj = received.get(timeout=30)
        if kind == "END":
            break
        assert kind != "ERROR", obj


def test_watch_with_field_selector_sees_only_its_pod(core):
    tag = unique("wf")
    wanted, other = unique("wanted"), unique("other")
    start = core.list_namespaced_pod(NS, label_selector=f"suite={tag}").metadata.resource_version
    core.create_namespaced_pod(NS, pod_body(other, {"suite": tag}))
    core.create_namespaced_pod(NS, pod_body(wanted, {"suite": tag}))
    w = watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_pod, NS, field_selector=f"metadata.name={wanted}",
                          resource_version=start, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        w.stop()
    assert seen == [("ADDED", wanted)]


def test_watch_timeout_ends_the_stream(core):
    tag = unique("quiet")
    start = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_pod, NS,
                                       label_selector=f"suite={tag}", timeout_seconds=1,
                                       _request_timeout=10))
    assert events == []
    assert time.monotonic() - start < 8


# -- patch and update ------------------------------------------------------------------------

def test_strategic_merge_patch_with_a_dict(core):
    name = unique("smp")
    core.create_namespaced_pod(NS, pod_body(name, {"a": "1"}, tolerations=[
        {"key": "k1", "operator": "Exists", "effect": "NoSchedule"}]))
    patched = core.patch_namespaced_pod(name, NS, {
        "metadata": {"labels": {"b": "2"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]},
    })
    assert patched.metadata.labels == {"a": "1", "b": "2"}
    # containers merge by name: still one container, image updated
    assert [(c.name, c.image) for c in patched.spec.containers] == [("c", "busybox:1.37")]
    # deleting a key with null
    patched = core.patch_namespaced_pod(name, NS, {"metadata": {"labels": {"a": None}}})
    assert patched.metadata.labels == {"b": "2"}


def test_merge_patch_via_content_type(core, merge_client):
    name = unique("merge")
    merging = client.CoreV1Api(merge_client)
    core.create_namespaced_pod(NS, pod_body(name, {"a": "1"}))
    patched = merging.patch_namespaced_pod(
        name, NS, {"metadata": {"labels": {"a": None, "c": "3"}, "annotations": {"x": "y"}}})
    assert patched.metadata.labels == {"c": "3"}
    assert patched.metadata.annotations == {"x": "y"}
    # lists: a strategic merge patch merges finalizers, a merge patch replaces them wholesale
    patched = core.patch_namespaced_pod(name, NS, {"metadata": {"finalizers": [
        "example.com/one", "example.com/two"]}})
    patched = core.patch_namespaced_pod(name, NS, {"metadata": {"finalizers": [
        "example.com/three"]}})
    assert patched.metadata.finalizers == ["example.com/one", "example.com/two",
                                           "example.com/three"]
    patched = merging.patch_namespaced_pod(
        name, NS, {"metadata": {"finalizers": ["example.com/two"]}})
    assert patched.metadata.finalizers == ["example.com/two"]
    patched = merging.patch_namespaced_pod(name, NS, {"metadata": {"finalizers": None}})
    assert not patched.metadata.finalizers


def test_json_patch_with_a_list(core):
    name = unique("jsonp")
    core.create_namespaced_pod(NS, pod_body(name, {"a": "1"}))
    patched = core.patch_namespaced_pod(name, NS, [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "one"},
    ])
    assert patched.metadata.labels == {"a": "one", "b": "2"}
    with pytest.raises(ApiException) as info:
        core.patch_namespaced_pod(name, NS, [
            {"op": "test", "path": "/metadata/labels/a", "value": "wrong"}])
    assert 400 <= info.value.status < 500


def test_replace_with_stale_resource_version_is_409(core):
    name = unique("stale")
    created = core.create_namespaced_pod(NS, pod_body(name, {"v": "0"}))
    first = core.read_namespaced_pod(name, NS)
    first.metadata.labels["v"] = "1"
    updated = core.replace_namespaced_pod(name, NS, first)
    assert updated.metadata.labels["v"] == "1"
    assert _rv(updated) > _rv(created)

    stale = core.read_namespaced_pod(name, NS)
    stale.metadata.resource_version = created.metadata.resource_version
    stale.metadata.labels["v"] = "2"
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_pod(name, NS, stale)
    assert info.value.status == 409
    body = status_of(info.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (f'Operation cannot be fulfilled on pods "{name}": the object has '
                               f'been modified; please apply your changes to the latest version '
                               f'and try again')
    assert core.read_namespaced_pod(name, NS).metadata.labels["v"] == "1"


def test_replace_status_then_main_update_keeps_status(core):
    name = unique("status")
    core.create_namespaced_pod(NS, pod_body(name))
    pod = core.read_namespaced_pod_status(name, NS)
    pod.status.phase = "Running"
    pod.status.conditions = [client.V1PodCondition(type="Ready", status="True",
                                                   last_transition_time=dt.datetime.now(
                                                       dt.timezone.utc).replace(microsecond=0))]
    pod.metadata.labels = {"ignored-by-status": "yes"}
    updated = core.replace_namespaced_pod_status(name, NS, pod)
    assert updated.status.phase == "Running"
    assert [(c.type, c.status) for c in updated.status.conditions] == [("Ready", "True")]
    # the status subresource ignores metadata changes other than a few; labels stay unchanged
    assert not (updated.metadata.labels or {}).get("ignored-by-status")

    # an update of the main resource must not change the status
    current = core.read_namespaced_pod(name, NS)
    current.status.phase = "Failed"
    current.status.conditions = []
    current.metadata.labels = {"changed": "yes"}
    after = core.replace_namespaced_pod(name, NS, current)
    assert after.metadata.labels == {"changed": "yes"}
    assert after.status.phase == "Running"
    assert [(c.type, c.status) for c in after.status.conditions] == [("Ready", "True")]
    assert core.read_namespaced_pod(name, NS).status.phase == "Running"


def test_patch_status_merges_conditions_by_type(core):
    name = unique("pstatus")
    core.create_namespaced_pod(NS, pod_body(name))
    core.patch_namespaced_pod_status(name, NS, {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}})
    patched = core.patch_namespaced_pod_status(name, NS, {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}})
    assert patched.status.phase == "Running"
    conditions = {c.type: c.status for c in patched.status.conditions}
    assert conditions == {"Ready": "True", "Initialized": "True"}
    # a status patch does not touch the spec or labels
    patched = core.patch_namespaced_pod_status(name, NS, {"metadata": {"labels": {"x": "y"}},
                                                          "spec": {"nodeName": "elsewhere"}})
    assert not (patched.metadata.labels or {}).get("x")
    assert patched.spec.node_name is None


# -- binding ---------------------------------------------------------------------------------

def _binding(pod: str, node: str) -> client.V1Binding:
    return client.V1Binding(api_version="v1", kind="Binding",
                            metadata=client.V1ObjectMeta(name=pod),
                            target=client.V1ObjectReference(api_version="v1", kind="Node",
                                                            name=node))


def _scheduled(pod: client.V1Pod) -> str | None:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled":
            return condition.status
    return None


def test_pod_binding_subresource(core):
    name, node = unique("bindme"), unique("node")
    core.create_namespaced_pod(NS, pod_body(name))
    # _preload_content=False: the answer is a Status, which the client cannot turn into a
    # V1Binding
    response = core.create_namespaced_pod_binding(name, NS, _binding(name, node),
                                                  _preload_content=False)
    assert response.status == 201
    answer = json.loads(response.data)
    assert answer["kind"] == "Status" and answer["status"] == "Success"

    bound = core.read_namespaced_pod(name, NS)
    assert bound.spec.node_name == node
    assert _scheduled(bound) == "True"

    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_binding(name, NS, _binding(name, unique("other")),
                                           _preload_content=False)
    assert info.value.status == 409
    body = status_of(info.value)
    assert body["reason"] == "Conflict"
    assert f'pod {name} is already assigned to node "{node}"' in body["message"]
    assert core.read_namespaced_pod(name, NS).spec.node_name == node


def test_bindings_resource(core):
    name, node = unique("bind2"), unique("node")
    core.create_namespaced_pod(NS, pod_body(name))
    response = core.create_namespaced_binding(NS, _binding(name, node), _preload_content=False)
    assert response.status == 201
    bound = core.read_namespaced_pod(name, NS)
    assert bound.spec.node_name == node
    assert _scheduled(bound) == "True"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_binding(NS, _binding(name, node), _preload_content=False)
    assert info.value.status == 409


def test_binding_a_missing_pod_is_404(core):
    name = unique("ghost")
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_binding(name, NS, _binding(name, "n1"),
                                           _preload_content=False)
    assert info.value.status == 404


def test_bound_pods_match_node_name_field_selector(core):
    name, node = unique("onnode"), unique("node")
    core.create_namespaced_pod(NS, pod_body(name))
    core.create_namespaced_pod_binding(name, NS, _binding(name, node), _preload_content=False)
    on_node = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
    assert [p.metadata.name for p in on_node.items] == [name]


# -- delete ----------------------------------------------------------------------------------

def test_delete_collection_with_label_selector(core):
    tag = unique("dc")
    doomed = [unique("doomed") for _ in range(3)]
    kept = unique("kept")
    for name in doomed:
        core.create_namespaced_pod(NS, pod_body(name, {"suite": tag, "fate": "doomed"}))
    core.create_namespaced_pod(NS, pod_body(kept, {"suite": tag, "fate": "kept"}))
    core.delete_collection_namespaced_pod(NS, label_selector=f"suite={tag},fate=doomed")
    remaining = wait_for(lambda: [p.metadata.name for p in core.list_namespaced_pod(
        NS, label_selector=f"suite={tag}").items] == [kept],
                         what="unscheduled pods to be deleted")
    assert remaining
    for name in doomed:
        with pytest.raises(ApiException) as info:
            core.read_namespaced_pod(name, NS)
        assert info.value.status == 404


def test_delete_returns_the_pod_and_second_delete_is_404(core):
    name = unique("del")
    core.create_namespaced_pod(NS, pod_body(name))
    deleted = core.delete_namespaced_pod(name, NS)
    assert deleted.metadata.name == name
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_pod(name, NS)
    assert info.value.status == 404


def test_delete_with_wrong_uid_precondition_is_409(core):
    name = unique("precond")
    core.create_namespaced_pod(NS, pod_body(name))
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_pod(name, NS, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=str(uuid.uuid4()))))
    assert info.value.status == 409
    assert core.read_namespaced_pod(name, NS).metadata.name == name


# -- concurrency -----------------------------------------------------------------------------

def test_concurrent_creates_of_one_name(core):
    name = unique("race")
    barrier = threading.Barrier(10)
    results: list = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait(timeout=WAIT)
        try:
            created = core.create_namespaced_pod(NS, pod_body(name))
            outcome = ("ok", created.metadata.uid)
        except ApiException as exc:
            outcome = (exc.status, status_of(exc).get("reason"))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 10, results
    successes = [r for r in results if r[0] == "ok"]
    assert len(successes) == 1, results
    assert sorted(r for r in results if r[0] != "ok") == [(409, "AlreadyExists")] * 9
    assert core.read_namespaced_pod(name, NS).metadata.uid == successes[0][1]


# -- nodes -----------------------------------------------------------------------------------

def test_node_create_read_and_status_patch(core):
    name = unique("node")
    node = client.V1Node(api_version="v1", kind="Node",
                         metadata=client.V1ObjectMeta(name=name, labels={"zone": "z1"}),
                         spec=client.V1NodeSpec(taints=[client.V1Taint(
                             key="dedicated", value="x", effect="NoSchedule")]))
    created = core.create_node(node)
    assert created.metadata.name == name
    assert created.metadata.namespace is None
    got = core.read_node(name)
    assert got.metadata.labels["zone"] == "z1"
    assert [t.key for t in got.spec.taints] == ["dedicated"]

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    patched = core.patch_node_status(name, {"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "3500m", "memory": "7Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": "10.1.2.3"}],
    }})
    assert patched.status.capacity["cpu"] == "4"
    assert patched.status.allocatable["memory"] == "7Gi"
    assert [(c.type, c.status) for c in patched.status.conditions] == [("Ready", "True")]
    # a status patch leaves the spec alone
    assert [t.key for t in patched.spec.taints] == ["dedicated"]

    # heartbeats: the Ready condition is merged by type
    patched = core.patch_node_status(name, {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
         "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
    assert [(c.type, c.status) for c in patched.status.conditions] == [("Ready", "False")]
    assert patched.status.addresses[0].address == "10.1.2.3"

    listed = core.list_node(label_selector="zone=z1")
    assert name in [n.metadata.name for n in listed.items]
    core.delete_node(name)
    wait_for(lambda: name not in [n.metadata.name for n in core.list_node().items],
             what="node deletion")


# -- leases ----------------------------------------------------------------------------------

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_lease_create_and_update(merge_client, coordination):
    name = unique("lease")
    ns = "kube-node-lease"
    renew = dt.datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone.utc)
    lease = client.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease",
                           metadata=client.V1ObjectMeta(name=name),
                           spec=client.V1LeaseSpec(holder_identity="holder-a",
                                                   lease_duration_seconds=40,
                                                   renew_time=renew, acquire_time=renew))
    created = coordination.create_namespaced_lease(ns, lease)
    assert created.spec.holder_identity == "holder-a"
    assert created.spec.lease_duration_seconds == 40
    assert created.spec.renew_time == renew  # microseconds survive the round trip

    raw = json.loads(coordination.read_namespaced_lease(name, ns,
                                                        _preload_content=False).data)
    assert raw["spec"]["renewTime"] == "2025-03-04T05:06:07.123456Z"
    assert MICRO_TIME.match(raw["spec"]["acquireTime"])

    current = coordination.read_namespaced_lease(name, ns)
    later = renew + dt.timedelta(seconds=10, microseconds=1)
    current.spec.holder_identity = "holder-b"
    current.spec.renew_time = later
    current.spec.lease_transitions = 1
    updated = coordination.replace_namespaced_lease(name, ns, current)
    assert updated.spec.holder_identity == "holder-b"
    assert updated.spec.renew_time == later
    assert updated.spec.lease_transitions == 1
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)

    # a competing candidate with the old resourceVersion loses
    created.spec.holder_identity = "holder-c"
    with pytest.raises(ApiException) as info:
        coordination.replace_namespaced_lease(name, ns, created)
    assert info.value.status == 409
    assert coordination.read_namespaced_lease(name, ns).spec.holder_identity == "holder-b"

    # renewals via merge patch, as kubelets do with a tiny body
    patched = client.CoordinationV1Api(merge_client).patch_namespaced_lease(
        name, ns, {"spec": {"renewTime": "2025-03-04T05:06:30.000001Z"}})
    assert patched.spec.renew_time == dt.datetime(2025, 3, 4, 5, 6, 30, 1,
                                                  tzinfo=dt.timezone.utc)
    listed = coordination.list_namespaced_lease(ns, field_selector=f"metadata.name={name}")
    assert [item.metadata.name for item in listed.items] == [name]
    coordination.delete_namespaced_lease(name, ns)
    with pytest.raises(ApiException) as info:
        coordination.read_namespaced_lease(name, ns)
    assert info.value.status == 404


# -- namespaces ------------------------------------------------------------------------------

def test_namespace_create_use_and_delete(core):
    ns = unique("ns")
    created = core.create_namespace(client.V1Namespace(
        api_version="v1", kind="Namespace", metadata=client.V1ObjectMeta(name=ns)))
    assert created.status.phase == "Active"
    assert created.metadata.labels["kubernetes.io/metadata.name"] == ns
    assert ns in [n.metadata.name for n in core.list_namespace().items]
    pod = core.create_namespaced_pod(ns, pod_body(unique("inside")))
    assert pod.metadata.namespace == ns

    core.delete_namespace(ns)

    def gone() -> bool:
        try:
            current = core.read_namespace(ns)
        except ApiException as exc:
            assert exc.status == 404
            return True
        assert current.status.phase == "Terminating"
        return False
    wait_for(gone, timeout=30, what=f"namespace {ns} to be finalized")
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod(pod.metadata.name, ns)
    assert info.value.status == 404


def test_create_in_terminating_or_missing_namespace_is_rejected(core):
    ns = unique("nons")
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(ns, pod_body(unique("orphan")))
    assert info.value.status == 404
    assert status_of(info.value)["message"] == f'namespaces "{ns}" not found'


# -- events ----------------------------------------------------------------------------------

def test_events_create_and_list_by_involved_object(core):
    pod_name = unique("evpod")
    other_name = unique("evother")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for target, reason in ((pod_name, "Scheduled"), (pod_name, "Pulled"), (other_name, "Other")):
        event = client.CoreV1Event(
            api_version="v1", kind="Event",
            metadata=client.V1ObjectMeta(name=f"{target}.{uuid.uuid4().hex[:12]}"),
            involved_object=client.V1ObjectReference(kind="Pod", name=target, namespace=NS,
                                                     api_version="v1"),
            reason=reason, message=f"{reason} happened", type="Normal", count=1,
            first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component="default-scheduler"))
        created = core.create_namespaced_event(NS, event)
        assert created.reason == reason
        assert created.involved_object.name == target

    # times are answered in RFC 3339 UTC ("Z"), whatever offset notation the client sent
    raw = json.loads(core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={other_name}", _preload_content=False).data)
    assert raw["items"][0]["firstTimestamp"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")

    listed = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={pod_name}")
    assert sorted(e.reason for e in listed.items) == ["Pulled", "Scheduled"]
    assert all(e.involved_object.kind == "Pod" for e in listed.items)
    assert listed.items[0].first_timestamp == now
    combined = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pod_name},reason=Pulled")
    assert [e.reason for e in combined.items] == ["Pulled"]
    kinds = core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.kind=Pod,involvedObject.name={other_name}")
    assert [e.reason for e in kinds.items] == ["Other"]


# -- objects without apiVersion and kind -----------------------------------------------------

def test_objects_without_kind_and_api_version_are_accepted(core):
    """Models built without api_version/kind (the usual way with this client) are accepted:
    the API server defaults both from the URL it was posted to."""
    ns = unique("bare")
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    assert created.metadata.name == ns
    assert created.kind == "Namespace" and created.api_version == "v1"
    bare = client.V1Pod(metadata=client.V1ObjectMeta(name=unique("bare")),
                        spec=client.V1PodSpec(containers=[client.V1Container(
                            name="c", image="busybox:1.36")]))
    pod = core.create_namespaced_pod(ns, bare)
    assert pod.kind == "Pod" and pod.api_version == "v1"
    core.delete_namespace(ns)
