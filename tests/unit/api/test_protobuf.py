"""Kubernetes protobuf bodies: a SelfSubjectAccessReview encoded by hand, then decoded.

The encoder below is the minimum of the protobuf wire format (varints and length-delimited
fields) needed to build what ``kubectl auth can-i`` sends.
"""

from __future__ import annotations

import pytest

from podling.api import protobuf
from podling.api.protobuf import ProtobufError


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes | str) -> bytes:
    """A length-delimited (wire type 2) field."""
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def int_field(number: int, value: int) -> bytes:
    """A varint (wire type 0) field."""
    return varint(number << 3) + varint(value)


def message(**named: str) -> bytes:
    """Fields given as f<number>=value, in order."""
    return b"".join(field(int(name[1:]), value) for name, value in named.items())


def envelope(raw: bytes, api_version: str = "authorization.k8s.io/v1",
             kind: str = "SelfSubjectAccessReview") -> bytes:
    type_meta = message(f1=api_version, f2=kind)
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw)


def review(spec: bytes) -> bytes:
    """SelfSubjectAccessReview{1: ObjectMeta, 2: spec, 3: status}."""
    return field(1, b"") + field(2, spec) + field(3, b"")


def resource_spec(**attributes: str) -> bytes:
    numbers = {"namespace": 1, "verb": 2, "group": 3, "version": 4, "resource": 5,
               "subresource": 6, "name": 7}
    attrs = b"".join(field(numbers[k], v) for k, v in attributes.items())
    return field(1, attrs)


def test_varint_encoder_matches_the_decoder() -> None:
    for value in (0, 1, 127, 128, 300, 2 ** 32, 2 ** 63 - 1):
        assert protobuf._varint(varint(value), 0) == (value, len(varint(value)))


def test_decodes_resource_attributes() -> None:
    body = envelope(review(resource_spec(namespace="default", verb="create", group="",
                                         resource="pods", subresource="exec", name="web")))
    assert protobuf.decode_self_subject_access_review(body) == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "group": "",
                                        "resource": "pods", "subresource": "exec",
                                        "name": "web"}}}


def test_decodes_non_resource_attributes() -> None:
    spec = field(2, message(f1="/healthz", f2="get"))
    decoded = protobuf.decode_self_subject_access_review(envelope(review(spec)))
    assert decoded["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


def test_absent_attributes_are_absent() -> None:
    decoded = protobuf.decode_self_subject_access_review(
        envelope(review(resource_spec(verb="list", resource="nodes"))))
    assert decoded["spec"] == {"resourceAttributes": {"verb": "list", "resource": "nodes"}}


def test_unknown_fields_of_other_wire_types_are_skipped() -> None:
    attrs = (field(2, "get") + int_field(9, 12345) + varint(10 << 3 | 5) + b"\x01\x02\x03\x04"
             + varint(11 << 3 | 1) + b"\x00" * 8 + field(5, "pods"))
    decoded = protobuf.decode_self_subject_access_review(envelope(review(field(1, attrs))))
    assert decoded["spec"]["resourceAttributes"] == {"verb": "get", "resource": "pods"}


def test_type_meta_is_reported_and_defaulted() -> None:
    spec = resource_spec(verb="get", resource="pods")
    given = protobuf.decode_self_subject_access_review(
        envelope(review(spec), api_version="authorization.k8s.io/v1beta1"))
    assert given["apiVersion"] == "authorization.k8s.io/v1beta1"
    bare = protobuf.MAGIC + field(2, review(spec))
    decoded = protobuf.decode_self_subject_access_review(bare)
    assert (decoded["apiVersion"], decoded["kind"]) == ("authorization.k8s.io/v1",
                                                        "SelfSubjectAccessReview")


def test_unwrap() -> None:
    assert protobuf.unwrap(envelope(b"\x08\x01", kind="Pod", api_version="v1")) == \
        ("v1", "Pod", b"\x08\x01")


def test_fields_collects_repeated_numbers_in_order() -> None:
    assert protobuf.fields(field(1, "a") + int_field(2, 7) + field(1, "b")) == {
        1: [b"a", b"b"], 2: [7]}


MALFORMED = [
    ("no magic", b'{"kind": "SelfSubjectAccessReview"}'),
    ("wrong magic", b"k8s\x01" + field(2, b"")),
    ("truncated varint key", protobuf.MAGIC + b"\x80"),
    ("truncated length", protobuf.MAGIC + b"\x12"),
    ("length past the end", protobuf.MAGIC + b"\x12\x05ab"),
    ("unsupported wire type", protobuf.MAGIC + varint(1 << 3 | 3)),
    ("truncated inside spec", envelope(field(2, b"\x0a\x09\x12\x03ge"))),
    ("invalid utf-8 attribute", envelope(review(field(1, field(2, b"\xff\xfe"))))),
    ("over-long varint", protobuf.MAGIC + b"\xff" * 11),
    ("truncated fixed32", envelope(review(field(1, field(2, "get") + varint(9 << 3 | 5)
                                                + b"\x01")))),
    ("truncated fixed64", envelope(review(field(1, field(2, "get") + varint(9 << 3 | 1)
                                                + b"\x01\x02")))),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_bodies_raise_protobuf_error(body: bytes) -> None:
    with pytest.raises(ProtobufError):
        protobuf.decode_self_subject_access_review(body)


def test_protobuf_error_is_a_value_error() -> None:
    assert issubclass(ProtobufError, ValueError)


def entry(key: str, value: bytes | str) -> bytes:
    """One map<string, …> entry."""
    return field(1, key) + field(2, value)


def test_config_map() -> None:
    raw = (field(1, message(f1="cm", f3="ns") + field(11, entry("app", "x")))
           + field(2, entry("a", "1")) + field(2, entry("b", "two"))
           + field(3, entry("bin", b"\x00\xff")) + int_field(4, 1))
    assert protobuf.DECODERS["ConfigMap"](envelope(raw, "v1", "ConfigMap")) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ns", "labels": {"app": "x"}},
        "data": {"a": "1", "b": "two"}, "binaryData": {"bin": "AP8="}, "immutable": True}


def test_secret() -> None:
    raw = (field(1, message(f1="s")) + field(2, entry("k", b"\x01"))
           + field(3, "kubernetes.io/tls") + field(4, entry("t", "text")))
    assert protobuf.DECODERS["Secret"](envelope(raw, "v1", "Secret")) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"k": "AQ=="}, "type": "kubernetes.io/tls", "stringData": {"t": "text"}}


