"""Encode once per object version: stored objects are sent as the bytes of their write."""

from __future__ import annotations

import json

from podling.apiserver import encoding
from podling.storage.compact import freeze


def test_a_stored_object_is_sent_as_its_stored_bytes_to_every_reader() -> None:
    stored = freeze({"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "7"}})
    assert encoding.encode_stored(stored) is stored.encoded
    line_one = encoding.encode_event("MODIFIED", stored)
    line_two = encoding.encode_event("MODIFIED", stored)
    assert line_one == line_two == b'{"type":"MODIFIED","object":' + stored.encoded + b"}\n"


def test_a_plain_object_is_encoded_and_not_remembered() -> None:
    obj = {"kind": "Pod", "metadata": {"name": "a"}}
    first = encoding.encode_stored(obj)
    obj["metadata"]["name"] = "b"  # a plain dict may change; nothing stale is sent
    assert json.loads(encoding.encode_stored(obj))["metadata"]["name"] == "b"
    assert json.loads(first)["metadata"]["name"] == "a"


def test_a_list_joins_stored_bytes_and_objects_alike() -> None:
    stored = freeze({"metadata": {"name": "a"}})
    body = encoding.encode_list("PodList", "v1", "9", [stored.encoded, {"metadata": {"name": "b"}}])
    assert json.loads(body) == {"kind": "PodList", "apiVersion": "v1",
                                "metadata": {"resourceVersion": "9"},
                                "items": [{"metadata": {"name": "a"}},
                                          {"metadata": {"name": "b"}}]}
