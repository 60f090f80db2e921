"""Strict decoding: parsing, duplicates, unknown fields, type errors and their wording."""

from __future__ import annotations

import json

import pytest
from builders import make_pod

from podling.api import decode
from podling.api.decode import DecodeError

POD = "io.k8s.api.core.v1.Pod"
NODE = "io.k8s.api.core.v1.Node"
LEASE = "io.k8s.api.coordination.v1.Lease"


def pod(**spec: object) -> dict:
    """What a user writes: pod p, container c (nginx), ``spec`` on top."""
    return make_pod("p", namespace=None).container("c", "nginx").bare().set_spec(**spec).build()


# ----------------------------------------------------------------------------- JSON


def test_json_plain_body_has_no_duplicates() -> None:
    value, dups = decode.decode_json(json.dumps(pod()).encode())
    assert value == pod()
    assert dups == []


def test_json_duplicates_are_reported_by_path_and_last_value_wins() -> None:
    body = (b'{"metadata":{"name":"a","name":"b","labels":{"x":"1","x":"2"}},'
            b'"spec":{"containers":[{"name":"c","image":"i","image":"j"}]}}')
    value, dups = decode.decode_json(body)
    assert value["metadata"]["name"] == "b"
    assert value["spec"]["containers"][0]["image"] == "j"
    assert dups == ["metadata.name", "metadata.labels.x", "spec.containers[0].image"]


def test_json_duplicate_inside_a_replaced_value_is_not_misattributed() -> None:
    body = b'{"a":{"x":1,"x":2},"a":{"y":1},"b":{"z":1}}'
    value, dups = decode.decode_json(body)
    assert value == {"a": {"y": 1}, "b": {"z": 1}}
    assert dups == ["a"]