def test_truncated_secret_is_an_error() -> None:
    with pytest.raises(ProtobufError):
        protobuf.DECODERS["Secret"](envelope(field(1, message(f1="s"))[:-2], "v1", "Secret"))


def test_service_account_as_kubectl_create_serviceaccount_sends_it() -> None:
    meta = message(f1="builder", f2="", f3="ns1")  # gogo writes empty strings too
    raw = (field(1, meta) + field(2, message(f3="s1", f1="Secret")) +
           field(3, message(f1="reg")) + int_field(4, 0))
    decoded = protobuf.decode_service_account(envelope(raw, "v1", "ServiceAccount"))
    assert decoded == {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "builder", "namespace": "ns1"},
                       "secrets": [{"kind": "Secret", "name": "s1"}],
                       "imagePullSecrets": [{"name": "reg"}],
                       "automountServiceAccountToken": False}


def test_token_request_as_kubectl_create_token_sends_it() -> None:
    bound = message(f1="Pod", f2="v1", f3="web", f4="uid-1")
    spec = field(1, "a") + field(1, "b") + field(3, bound) + int_field(4, 1200)
    raw = field(1, message(f1="")) + field(2, spec)
    decoded = protobuf.decode_token_request(envelope(raw, "authentication.k8s.io/v1",
                                                     "TokenRequest"))
    assert decoded == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "metadata": {}, "spec": {
                           "audiences": ["a", "b"], "expirationSeconds": 1200,
                           "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web",
                                              "uid": "uid-1"}}}
    negative = field(2, int_field(4, (1 << 64) - 5))
    assert protobuf.decode_token_request(envelope(negative, "authentication.k8s.io/v1",
                                                  "TokenRequest"))["spec"] == \
        {"expirationSeconds": -5}


def test_self_subject_review_is_just_metadata() -> None:
    decoded = protobuf.decode_self_subject_review(envelope(
        field(1, message(f1="")), "authentication.k8s.io/v1", "SelfSubjectReview"))
    assert decoded == {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                       "metadata": {}}


# --- RBAC kinds (kubectl create role / clusterrole / rolebinding / clusterrolebinding) ------

RBAC_V1 = "rbac.authorization.k8s.io/v1"


def test_decodes_a_role_binding() -> None:
    subject = message(f1="ServiceAccount", f2="", f3="default", f4="ci")
    body = envelope(field(1, message(f1="readers", f3="ci")) + field(2, subject) +
                    field(3, message(f1="rbac.authorization.k8s.io", f2="ClusterRole",
                                     f3="view")), RBAC_V1, "RoleBinding")
    assert protobuf.DECODERS["RoleBinding"](body) == {
        "apiVersion": RBAC_V1, "kind": "RoleBinding",
        "metadata": {"name": "readers", "namespace": "ci"},
        "subjects": [{"kind": "ServiceAccount", "apiGroup": "", "name": "default",
                      "namespace": "ci"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"}}


def test_decodes_a_cluster_role_with_rules_and_aggregation() -> None:
    rule = field(1, "get") + field(1, "list") + field(2, "") + field(3, "pods") + \
        field(4, "web")
    urls = field(1, "get") + field(5, "/healthz")
    selector = field(1, field(1, "team") + field(2, "a")) + \
        field(2, message(f1="tier", f2="In") + field(3, "x") + field(3, "y"))
    body = envelope(field(1, message(f1="r")) + field(2, rule) + field(2, urls) +
                    field(3, field(1, selector)), RBAC_V1, "")
    assert protobuf.DECODERS["ClusterRole"](body) == {
        "apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": "r"},
        "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"],
                   "resourceNames": ["web"]},
                  {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"team": "a"},
             "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}]}]}}


def test_decodes_a_self_subject_rules_review() -> None:
    body = envelope(field(1, b"") + field(2, message(f1="dev")), kind="SelfSubjectRulesReview")
    assert protobuf.DECODERS["SelfSubjectRulesReview"](body)["spec"] == {"namespace": "dev"}


def test_a_malformed_rbac_body_is_a_protobuf_error() -> None:
    with pytest.raises(ProtobufError):
        protobuf.DECODERS["Role"](envelope(field(2, b"\xff"), RBAC_V1, "Role"))
