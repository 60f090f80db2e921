"""Property-based fuzzing (hypothesis) of what parses user input: body decoding, the three
patch types, label and field selectors. Whatever the input, each either succeeds or raises
its own user-facing error (which the API answers with a 4xx Status); decoding round-trips.

``PODLING_FUZZ_EXAMPLES`` raises the number of examples per property (the default keeps
``make test`` fast; tests/chaos/ runs a long campaign)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from builders import make_pod
from fuzz_strategies import FUZZ, POD, json_patch_ops, json_values, mutated_pods
from hypothesis import given
from hypothesis import strategies as st

from podling.api import decode, patch, selectors

@FUZZ
@given(st.binary(max_size=300))
def test_decoding_any_bytes_gives_a_value_or_a_decode_error(body: bytes) -> None:
    for decoder in (decode.decode_json, decode.decode_yaml):
        try:
            decoder(body)
        except decode.DecodeError as exc:
            assert exc.message and "\n" not in exc.message.split(": ", 1)[0]


@FUZZ
@given(json_values)
def test_json_values_round_trip_through_json_and_yaml(value: Any) -> None:
    assert decode.decode_json(json.dumps(value).encode())[0] == value
    as_yaml = yaml.safe_dump(value).encode()
    assert decode.decode_yaml(as_yaml)[0] == _as_kubernetes_yaml(value)


def _as_kubernetes_yaml(value: Any) -> Any:
    """What Kubernetes' YAML-to-JSON conversion makes of ``value``: whole floats are ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_as_kubernetes_yaml(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_kubernetes_yaml(v) for k, v in value.items()}
    return value


@FUZZ
@given(mutated_pods())
def test_inspecting_any_pod_shaped_value_never_fails(doc: Any) -> None:
    if isinstance(doc, dict):
        found = decode.inspect(doc, "io.k8s.api.core.v1.Pod")
        assert isinstance(found.type_errors, list)
        decode.prune_unknown(doc, "io.k8s.api.core.v1.Pod")


@FUZZ
@given(json_values)
def test_merge_and_json_patches_apply_or_raise_a_patch_error(document: Any) -> None:
    for apply in (patch.json_merge_patch, patch.json_patch):
        try:
            result = apply(POD, document)
        except patch.PatchError as exc:
            assert exc.code in (400, 422) and exc.message
        else:
            json.dumps(result)  # plain JSON, nothing shared or exotic
    assert POD == make_pod("p", namespace="default").container("c", "nginx").bare().build()


@FUZZ
@given(json_patch_ops())
def test_json_patches_of_the_pod_apply_or_raise_a_patch_error(ops: list[dict]) -> None:
    try:
        json.dumps(patch.json_patch(POD, ops))
    except patch.PatchError as exc:
        assert exc.code in (400, 422) and exc.message


@FUZZ
@given(mutated_pods())
def test_strategic_merge_patches_apply_or_raise_a_patch_error(document: Any) -> None:
    if not isinstance(document, dict):
        return  # the API refuses those before (400)
    try:
        json.dumps(patch.strategic_merge_patch(POD, document, "io.k8s.api.core.v1.Pod"))
    except patch.PatchError as exc:
        assert exc.code in (400, 422) and exc.message


selector_text = st.text(alphabet=st.sampled_from(list("abc=!,()- \\xyz.1/_in notexists")) |
                        st.characters(), max_size=30)


@FUZZ
@given(selector_text)
def test_label_and_field_selectors_parse_or_raise_a_selector_error(text: str) -> None:
    try:
        parsed = selectors.parse_label_selector(text)
    except selectors.SelectorError as exc:
        assert str(exc)
    else:
        assert selectors.parse_label_selector(str(parsed)) == parsed  # round trip
    try:
        field = selectors.parse_field_selector(text)
        selectors.check_field_selector("pods", field)
    except selectors.SelectorError as exc:
        assert str(exc)
