"""The real kubectl: describe, label/annotate/patch, apply round trips, validation, selectors.

One server per module (``shared_server``); every test works in its own namespace.
"""

from __future__ import annotations

import json
import re

import pytest

from kubectl_util import get_json, jsonpath, new_namespace, pod_manifest, unique

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(shared_server):
    return new_namespace(shared_server)


def _create(server, ns, name, **kwargs):
    server.kubectl("create", "-n", ns, "-f", "-", input=pod_manifest(name, **kwargs))


def test_describe_pod_sections(shared_server, ns):
    srv = shared_server
    srv.kubectl("apply", "-n", ns, "-f", "-", input=pod_manifest(
        "described", labels={"app": "desc"},
        spec_extra={"nodeSelector": {"disk": "ssd"}},
        container_extra={"ports": [{"containerPort": 8080}]}))
    out = srv.kubectl("describe", "-n", ns, "pod", "described").stdout
    assert re.search(r"^Name:\s+described$", out, re.M), out
    assert re.search(rf"^Namespace:\s+{ns}$", out, re.M), out
    assert re.search(r"^Labels:\s+app=desc$", out, re.M), out
    assert re.search(r"^Status:\s+Pending$", out, re.M), out
    assert re.search(r"^Containers:\n  main:\n    Image:\s+nginx:1\.27$", out, re.M), out
    assert re.search(r"^\s+Port:\s+8080/TCP$", out, re.M), out
    assert re.search(r"^Node-Selectors:\s+disk=ssd$", out, re.M), out
    assert re.search(r"^QoS Class:\s+BestEffort$", out, re.M), out
    assert re.search(r"^Events:", out, re.M), out


def test_label_and_annotate(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "lbl", labels={"app": "web"})
    assert srv.kubectl("label", "-n", ns, "pod", "lbl", "tier=front").stdout.strip() == \
        "pod/lbl labeled"
    refused = srv.kubectl("label", "-n", ns, "pod", "lbl", "app=api", check=False)
    assert refused.returncode != 0
    assert "--overwrite is false" in refused.stderr
    srv.kubectl("label", "-n", ns, "pod", "lbl", "app=api", "--overwrite")
    assert get_json(srv, "-n", ns, "pod", "lbl")["metadata"]["labels"] == {
        "app": "api", "tier": "front"}
    srv.kubectl("label", "-n", ns, "pod", "lbl", "tier-")
    assert jsonpath(srv, "-n", ns, "pod", "lbl", path="{.metadata.labels}") == '{"app":"api"}'

    assert srv.kubectl("annotate", "-n", ns, "pod", "lbl", "note=first").stdout.strip() == \
        "pod/lbl annotated"
    refused = srv.kubectl("annotate", "-n", ns, "pod", "lbl", "note=second", check=False)
    assert refused.returncode != 0 and "--overwrite is false" in refused.stderr
    srv.kubectl("annotate", "-n", ns, "pod", "lbl", "note=second", "--overwrite")
    assert jsonpath(srv, "-n", ns, "pod", "lbl", path="{.metadata.annotations.note}") == "second"
    srv.kubectl("annotate", "-n", ns, "pod", "lbl", "note-")
    assert "note" not in (get_json(srv, "-n", ns, "pod", "lbl")["metadata"].get("annotations")
                          or {})


