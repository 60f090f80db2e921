"""bodies: Accept / Content-Type negotiation, strict decoding modes, and the body size limit."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from aiohttp import StreamReader
from aiohttp.test_utils import make_mocked_request
from builders import make_pod

from podling.api import resources
from podling.api.errors import ApiError
from podling.apiserver import bodies

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_GET_ACCEPT = f"{TABLE},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def request(headers: dict[str, str] | None = None, path: str = "/api/v1/pods",
            payload: Any = None) -> Any:
    if payload is None:
        return make_mocked_request("GET", path, headers=headers or {})
    return make_mocked_request("POST", path, headers=headers or {}, payload=payload)


# --- Accept ------------------------------------------------------------------------------

WANTS_TABLE = [
    ("", resources.PODS, False),
    ("application/json", resources.PODS, False),
    (TABLE, resources.PODS, True),
    (KUBECTL_GET_ACCEPT, resources.PODS, True),
    ("application/json; as=Table; v=v1; g=meta.k8s.io", resources.PODS, True),  # spaces
    ("application/json;g=meta.k8s.io;v=v1;as=Table", resources.NODES, True),  # any order
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", resources.PODS, False),
    ("application/json;as=Table;v=v1", resources.PODS, False),  # no group
    ("application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io", resources.PODS, False),
    (TABLE, resources.NAMESPACES, True),
    (TABLE, resources.EVENTS, True),
    (TABLE, resources.LEASES, True),
    (TABLE, resources.SELF_SUBJECT_ACCESS_REVIEWS, False),  # no table for this resource
    (TABLE, resources.BINDINGS, False),
]


@pytest.mark.parametrize("accept,resource,expected", WANTS_TABLE,
                         ids=[f"{a or 'none'}-{r.name}" for a, r, _ in WANTS_TABLE])
def test_wants_table(accept: str, resource: resources.Resource, expected: bool) -> None:
    headers = {"Accept": accept} if accept else {}
    assert bodies.wants_table(request(headers), resource) is expected


ACCEPTABLE = ["", "application/json", "*/*", "application/*", "application/yaml",
              f"{PROTOBUF}, application/json", f"{PROTOBUF};q=1.0, */*;q=0.1",
              KUBECTL_GET_ACCEPT, "APPLICATION/JSON"]


@pytest.mark.parametrize("accept", ACCEPTABLE)
def test_acceptable(accept: str) -> None:
    bodies.check_acceptable(request({"Accept": accept} if accept else {}))


@pytest.mark.parametrize("accept", [PROTOBUF, "text/html", f"{PROTOBUF};as=Table;v=v1"])
def test_not_acceptable_is_406(accept: str) -> None:
    with pytest.raises(ApiError) as caught:
        bodies.check_acceptable(request({"Accept": accept}))
    assert (caught.value.code, caught.value.reason) == (406, "NotAcceptable")


# --- Content-Type ------------------------------------------------------------------------

PARSED = [
    (b'{"a": 1}', "application/json", {"a": 1}, []),
    (b'{"a": 1, "a": 2}', "application/json", {"a": 2}, ["a"]),
    (b'{"a": [1]}', "application/merge-patch+json", {"a": [1]}, []),
    (b'[{"op": "remove", "path": "/a"}]', "application/json-patch+json",
     [{"op": "remove", "path": "/a"}], []),
    (b'{"a": 1}', "application/strategic-merge-patch+json", {"a": 1}, []),
    (b"a: 1\nb: [x]\n", "application/yaml", {"a": 1, "b": ["x"]}, []),
    (b"a: 1\n", "text/yaml", {"a": 1}, []),
]


@pytest.mark.parametrize("body,content_type,value,duplicates", PARSED,
                         ids=[f"{c}-{i}" for i, (_, c, _, _) in enumerate(PARSED)])
def test_parse_document(body: bytes, content_type: str, value: Any,
                        duplicates: list[str]) -> None:
    assert bodies.parse_document(body, content_type) == (value, duplicates)


@pytest.mark.parametrize("content_type", [PROTOBUF, "text/plain", "application/xml",
                                          "application/cbor", ""])
def test_unknown_media_types_are_415(content_type: str) -> None:
    with pytest.raises(ApiError) as caught:
        bodies.parse_document(b'{"a": 1}', content_type)
    assert (caught.value.code, caught.value.reason) == (415, "UnsupportedMediaType")
    assert "application/json" in caught.value.message


@pytest.mark.parametrize("body,content_type", [(b"{", "application/json"),
                                               (b"a: [1\n", "application/yaml"),
                                               (b"NaN", "application/json")])
def test_malformed_bodies_are_400(body: bytes, content_type: str) -> None:
    with pytest.raises(ApiError) as caught:
        bodies.parse_document(body, content_type)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")


@pytest.mark.parametrize("header,expected", [
    (None, "application/json"),
    ("application/json", "application/json"),
    ("application/json; charset=utf-8", "application/json"),
    ("Application/YAML", "application/yaml"),
])
def test_media_type(header: str | None, expected: str) -> None:
    headers = {"Content-Type": header} if header else {}
    assert bodies.media_type(request(headers)) == expected


# --- fieldValidation ---------------------------------------------------------------------

def pod(**extra_spec: Any) -> dict[str, Any]:
    """A bare pod ``p`` (no namespace, image nginx) with ``extra_spec`` in its spec."""
    return (make_pod("p", namespace=None).container("c", "nginx").bare()
            .set_spec(**extra_spec).build())


def check(obj: Any, mode: str, duplicates: list[str] | None = None) -> tuple[dict, list[str]]:
    return bodies.check_object(obj, resources.PODS, resources.PODS.type_name, "Pod",
                               duplicates or [], mode)


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore"])
def test_a_clean_object_passes_every_mode_unchanged(mode: str) -> None:
    assert check(pod(), mode) == (pod(), [])


def test_warn_reports_unknown_fields_and_prunes_them() -> None:
    obj, warnings = check(pod(bogus=1), "Warn")
    assert obj == pod()
    assert warnings == ['unknown field "spec.bogus"']


def test_ignore_prunes_unknown_fields_silently() -> None:
    assert check(pod(bogus=1), "Ignore") == (pod(), [])


def test_warn_reports_duplicates() -> None:
    assert check(pod(), "Warn", ["spec.hostname"])[1] == ['duplicate field "spec.hostname"']


@pytest.mark.parametrize("duplicates,obj,problem", [
    ([], pod(bogus=1), 'unknown field "spec.bogus"'),
    (["metadata.name"], pod(), 'duplicate field "metadata.name"'),
])
def test_strict_rejects_unknown_and_duplicate_fields(duplicates: list[str], obj: dict,
                                                     problem: str) -> None:
    with pytest.raises(ApiError) as caught:
        check(obj, "Strict", duplicates)
    assert caught.value.code == 400
    assert caught.value.message == \
        f'Pod in version "v1" cannot be handled as a Pod: strict decoding error: {problem}'


def test_check_object_does_not_change_its_input() -> None:
    original = pod(bogus=1)
    given = copy.deepcopy(original)
    check(given, "Warn")
    assert given == original


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore"])
@pytest.mark.parametrize("obj,fragment", [
    ([1, 2], "expected a JSON object"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}}, "cannot unmarshal"),
    ({"apiVersion": "apps/v1", "kind": "Pod"}, "does not match the expected API version"),
    ({"apiVersion": "v1", "kind": "Node"}, "does not match the expected kind"),
], ids=["not-object", "wrong-type", "wrong-version", "wrong-kind"])
def test_type_and_kind_errors_are_400_in_every_mode(obj: Any, fragment: str, mode: str) -> None:
    with pytest.raises(ApiError) as caught:
        check(obj, mode)
    assert caught.value.code == 400
    assert fragment in caught.value.message


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore"])
@pytest.mark.parametrize("obj", [{"kind": "Pod", "metadata": {"name": "p"}},
                                 {"apiVersion": "v1", "metadata": {"name": "p"}}],
                         ids=["no-version", "no-kind"])
def test_missing_kind_or_version_is_taken_from_the_url(obj: Any, mode: str) -> None:
    """Kubernetes fills a missing kind / apiVersion from the request's resource."""
    checked, _ = check(obj, mode)
    assert (checked["apiVersion"], checked["kind"]) == ("v1", "Pod")


