"""Table-driven tests of podling.api.patch: merge, JSON and strategic merge patches."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders import make_pod

from podling.api import schema
from podling.api.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch

NODE = schema.NODE


def container(name: str, image: str = "nginx", **fields: Any) -> dict:
    return {"name": name, "image": image, **fields}


def pod(*containers: dict, labels: dict | None = None, **spec: Any) -> dict:
    """A small Pod; ``spec`` entries land in ``.spec`` next to the containers."""
    builder = make_pod("p").bare().set_spec(containers=list(containers), **spec)
    if labels is not None:
        builder.labels(**labels)
    return builder.build()


def names(obj: dict, field: str = "containers") -> list[str]:
    return [c["name"] for c in obj["spec"][field]]


def smp(target: dict, patch: dict, type_name: str = schema.POD) -> dict:
    """strategic_merge_patch that also asserts neither input was modified."""
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    result = strategic_merge_patch(target, patch, type_name)
    assert target == before_target and patch == before_patch
    return result


def no_directives(value: Any) -> bool:
    if isinstance(value, dict):
        return all(not k.startswith("$") and no_directives(v) for k, v in value.items())
    if isinstance(value, list):
        return all(no_directives(v) for v in value)
    return True


# ----------------------------------------------------------------- JSON merge patch (RFC 7386)

@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_json_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert json_merge_patch(target, patch) == expected


def test_json_merge_patch_removes_a_label_and_keeps_inputs() -> None:
    target = pod(container("main"), labels={"env": "prod", "tier": "front"})
    patch = {"metadata": {"labels": {"env": None}}}
    saved_target, saved_patch = copy.deepcopy(target), copy.deepcopy(patch)
    result = json_merge_patch(target, patch)
    assert result["metadata"]["labels"] == {"tier": "front"}
    assert target == saved_target and patch == saved_patch
    result["spec"]["containers"][0]["image"] = "changed"
    assert target == saved_target


def test_json_merge_patch_replaces_lists_whole() -> None:
    target = pod(container("main"), container("side"))
    result = json_merge_patch(target, {"spec": {"containers": [container("only")]}})
    assert names(result) == ["only"]


# ----------------------------------------------------------------- JSON patch (RFC 6902)

DOC = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, "obj": {"x": 1}}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/baz", "value": "qux"}], {**DOC, "baz": "qux"}),
        ([{"op": "add", "path": "/foo/1", "value": "q"}], {**DOC, "foo": ["bar", "q", "baz"]}),
        ([{"op": "add", "path": "/foo/-", "value": "q"}], {**DOC, "foo": ["bar", "baz", "q"]}),
        ([{"op": "add", "path": "/foo/2", "value": "q"}], {**DOC, "foo": ["bar", "baz", "q"]}),
        ([{"op": "add", "path": "/obj", "value": None}], {**DOC, "obj": None}),
        ([{"op": "add", "path": "", "value": [1]}], [1]),
        ([{"op": "remove", "path": "/foo/0"}], {**DOC, "foo": ["baz"]}),
        ([{"op": "remove", "path": "/a~1b"}], {k: v for k, v in DOC.items() if k != "a/b"}),
        ([{"op": "remove", "path": "/m~0n"}], {k: v for k, v in DOC.items() if k != "m~n"}),
        ([{"op": "replace", "path": "/", "value": 5}], {**DOC, "": 5}),
        ([{"op": "replace", "path": "/foo/1", "value": "z"}], {**DOC, "foo": ["bar", "z"]}),
        ([{"op": "replace", "path": "", "value": {}}], {}),
        ([{"op": "move", "from": "/obj/x", "path": "/y"}], {**DOC, "obj": {}, "y": 1}),
        ([{"op": "move", "from": "/foo/0", "path": "/foo/1"}], {**DOC, "foo": ["baz", "bar"]}),
        ([{"op": "move", "from": "/obj", "path": "/obj"}], DOC),
        ([{"op": "copy", "from": "/obj", "path": "/o2"}], {**DOC, "o2": {"x": 1}}),
        ([{"op": "test", "path": "/foo", "value": ["bar", "baz"]}], DOC),
        ([{"op": "test", "path": "/obj/x", "value": 1.0}], DOC),
        ([{"op": "test", "path": "/m~0n", "value": 8}], DOC),
        ([], DOC),
    ],
)
def test_json_patch_operations(ops: list, expected: Any) -> None:
    saved_doc, saved_ops = copy.deepcopy(DOC), copy.deepcopy(ops)
    assert json_patch(DOC, ops) == expected
    assert DOC == saved_doc and ops == saved_ops


def test_json_patch_copy_does_not_alias() -> None:
    result = json_patch(DOC, [{"op": "copy", "from": "/obj", "path": "/o2"},
                              {"op": "add", "path": "/o2/y", "value": 2}])
    assert result["obj"] == {"x": 1} and result["o2"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),
        (["add"], 400),
        ([{"path": "/a", "value": 1}], 400),
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ([{"op": "add", "path": "/a"}], 400),
        ([{"op": "add", "path": 3, "value": 1}], 400),
        ([{"op": "add", "path": "a", "value": 1}], 400),
        ([{"op": "add", "path": "/a~2", "value": 1}], 400),
        ([{"op": "move", "path": "/a"}], 400),
        ([{"op": "test", "path": "/a"}], 400),
        ([{"op": "add", "path": "/missing/x", "value": 1}], 422),
        ([{"op": "add", "path": "/foo/3", "value": 1}], 422),
        ([{"op": "add", "path": "/foo/01", "value": 1}], 422),
        ([{"op": "add", "path": "/foo/x", "value": 1}], 422),
        ([{"op": "add", "path": "/obj/x/y", "value": 1}], 422),
        ([{"op": "remove", "path": "/nope"}], 422),
        ([{"op": "remove", "path": "/foo/2"}], 422),
        ([{"op": "remove", "path": "/foo/-"}], 422),
        ([{"op": "remove", "path": ""}], 422),
        ([{"op": "replace", "path": "/nope", "value": 1}], 422),
        ([{"op": "move", "from": "/nope", "path": "/x"}], 422),
        ([{"op": "move", "from": "/obj", "path": "/obj/x"}], 422),
        ([{"op": "copy", "from": "/nope", "path": "/x"}], 422),
        ([{"op": "test", "path": "/obj/x", "value": 2}], 422),
        ([{"op": "test", "path": "/obj/x", "value": True}], 422),
        ([{"op": "test", "path": "/obj", "value": {"x": "1"}}], 422),
        ([{"op": "test", "path": "/nope", "value": None}], 422),
    ],
)
def test_json_patch_errors(ops: Any, code: int) -> None:
    with pytest.raises(PatchError) as err:
        json_patch(DOC, ops)
    assert err.value.code == code
    assert err.value.message


def test_json_patch_is_all_or_nothing() -> None:
    target = {"a": 1}
    with pytest.raises(PatchError):
        json_patch(target, [{"op": "add", "path": "/b", "value": 2},
                            {"op": "test", "path": "/a", "value": 9}])
    assert target == {"a": 1}


def test_json_patch_malformed_op_rejected_before_applying() -> None:
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, [{"op": "remove", "path": "/nope"}, {"op": "bogus", "path": "/"}])
    assert err.value.code == 400


# ----------------------------------------------------------------- strategic merge patch

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def test_strategic_kubectl_reapply_changes_only_the_named_container() -> None:
    target = pod(container("main", "nginx:1.25"), container("side", "busybox", args=["sleep"]),
                 labels={"app": "web"})
    patch = {
        "metadata": {"annotations": {LAST_APPLIED: "{...}"}, "labels": {"tier": "front"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
            "containers": [{"image": "nginx:1.27", "name": "main"}],
        },
    }
    result = smp(target, patch)
    assert result["spec"]["containers"] == [
        container("main", "nginx:1.27"), container("side", "busybox", args=["sleep"])]
    assert result["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert result["metadata"]["annotations"] == {LAST_APPLIED: "{...}"}
    assert no_directives(result)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        pytest.param(pod(container("a"), labels={"env": "prod", "tier": "front"}),
                     {"metadata": {"labels": {"env": None}}},
                     pod(container("a"), labels={"tier": "front"}), id="null-removes-label"),
        pytest.param(pod(container("a")), {"metadata": {"labels": {"gone": None}}},
                     {**pod(container("a")), "metadata": {**pod()["metadata"], "labels": {}}},
                     id="null-for-absent-key-is-not-stored"),
        pytest.param(pod(container("a"), nodeSelector={"disk": "ssd", "zone": "a"}),
                     {"spec": {"nodeSelector": {"$patch": "replace", "gpu": "yes"}}},
                     pod(container("a"), nodeSelector={"gpu": "yes"}), id="map-replace"),
        pytest.param(pod(container("a"), nodeSelector={"disk": "ssd"}),
                     {"spec": {"nodeSelector": {"$patch": "delete"}}},
                     pod(container("a")), id="map-delete"),
        pytest.param(pod(container("a"), nodeSelector={"disk": "ssd"}),
                     {"spec": {"nodeSelector": {"$patch": "merge", "x": "y"}}},
                     pod(container("a"), nodeSelector={"disk": "ssd", "x": "y"}), id="map-merge"),
        pytest.param(pod(container("a"), container("b")),
                     {"spec": {"containers": [{"name": "c", "image": "redis"}]}},
                     pod(container("a"), container("b"), container("c", "redis")),
                     id="keyed-list-appends-new"),
        pytest.param(pod(container("a"), container("b")),
                     {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}},
                     pod(container("b")), id="keyed-list-element-delete"),
        pytest.param(pod(container("a"), container("b")),
                     {"spec": {"containers": [{"name": "zz", "$patch": "delete"}]}},
                     pod(container("a"), container("b")), id="delete-of-absent-element"),
        pytest.param(pod(container("a"), container("b")),
                     {"spec": {"containers": [{"$patch": "replace"}, container("c")]}},
                     pod(container("c")), id="keyed-list-replace"),
        pytest.param(pod(container("a", command=["x"])),
                     {"spec": {"containers": [{"name": "a", "command": ["y", "z"]}]}},
                     pod(container("a", command=["y", "z"])), id="atomic-list-replaced"),
        pytest.param(pod(container("a", imagePullPolicy="Always")),
                     {"spec": {"containers": [{"name": "a", "imagePullPolicy": None}]}},
                     pod(container("a")), id="null-inside-keyed-element"),
        pytest.param(pod(container("a", env=[{"name": "X", "value": "1"}])),
                     {"spec": {"containers": [{"name": "a", "env": [
                         {"name": "Y", "value": "2"}, {"name": "X", "value": "3"}]}]}},
                     pod(container("a", env=[{"name": "X", "value": "3"},
                                             {"name": "Y", "value": "2"}])),
                     id="nested-keyed-list-env"),
        pytest.param(pod(container("a", ports=[{"containerPort": 80, "protocol": "TCP"}])),
                     {"spec": {"containers": [{"name": "a", "ports": [
                         {"containerPort": 80, "name": "http"}]}]}},
                     pod(container("a", ports=[
                         {"containerPort": 80, "protocol": "TCP", "name": "http"}])),
                     id="integer-merge-key"),
        pytest.param(pod(container("a"), tolerations=[{"key": "k1"}]),
                     {"spec": {"tolerations": [{"key": "k2"}]}},
                     pod(container("a"), tolerations=[{"key": "k2"}]), id="atomic-object-list"),
        pytest.param({"kind": "Pod", "x-custom": {"a": 1, "l": [1, 2]}},
                     {"x-custom": {"b": 2, "l": [3]}},
                     {"kind": "Pod", "x-custom": {"a": 1, "b": 2, "l": [3]}},
                     id="unknown-fields-generic"),
    ],
)
def test_strategic_merge(target: dict, patch: dict, expected: dict) -> None:
    result = smp(target, patch)
    assert result == expected
    assert no_directives(result)


def test_strategic_finalizers_union_and_delete_from_primitive_list() -> None:
    target = {"metadata": {"name": "p", "finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"finalizers": ["d", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}}
    assert smp(target, patch)["metadata"]["finalizers"] == ["a", "c", "d"]


def test_strategic_pod_cidrs_is_a_scalar_set_on_nodes() -> None:
    target = {"spec": {"podCIDRs": ["10.0.0.0/24"]}}
    patch = {"spec": {"podCIDRs": ["10.0.1.0/24", "10.0.0.0/24"]}}
    assert smp(target, patch, NODE)["spec"]["podCIDRs"] == ["10.0.0.0/24", "10.0.1.0/24"]


def test_strategic_owner_references_merge_by_uid() -> None:
    owner = {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u1"}
    target = {"metadata": {"ownerReferences": [owner]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True},
                                              {"uid": "u2", "name": "m"}]}}
    assert smp(target, patch)["metadata"]["ownerReferences"] == [
        {**owner, "controller": True}, {"uid": "u2", "name": "m"}]


def test_strategic_node_conditions_merge_by_type() -> None:
    target = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                        {"type": "DiskPressure", "status": "False"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert smp(target, patch, NODE)["status"]["conditions"] == [
        {"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]


@pytest.mark.parametrize(
    ("existing", "order", "patched", "expected"),
    [
        (["a", "b"], ["b", "a"], [], ["b", "a"]),
        (["a", "b"], ["a", "x", "b"], ["x"], ["a", "x", "b"]),
        (["a", "b", "c"], ["c", "a"], [], ["b", "c", "a"]),
        (["a", "b"], ["x", "a", "b"], ["x"], ["x", "a", "b"]),
        (["a", "b", "c"], ["c", "b", "a"], ["b"], ["c", "b", "a"]),
        (["a"], ["a", "b"], ["b", "c"], ["a", "b", "c"]),
    ],
)
def test_strategic_set_element_order(
    existing: list[str], order: list[str], patched: list[str], expected: list[str]
) -> None:
    target = pod(*(container(n) for n in existing))
    spec: dict[str, Any] = {"$setElementOrder/containers": [{"name": n} for n in order]}
    if patched:
        spec["containers"] = [{"name": n, "image": "new"} for n in patched]
    result = smp(target, {"spec": spec})
    assert names(result) == expected
    assert no_directives(result)


def test_strategic_set_element_order_on_scalar_list() -> None:
    target = {"metadata": {"finalizers": ["a", "b"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}
    assert smp(target, patch)["metadata"]["finalizers"] == ["b", "c", "a"]


def test_strategic_retain_keys_drops_unlisted_fields() -> None:
    target = pod(container("a"), volumes=[{"name": "v", "emptyDir": {}}])
    patch = {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"],
                                   "hostPath": {"path": "/data"}}]}}
    result = smp(target, patch)
    assert result["spec"]["volumes"] == [{"name": "v", "hostPath": {"path": "/data"}}]


def test_strategic_directives_in_new_subtrees_never_leak() -> None:
    target = pod(container("a"))
    patch = {"spec": {
        "nodeSelector": {"$patch": "replace", "k": "v", "gone": None},
        "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
        "initContainers": [{"name": "i", "image": "x", "env": [{"name": "E", "$patch": "delete"}],
                            "$setElementOrder/env": [{"name": "E"}]}],
    }}
    result = smp(target, patch)
    assert no_directives(result)
    assert result["spec"]["nodeSelector"] == {"k": "v"}
    assert result["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert result["spec"]["initContainers"] == [{"name": "i", "image": "x", "env": []}]


def test_strategic_top_level_directives() -> None:
    target = pod(container("a"), labels={"x": "y"})
    assert smp(target, {"$patch": "delete"}) == {}
    assert smp(target, {"$patch": "replace", "kind": "Pod"}) == {"kind": "Pod"}


def test_strategic_result_shares_nothing_with_inputs() -> None:
    target = pod(container("a"))
    patch = {"spec": {"containers": [{"name": "b", "image": "i", "args": ["1"]}]}}
    result = smp(target, patch)
    result["spec"]["containers"][0]["image"] = "mutated"
    result["spec"]["containers"][1]["args"].append("2")
    assert target == pod(container("a"))
    assert patch["spec"]["containers"][0]["args"] == ["1"]


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        pytest.param({"spec": {"nodeSelector": {"$patch": "explode"}}}, 400, id="bad-map-directive"),
        pytest.param({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}, 400,
                     id="merge-directive-in-list"),
        pytest.param({"spec": {"containers": [{"name": "a", "$patch": "nope"}]}}, 400,
                     id="bad-list-directive"),
        pytest.param({"spec": {"containers": [{"$patch": "delete"}]}}, 400,
                     id="delete-without-merge-key"),
        pytest.param({"spec": {"containers": [{"image": "x"}]}}, 400, id="element-without-key"),
        pytest.param({"spec": {"containers": ["a"]}}, 400, id="scalar-in-keyed-list"),
        pytest.param({"spec": {"$setElementOrder/containers": "a"}}, 400, id="order-not-list"),
        pytest.param({"spec": {"$setElementOrder/containers": [{"image": "a"}]}}, 400,
                     id="order-without-key"),
        pytest.param({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400,
                     id="delete-from-list-not-list"),
        pytest.param({"spec": {"$retainKeys": "name"}}, 400, id="retain-keys-not-list"),
        pytest.param({"spec": {"$retainKeys": ["containers"], "hostname": "h"}}, 422,
                     id="patch-field-outside-retain-keys"),
        pytest.param({"spec": {"$frobnicate": 1}}, 400, id="unknown-directive"),
    ],
)
def test_strategic_errors(patch: dict, code: int) -> None:
    target = pod(container("a"))
    with pytest.raises(PatchError) as err:
        smp(target, patch)
    assert err.value.code == code
    assert err.value.message


@pytest.mark.parametrize("patch", [[], "x", None, 3])
def test_strategic_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(pod(container("a")), patch, schema.POD)  # type: ignore[arg-type]
    assert err.value.code == 400
