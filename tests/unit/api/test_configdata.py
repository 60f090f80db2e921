"""Secret / ConfigMap payloads: Go's base64, stringData, defaults, and their validation."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from podling.api import configdata, decode
from podling.api.validation import (validate_config_map, validate_config_map_update,
                                    validate_secret, validate_secret_update)
from podling.api.validation.configdata import go_json_object_problem

KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
           "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
           "'[-._a-zA-Z0-9]+')")
IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def secret(type_: str = "Opaque", data: dict[str, str] | None = None, **extra: Any) -> dict:
    obj = {"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "s", "namespace": "default", "resourceVersion": "1"},
           "type": type_, "data": {k: b64(v) for k, v in (data or {}).items()}}
    obj.update(extra)
    return obj


def config_map(data: dict[str, str] | None = None, binary: dict[str, bytes] | None = None,
               **extra: Any) -> dict:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "namespace": "default",
                                        "resourceVersion": "1"}}
    if data is not None:
        obj["data"] = data
    if binary is not None:
        obj["binaryData"] = {k: b64(v) for k, v in binary.items()}
    obj.update(extra)
    return obj


def causes(errs: list) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in errs]


@pytest.mark.parametrize("text, problem", [
    ("", None), ("YQ==", None), ("YWI=", None), ("YWJj", None), ("YW\nJj\r\n", None),
    ("YQ", "illegal base64 data at input byte 0"),
    ("YWJ", "illegal base64 data at input byte 0"),
    ("Y", "illegal base64 data at input byte 0"),
    ("YWJjZ", "illegal base64 data at input byte 4"),
    ("not base64!", "illegal base64 data at input byte 3"),
    ("YQ==YQ==", "illegal base64 data at input byte 4"),
    ("Y===", "illegal base64 data at input byte 1"),
    ("YQ=", "illegal base64 data at input byte 3"),
    ("YQ=x", "illegal base64 data at input byte 2"),
    ("é", "illegal base64 data at input byte 0"),
])
def test_base64_problem_matches_go(text: str, problem: str | None) -> None:
    assert configdata.base64_problem(text) == problem


def test_canonical_reencodes_and_prepare_secret_merges_string_data() -> None:
    obj = {"data": {"a": "YW\nJj", "b": b64("old")}, "stringData": {"b": "new", "c": "x"}}
    configdata.prepare_secret(obj)
    assert obj == {"type": "Opaque", "data": {"a": "YWJj", "b": b64("new"), "c": b64("x")}}
    typed = {"type": "kubernetes.io/tls", "data": {}, "stringData": {}}
    configdata.prepare_secret(typed)
    assert typed == {"type": "kubernetes.io/tls"}
    cm = {"data": {}, "binaryData": None}
    configdata.prepare_config_map(cm)
    assert cm == {}


def test_decoding_reports_bad_base64_and_wrong_types_like_go() -> None:
    bad = {"apiVersion": "v1", "kind": "Secret", "data": {"a": "YWJjZ"}}
    assert decode.type_errors(bad, "io.k8s.api.core.v1.Secret") == [
        "illegal base64 data at input byte 4"]
    number = {"data": {"a": 1}}
    assert decode.type_errors(number, "io.k8s.api.core.v1.Secret") == [
        "json: cannot unmarshal number into Go struct field Secret.data of type []uint8"]
    cm = {"binaryData": "x", "data": {"t": "not base64 is fine here"}}
    assert decode.type_errors(cm, "io.k8s.api.core.v1.ConfigMap") == [
        "json: cannot unmarshal string into Go struct field ConfigMap.binaryData of type "
        "map[string][]uint8"]


@pytest.mark.parametrize("obj, expected", [
    (config_map({"a": "1", "b.c_d-e": "2"}, {"bin": b"\x00\xff"}), []),
    (config_map({"bad key": "1"}), [("data[bad key]", f'Invalid value: "bad key": {KEY_MSG}')]),
    (config_map(binary={"..x": b"1"}),
     [("binaryData[..x]", "Invalid value: \"..x\": must not start with '..'")]),
    (config_map({"a": "1"}, {"a": b"1"}),
     [("data[a]", 'Invalid value: "a": duplicate of key present in binaryData')]),
    (config_map({"a": "x" * (1024 * 1024)}, {"b": b"y"}),
     [("[]", "Too long: may not be more than 1048576 bytes")]),
    (config_map({"a": "x" * (1024 * 1024)}), []),
    (config_map(metadata={"name": "Bad_Name", "namespace": "default"}),
     [("metadata.name", 'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must '
       "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
       "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]),
])
def test_validate_config_map(obj: dict, expected: list[tuple[str, str]]) -> None:
    assert causes(validate_config_map(obj)) == expected


@pytest.mark.parametrize("new, old, expected", [
    (config_map({"a": "2"}), config_map({"a": "1"}), []),
    (config_map({"a": "1"}, immutable=True), config_map({"a": "1"}), []),
    (config_map({"a": "2"}, immutable=True), config_map({"a": "1"}, immutable=True),
     [("data", IMMUTABLE)]),
    (config_map({"a": "1"}, {"b": b"2"}, immutable=True),
     config_map({"a": "1"}, immutable=True), [("binaryData", IMMUTABLE)]),
    (config_map({"a": "1"}), config_map({"a": "1"}, immutable=True), [("immutable", IMMUTABLE)]),
    (config_map({"a": "1"}, immutable=False), config_map({"a": "1"}, immutable=True),
     [("immutable", IMMUTABLE)]),
])
def test_validate_config_map_update(new: dict, old: dict,
                                    expected: list[tuple[str, str]]) -> None:
    assert causes(validate_config_map_update(new, old)) == expected


DOCKERCFG_JSON = '{"auths": {"r.example": {"auth": "eDp5"}}}'


@pytest.mark.parametrize("obj, expected", [
    (secret(data={"a": "1"}), []),
    (secret(data={"bad/key": "1"}),
     [("data[bad/key]", f'Invalid value: "bad/key": {KEY_MSG}')]),
    (secret(data={"a": "x" * (1024 * 1024 + 1)}),
     [("data", "Too long: may not be more than 1048576 bytes")]),
    (secret("kubernetes.io/service-account-token"),
     [("metadata.annotations[kubernetes.io/service-account.name]", "Required value")]),
    (secret("kubernetes.io/dockercfg"), [("data[.dockercfg]", "Required value")]),
    (secret("kubernetes.io/dockercfg", {".dockercfg": "{}"}), []),
    (secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": DOCKERCFG_JSON}), []),
    (secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "{nope"}),
     [("data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>": invalid '
       "character 'n' looking for beginning of object key string")]),
    (secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "[]"}),
     [("data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>": json: cannot '
       "unmarshal array into Go value of type map[string]interface {}")]),
    (secret("kubernetes.io/dockerconfigjson"), [("data[.dockerconfigjson]", "Required value")]),
    (secret("kubernetes.io/basic-auth"),
     [("data[username]", "Required value"), ("data[password]", "Required value")]),
    (secret("kubernetes.io/basic-auth", {"password": ""}), []),
    (secret("kubernetes.io/ssh-auth", {"ssh-privatekey": ""}),
     [("data[ssh-privatekey]", "Required value")]),
    (secret("kubernetes.io/tls", {"tls.crt": "c"}), [("data[tls.key]", "Required value")]),
    (secret("kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}), []),
    (secret("bootstrap.kubernetes.io/token"), []),
    (secret("example.com/custom"), []),
])
def test_validate_secret(obj: dict, expected: list[tuple[str, str]]) -> None:
    assert causes(validate_secret(obj)) == expected


@pytest.mark.parametrize("new, old, expected", [
    (secret(data={"a": "2"}), secret(data={"a": "1"}), []),
    (secret("kubernetes.io/basic-auth", {"username": "u"}), secret(data={"username": "u"}),
     [("type", 'Invalid value: "kubernetes.io/basic-auth": field is immutable')]),
    (secret(data={"a": "2"}, immutable=True), secret(data={"a": "1"}, immutable=True),
     [("data", IMMUTABLE)]),
    (secret(data={"a": "1"}), secret(data={"a": "1"}, immutable=True),
     [("immutable", IMMUTABLE)]),
])
def test_validate_secret_update(new: dict, old: dict, expected: list[tuple[str, str]]) -> None:
    assert causes(validate_secret_update(new, old)) == expected


@pytest.mark.parametrize("raw, problem", [
    (b"{}", None), (b"null", None), (b"", "unexpected end of JSON input"),
    (b'{"a": ', "unexpected end of JSON input"),
    (b"{} x", "invalid character 'x' after top-level value"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
    (b"x", "invalid character 'x' looking for beginning of value"),
    (b'{"a": NaN}', "invalid character 'N' looking for beginning of value"),
    (b'{"a": -Infinity}', "invalid character 'I' in numeric literal"),
    (b'"s"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
])
def test_go_json_object_problem(raw: bytes, problem: str | None) -> None:
    assert go_json_object_problem(raw) == problem