def test_patch_strategic_merge_and_json(shared_server, ns):
    srv = shared_server
    srv.kubectl("create", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pt", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"},
                                {"name": "side", "image": "busybox:1.36"}]}}))

    # Default type is strategic: containers merge by name, the other container is kept.
    out = srv.kubectl("patch", "-n", ns, "pod", "pt", "-p",
                      '{"spec":{"containers":[{"name":"side","image":"busybox:1.37"}]}}').stdout
    assert out.strip() == "pod/pt patched"
    assert jsonpath(srv, "-n", ns, "pod", "pt",
                    path="{.spec.containers[*].name}={.spec.containers[*].image}") == \
        "main side=nginx:1.27 busybox:1.37"

    srv.kubectl("patch", "-n", ns, "pod", "pt", "--type=strategic", "-p",
                '{"metadata":{"labels":{"b":"2"}}}')
    assert jsonpath(srv, "-n", ns, "pod", "pt", path="{.metadata.labels}") == '{"a":"1","b":"2"}'

    # merge: null deletes a key.
    srv.kubectl("patch", "-n", ns, "pod", "pt", "--type=merge", "-p",
                '{"metadata":{"labels":{"a":null,"c":"3"},"annotations":{"x":"y"}}}')
    assert jsonpath(srv, "-n", ns, "pod", "pt", path="{.metadata.labels}") == '{"b":"2","c":"3"}'
    assert jsonpath(srv, "-n", ns, "pod", "pt", path="{.metadata.annotations.x}") == "y"

    # json patch: replace by index, add, remove.
    srv.kubectl("patch", "-n", ns, "pod", "pt", "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.28"},
        {"op": "add", "path": "/metadata/labels/d", "value": "4"},
        {"op": "remove", "path": "/metadata/labels/b"}]))
    assert jsonpath(srv, "-n", ns, "pod", "pt", path="{.spec.containers[0].image}") == \
        "nginx:1.28"
    assert jsonpath(srv, "-n", ns, "pod", "pt", path="{.metadata.labels}") == '{"c":"3","d":"4"}'

    # A failing json-patch test op is rejected and changes nothing.
    bad = srv.kubectl("patch", "-n", ns, "pod", "pt", "--type=json", "-p", json.dumps([
        {"op": "test", "path": "/metadata/labels/c", "value": "nope"},
        {"op": "add", "path": "/metadata/labels/e", "value": "5"}]), check=False)
    assert bad.returncode != 0, bad.stdout
    assert jsonpath(srv, "-n", ns, "pod", "pt", path="{.metadata.labels}") == '{"c":"3","d":"4"}'


def test_reapply_configured_unchanged_and_forbidden(shared_server, ns):
    srv = shared_server
    manifest = pod_manifest("app", namespace=ns, image="nginx:1.27",
                            container_extra={"ports": [{"containerPort": 80}]})
    assert srv.kubectl("apply", "-f", "-", input=manifest).stdout.strip() == "pod/app created"
    assert srv.kubectl("apply", "-f", "-", input=manifest).stdout.strip() == "pod/app unchanged"

    changed = pod_manifest("app", namespace=ns, image="nginx:1.28",
                           container_extra={"ports": [{"containerPort": 80}]})
    assert srv.kubectl("apply", "-f", "-", input=changed).stdout.strip() == "pod/app configured"
    assert jsonpath(srv, "-n", ns, "pod", "app", path="{.spec.containers[0].image}") == \
        "nginx:1.28"
    assert srv.kubectl("apply", "-f", "-", input=changed).stdout.strip() == "pod/app unchanged"

    port = pod_manifest("app", namespace=ns, image="nginx:1.28",
                        container_extra={"ports": [{"containerPort": 81}]})
    result = srv.kubectl("apply", "-f", "-", input=port, check=False)
    assert result.returncode != 0, result.stdout
    assert "pod updates may not change fields other than" in result.stderr, result.stderr
    assert "Forbidden" in result.stderr, result.stderr
    assert jsonpath(srv, "-n", ns, "pod", "app",
                    path="{.spec.containers[0].ports[0].containerPort}") == "80"