@pytest.mark.parametrize("body, fragment", [
    (b'{"a": 1,}', "line 1 column 9"),
    (b'{"a": 1', "line 1"),
    (b"", "line 1 column 1"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": "\xff"}', "UTF-8"),
])
def test_json_malformed_bodies_raise_with_position(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode.decode_json(body)
    assert fragment in info.value.message


# ----------------------------------------------------------------------------- YAML


def test_yaml_document_decodes_like_kubernetes_yaml_to_json() -> None:
    body = b"""
apiVersion: v1
kind: Pod
metadata:
  name: p
  creationTimestamp: 2024-01-01T00:00:00Z
  labels: {on: yes, 1: x}
spec:
  terminationGracePeriodSeconds: 30.0
  containers: [{name: c, image: nginx}]
"""
    value, dups = decode.decode_yaml(body)
    assert dups == []
    assert value["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    assert value["metadata"]["labels"] == {"true": True, "1": "x"}
    assert value["spec"]["terminationGracePeriodSeconds"] == 30
    assert isinstance(value["spec"]["terminationGracePeriodSeconds"], int)


def test_yaml_duplicate_keys_are_reported() -> None:
    body = b"metadata:\n  name: a\n  name: b\nspec:\n  containers:\n  - name: c\n    name: d\n"
    value, dups = decode.decode_yaml(body)
    assert value["metadata"]["name"] == "b"
    assert dups == ["metadata.name", "spec.containers[0].name"]


def test_yaml_merge_keys_apply_without_counting_as_duplicates() -> None:
    body = b"base: &b {x: 1, y: 2}\nobj:\n  <<: *b\n  y: 3\n"
    value, dups = decode.decode_yaml(body)
    assert value["obj"] == {"x": 1, "y": 3}
    assert dups == []


def test_yaml_empty_body_is_null() -> None:
    assert decode.decode_yaml(b"") == (None, [])


@pytest.mark.parametrize("body, fragment", [
    (b"a: 1\n---\nb: 2\n", "exactly one document"),
    (b"a: !!binary aGVsbG8=\n", "JSON-compatible"),
    (b"a: !!set {x}\n", "JSON-compatible"),
    (b"a: !custom 1\n", "JSON-compatible"),
    (b"a: .inf\n", "no JSON equivalent"),
    (b"? [1, 2]\n: x\n", "scalars"),
    (b"a: &x [*x]\n", "recursive"),
    (b"a: b: c\n", "line 1"),
    (b"a:\n  - x\n - y\n", "line"),
])
def test_yaml_rejections_are_clear(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode.decode_yaml(body)
    assert fragment in info.value.message


def nested(levels: int, inner: str = "1") -> str:
    return '{"a":' * levels + inner + "}" * levels


@pytest.mark.parametrize("body, decoder, message", [
    (nested(decode.MAX_DEPTH + 1), decode.decode_json,
     "invalid JSON: exceeded max depth of 100"),
    ("[" * 100_000 + "]" * 100_000, decode.decode_json,  # past Python's own recursion limit
     "invalid JSON: exceeded max depth of 100"),
    (nested(decode.MAX_DEPTH + 1), decode.decode_yaml,
     "error converting YAML to JSON: yaml: exceeded max depth of 100"),
    ("a: " + "[" * 100_000, decode.decode_yaml,
     "error converting YAML to JSON: yaml: exceeded max depth of 100"),
    ("a: &x [1]\nb: " + "[" * 99 + "*x" + "]" * 99, decode.decode_yaml,  # through an alias
     "error converting YAML to JSON: yaml: exceeded max depth of 100"),
])
def test_bodies_nested_too_deeply_are_refused(body: str, decoder, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decoder(body.encode())
    assert info.value.message == message


def test_bodies_nested_to_the_limit_decode() -> None:
    for decoder in (decode.decode_json, decode.decode_yaml):
        value, _ = decoder(nested(decode.MAX_DEPTH - 1).encode())
        for _ in range(decode.MAX_DEPTH - 1):
            value = value["a"]
        assert value == 1


@pytest.mark.parametrize("body", [b"key: \xc3\x28", b"a: \x80\x81", b"a: b\x01"])
def test_yaml_that_is_not_utf8_text_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="^error converting YAML to JSON: yaml: invalid "
                                          "UTF-8 or a control character at byte offset"):
        decode.decode_yaml(body)


# ----------------------------------------------------------------------------- unknown fields


def test_unknown_fields_use_kubernetes_paths() -> None:
    obj = pod()
    obj["spec"]["containerz"] = []
    obj["spec"]["containers"][0]["imagex"] = "x"
    obj["metadata"]["labelz"] = {"a": "b"}
    assert decode.unknown_fields(obj, POD) == [
        "metadata.labelz", "spec.containers[0].imagex", "spec.containerz"]


def test_maps_and_opaque_values_accept_any_key() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"anything": "x"}
    obj["metadata"]["managedFields"] = [{"fieldsV1": {"f:spec": {"f:whatever": {}}}}]
    obj["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "nvidia.com/gpu": 1}}
    assert decode.unknown_fields(obj, POD) == []


def test_nothing_below_an_unknown_field_is_reported() -> None:
    obj = pod()
    obj["spec"]["bogus"] = {"deeper": {"x": 1}}
    assert decode.unknown_fields(obj, POD) == ["spec.bogus"]


def test_wrong_shapes_are_left_to_type_errors() -> None:
    obj = pod()
    obj["spec"]["containers"] = "oops"
    assert decode.unknown_fields(obj, POD) == []


def test_field_names_are_case_sensitive() -> None:
    assert decode.unknown_fields({"Spec": {}}, POD) == ["Spec"]


def test_prune_unknown_drops_only_unknown_fields() -> None:
    obj = pod()
    obj["spec"]["containerz"] = 1
    obj["spec"]["containers"][0]["imagex"] = "x"
    pruned = decode.prune_unknown(obj, POD)
    assert pruned == pod()
    assert "containerz" in obj["spec"]  # input untouched


def test_other_kinds_have_schemas_too() -> None:
    lease = {"spec": {"holderIdentity": "n1", "holderz": 1}}
    assert decode.unknown_fields(lease, LEASE) == ["spec.holderz"]
    assert decode.unknown_fields({"spec": {"taints": [{"key": "k", "x": 1}]}}, NODE) == [
        "spec.taints[0].x"]


# ----------------------------------------------------------------------------- type errors


@pytest.mark.parametrize("mutate, expected", [
    (lambda o: o["spec"].__setitem__("containers", "x"),
     "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
     "[]v1.Container"),
    (lambda o: o["spec"].__setitem__("containers", ["x"]),
     "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
     "v1.Container"),
    (lambda o: o["spec"]["containers"][0].__setitem__("image", 5),
     "json: cannot unmarshal number into Go struct field Container.spec.containers.image of "
     "type string"),
    (lambda o: o["spec"]["containers"][0].__setitem__("ports", [{"containerPort": "80"}]),
     "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports."
     "containerPort of type int32"),
    (lambda o: o["spec"]["containers"][0].__setitem__("ports", [{"containerPort": 1.5}]),
     "json: cannot unmarshal number 1.5 into Go struct field ContainerPort.spec.containers."
     "ports.containerPort of type int32"),
    (lambda o: o["spec"]["containers"][0].__setitem__("ports", [{"containerPort": 2**31}]),
     "json: cannot unmarshal number 2147483648 into Go struct field ContainerPort.spec."
     "containers.ports.containerPort of type int32"),
    (lambda o: o["spec"].__setitem__("terminationGracePeriodSeconds", 30.0),
     "json: cannot unmarshal number 30.0 into Go struct field PodSpec.spec."
     "terminationGracePeriodSeconds of type int64"),
    (lambda o: o["spec"].__setitem__("hostNetwork", "true"),
     "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"),
    (lambda o: o["spec"].__setitem__("restartPolicy", 1),
     "json: cannot unmarshal number into Go struct field PodSpec.spec.restartPolicy of type "
     "v1.RestartPolicy"),
    (lambda o: o["metadata"].__setitem__("labels", {"a": 1}),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type "
     "string"),
    (lambda o: o["metadata"].__setitem__("labels", []),
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type "
     "map[string]string"),
    (lambda o: o.__setitem__("spec", True),
     "json: cannot unmarshal bool into Go struct field Pod.spec of type v1.PodSpec"),
    (lambda o: o["spec"]["containers"][0].__setitem__("resources", {"limits": []}),
     "json: cannot unmarshal array into Go struct field ResourceRequirements.spec.containers."
     "resources.limits of type v1.ResourceList"),
])
def test_type_errors_are_worded_like_go(mutate, expected: str) -> None:
    obj = pod()
    mutate(obj)
    assert decode.type_errors(obj, POD) == [expected]


def test_null_is_accepted_everywhere() -> None:
    obj = pod(nodeName=None, hostAliases=None)
    obj["metadata"]["creationTimestamp"] = None
    assert decode.type_errors(obj, POD) == []


def test_int_or_string_and_quantities() -> None:
    probe = {"httpGet": {"port": "http"}, "tcpSocket": {"port": 8080}}
    obj = pod()
    obj["spec"]["containers"][0].update(
        livenessProbe=probe, resources={"limits": {"cpu": "500m", "memory": 1024}})
    assert decode.type_errors(obj, POD) == []
    obj["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": {"x": 1}}}
    assert decode.type_errors(obj, POD) == [
        "json: cannot unmarshal object into Go struct field HTTPGetAction.spec.containers."
        "livenessProbe.httpGet.port of type int32"]
    obj["spec"]["containers"][0]["livenessProbe"] = {}
    obj["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "lots"}}
    assert decode.type_errors(obj, POD) == [
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]


@pytest.mark.parametrize("stamp, expected", [
    ("2024-01-01T00:00:00Z", None),
    ("2024-01-01T10:00:00.123456+02:00", None),
    ("yesterday", 'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse '
                  '"yesterday" as "2006"'),
    ("2024-01-01", 'parsing time "2024-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse '
                   '"" as "T"'),
    ("2024-13-01T00:00:00Z", 'parsing time "2024-13-01T00:00:00Z": month out of range'),
    ("2023-02-29T00:00:00Z", 'parsing time "2023-02-29T00:00:00Z": day out of range'),
    ("2024-01-01T00:00:00Zjunk", 'parsing time "2024-01-01T00:00:00Zjunk": extra text: '
                                 '"junk"'),
])
def test_date_time_fields_must_be_rfc3339(stamp: str, expected: str | None) -> None:
    obj = pod()
    obj["metadata"]["creationTimestamp"] = stamp
    assert decode.type_errors(obj, POD) == ([expected] if expected else [])


def test_date_time_of_wrong_json_type() -> None:
    obj = pod()
    obj["metadata"]["creationTimestamp"] = 5
    assert decode.type_errors(obj, POD) == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata."
        "creationTimestamp of type string"]


def test_root_must_be_an_object() -> None:
    assert decode.type_errors([], POD) == [
        "json: cannot unmarshal array into Go value of type v1.Pod"]


def test_type_errors_come_in_document_order() -> None:
    obj = pod(hostNetwork=1, hostPID=2)
    errors = decode.type_errors(obj, POD)
    assert [e.split("field ")[1].split(" ")[0] for e in errors] == [
        "PodSpec.spec.hostNetwork", "PodSpec.spec.hostPID"]


def test_effective_schema_knows_go_widths_and_opaque_types() -> None:
    assert decode.effective_schema("io.k8s.api.core.v1.ContainerPort", "containerPort") == {
        "type": "integer", "format": "int32"}
    assert decode.effective_schema("io.k8s.api.core.v1.PodSpec", "activeDeadlineSeconds") == {
        "type": "integer", "format": "int64"}
    assert decode.effective_schema("io.k8s.api.core.v1.ResourceRequirements", "limits") == {
        "type": "object", "additionalProperties": {"ref": decode.QUANTITY}}
    assert decode.effective_schema("io.k8s.api.core.v1.PodSpec", "nope") is None


# ----------------------------------------------------------------------------- messages


def test_strict_error_message_matches_the_apiserver() -> None:
    assert decode.strict_error_message("Pod", ["spec.containerz"], []) == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containerz"')


def test_strict_problems_follow_document_order_when_the_body_is_given() -> None:
    body = b'{"metadata":{"name":"a","name":"b"},"spec":{"containerz":1,"containers":[]}}'
    obj, dups = decode.decode_json(body)
    unknown = decode.unknown_fields(obj, POD)
    assert decode.strict_error_message("Pod", unknown, dups, obj=obj) == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'duplicate field "metadata.name", unknown field "spec.containerz"')
    assert decode.strict_error_message("Pod", unknown, dups).endswith(
        'unknown field "spec.containerz", duplicate field "metadata.name"')


def test_duplicates_inside_unknown_fields_are_not_reported_twice() -> None:
    body = b'{"spec":{"bogus":{"a":1,"a":2},"bogus":{}}}'
    obj, dups = decode.decode_json(body)
    unknown = decode.unknown_fields(obj, POD)
    assert decode.field_warnings(unknown, dups, obj=obj) == ['unknown field "spec.bogus"']


def test_warnings_are_one_per_problem() -> None:
    assert decode.field_warnings(["spec.containerz"], ["metadata.name"]) == [
        'unknown field "spec.containerz"', 'duplicate field "metadata.name"']


def test_decode_error_message_uses_the_version_only() -> None:
    assert decode.decode_error_message("Lease", "boom") == (
        'Lease in version "v1" cannot be handled as a Lease: boom')