@pytest.mark.parametrize("value,expected", [(None, "Warn"), ("Strict", "Strict"),
                                            ("Warn", "Warn"), ("Ignore", "Ignore")])
def test_validation_mode(value: str | None, expected: str) -> None:
    path = "/api/v1/pods" + (f"?fieldValidation={value}" if value else "")
    assert bodies.validation_mode(request(path=path)) == expected


def test_unknown_validation_mode_is_400() -> None:
    with pytest.raises(ApiError) as caught:
        bodies.validation_mode(request(path="/api/v1/pods?fieldValidation=strict"))
    assert caught.value.code == 400


# --- body size ---------------------------------------------------------------------------

class _Protocol:
    """The little of aiohttp's protocol a StreamReader calls back into."""

    _reading_paused = False

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        pass

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        pass


def stream(data: bytes) -> StreamReader:
    reader = StreamReader(_Protocol(), 2 ** 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_body_returns_the_whole_body() -> None:
    data = b"x" * 200_000
    got = await bodies.read_body(request({"Content-Length": str(len(data))},
                                         payload=stream(data)))
    assert got == data


async def test_read_body_at_the_limit_is_fine() -> None:
    data = b"x" * bodies.MAX_BODY
    assert len(await bodies.read_body(request(payload=stream(data)))) == bodies.MAX_BODY


async def test_declared_length_past_the_limit_is_413_before_reading() -> None:
    with pytest.raises(ApiError) as caught:
        await bodies.read_body(request({"Content-Length": str(bodies.MAX_BODY + 1)},
                                       payload=stream(b"")))
    assert (caught.value.code, caught.value.reason) == (413, "RequestEntityTooLarge")


async def test_streamed_body_past_the_limit_is_413() -> None:
    with pytest.raises(ApiError) as caught:
        await bodies.read_body(request(payload=stream(b"x" * (bodies.MAX_BODY + 1))))
    assert caught.value.code == 413


# --- responses ---------------------------------------------------------------------------

def test_respond_sets_content_type_and_warning_headers() -> None:
    response = bodies.respond({"a": "é"}, 201, ['unknown field "spec.x"'],
                              content_type=TABLE)
    assert response.status == 201
    assert response.headers["Content-Type"] == TABLE
    assert response.headers.getall("Warning") == ['299 - "unknown field \\"spec.x\\""']
    assert response.body == '{"a":"é"}'.encode()