def test_strict_validation_rejects_unknown_fields(shared_server, ns):
    srv = shared_server
    body = json.loads(pod_manifest("strict"))
    body["spec"]["containerz"] = []
    result = srv.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert "BadRequest" in result.stderr, result.stderr
    assert 'strict decoding error: unknown field "spec.containerz"' in result.stderr
    assert "NotFound" in srv.kubectl("get", "-n", ns, "pod", "strict", check=False).stderr

    warned = srv.kubectl("create", "-n", ns, "--validate=warn", "-f", "-",
                         input=json.dumps(body))
    assert warned.stdout.strip() == "pod/strict created"
    assert "Warning:" in warned.stderr and "spec.containerz" in warned.stderr, warned.stderr
    assert "containerz" not in srv.kubectl("get", "-n", ns, "pod", "strict", "-o", "json").stdout


@pytest.mark.parametrize("field,value", [
    ("runtimeClassName", "gvisor"),
    ("topologySpreadConstraints", [{"maxSkew": 1, "topologyKey": "zone",
                                    "whenUnsatisfiable": "DoNotSchedule"}]),
])
def test_stored_but_unimplemented_field_warns(shared_server, ns, field, value):
    srv = shared_server
    name = unique("unimpl")
    result = srv.kubectl("create", "-n", ns, "-f", "-",
                         input=pod_manifest(name, spec_extra={field: value}))
    assert result.stdout.strip() == f"pod/{name} created"
    assert "Warning:" in result.stderr and f"spec.{field}" in result.stderr, result.stderr
    assert get_json(srv, "-n", ns, "pod", name)["spec"][field] == value


def test_selectors_and_listing_flavours(shared_server, ns):
    srv = shared_server
    _create(srv, ns, "sel-x1", labels={"app": "x"})
    _create(srv, ns, "sel-x2", labels={"app": "x", "tier": "db"})
    _create(srv, ns, "sel-y", labels={"app": "y"})

    def names(*args):
        return srv.kubectl("get", "pods", "-n", ns, *args, "-o", "name").stdout.split()

    assert names("-l", "app=x") == ["pod/sel-x1", "pod/sel-x2"]
    assert names("-l", "app!=x") == ["pod/sel-y"]
    assert names("-l", "tier") == ["pod/sel-x2"]
    assert names("-l", "!tier") == ["pod/sel-x1", "pod/sel-y"]
    assert names("-l", "app in (y,z)") == ["pod/sel-y"]
    assert names("--field-selector", "status.phase=Pending") == [
        "pod/sel-x1", "pod/sel-x2", "pod/sel-y"]
    assert names("--field-selector", "status.phase!=Pending") == []
    assert names("--field-selector", "metadata.name=sel-y") == ["pod/sel-y"]
    empty = srv.kubectl("get", "pods", "-n", ns, "-l", "app=none")
    assert empty.stdout == "" and f"No resources found in {ns} namespace." in empty.stderr

    # -A adds a NAMESPACE column and spans namespaces.
    lines = srv.kubectl("get", "pods", "-A").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    mine = [line.split() for line in lines[1:] if line.split()[0] == ns]
    assert [cols[1] for cols in mine] == ["sel-x1", "sel-x2", "sel-y"]

    lines = srv.kubectl("get", "pods", "-n", ns, "--show-labels").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    labels = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    assert labels == {"sel-x1": "app=x", "sel-x2": "app=x,tier=db", "sel-y": "app=y"}

    lines = srv.kubectl("get", "pods", "-n", ns, "-L", "tier").stdout.splitlines()
    assert lines[0].split()[-1] == "TIER"

    # `all` is a category; pods are in it. kubectl adds the "pod/" prefix only when the
    # answer mixes several kinds, which it does not here.
    lines = srv.kubectl("get", "all", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sorted(line.split()[0].removeprefix("pod/") for line in lines[1:]) == [
        "sel-x1", "sel-x2", "sel-y"]
    assert srv.kubectl("get", "all", "-n", ns, "-o", "name").stdout.split() == [
        "pod/sel-x1", "pod/sel-x2", "pod/sel-y"]

    po = srv.kubectl("get", "po", "-n", ns).stdout.splitlines()
    assert po[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[0] for line in po[1:]] == ["sel-x1", "sel-x2", "sel-y"]
    one = srv.kubectl("get", "po", "sel-y", "-n", ns).stdout.splitlines()
    assert one[1].split()[:3] == ["sel-y", "0/1", "Pending"]


def test_explain(shared_server):
    out = shared_server.kubectl("explain", "pod.spec.hostAliases").stdout
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
    assert re.search(r"^\s+ip\s+<string>", out, re.M), out
    assert re.search(r"^\s+hostnames\s+<\[\]string>", out, re.M), out

    out = shared_server.kubectl("explain", "pod.spec.containers").stdout
    assert re.search(r"FIELD:\s+containers <\[\]Container>", out), out
    for field in ("image", "name", "ports", "command", "env"):
        assert re.search(rf"^\s+{field}\s+<", out, re.M), (field, out)

    missing = shared_server.kubectl("explain", "pod.spec.nosuchfield", check=False)
    assert missing.returncode != 0


def test_auth_can_i(shared_server):
    assert shared_server.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert shared_server.kubectl("auth", "can-i", "list", "nodes").stdout.strip() == "yes"
    assert shared_server.kubectl("auth", "can-i", "delete", "pods", "-A").stdout.strip() == "yes"


def test_api_resources(shared_server):
    lines = shared_server.kubectl("api-resources").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {}
    for line in lines[1:]:
        cols = line.split()
        if len(cols) == 4:  # no short names
            cols.insert(1, "")
        rows[(cols[0], cols[2])] = cols[1:]  # a name may be served by several groups
    expected = {
        "pods": ["po", "v1", "true", "Pod"],
        "nodes": ["no", "v1", "false", "Node"],
        "namespaces": ["ns", "v1", "false", "Namespace"],
        "events": ["ev", "v1", "true", "Event"],
        "leases": ["", "coordination.k8s.io/v1", "true", "Lease"],
        "selfsubjectaccessreviews": ["", "authorization.k8s.io/v1", "false",
                                     "SelfSubjectAccessReview"],
    }
    expected_metrics = {"pods": ["", "metrics.k8s.io/v1beta1", "true", "PodMetrics"],
                        "nodes": ["", "metrics.k8s.io/v1beta1", "false", "NodeMetrics"]}
    for name, cols in [*expected.items(), *expected_metrics.items()]:
        assert rows.get((name, cols[1])) == cols, (name, rows.get((name, cols[1])))

    namespaced = shared_server.kubectl("api-resources", "--namespaced=true", "-o", "name")
    assert "pods" in namespaced.stdout.split() and "nodes" not in namespaced.stdout.split()


def test_server_side_apply_is_unsupported(shared_server, ns):
    result = shared_server.kubectl("apply", "--server-side", "-n", ns, "-f", "-",
                                   input=pod_manifest("ssa"), check=False)
    assert result.returncode != 0, result.stdout
    assert "Server-side apply not available on the server" in result.stderr, result.stderr
    assert "not supported" in result.stderr and "--server-side" in result.stderr, result.stderr
    assert "NotFound" in shared_server.kubectl("get", "-n", ns, "pod", "ssa",
                                               check=False).stderr

    # The raw answer behind that message: 415 UnsupportedMediaType as a Status.
    import kubernetes
    api = kubernetes.client.CoreV1Api(shared_server.api_client())
    with pytest.raises(kubernetes.client.ApiException) as info:
        api.api_client.call_api(
            f"/api/v1/namespaces/{ns}/pods/ssa", "PATCH",
            header_params={"Content-Type": "application/apply-patch+yaml",
                           "Accept": "application/json"},
            query_params=[("fieldManager", "test")],
            body=json.loads(pod_manifest("ssa")), auth_settings=["BearerToken"],
            _preload_content=False)
    assert info.value.status == 415
    status = json.loads(info.value.body)
    assert status["kind"] == "Status" and status["reason"] == "UnsupportedMediaType"
