"""choose_container: which container logs / exec / attach target (Kubernetes' messages)."""

from __future__ import annotations

import pytest

from podling.api.errors import ApiError
from podling.apiserver.streaming.node import choose_container

POD = {"metadata": {"name": "web"},
       "spec": {"containers": [{"name": "main"}, {"name": "side"}],
                "initContainers": [{"name": "init"}],
                "ephemeralContainers": [{"name": "dbg"}]}}


@pytest.mark.parametrize("wanted", ["main", "init", "dbg"])
def test_any_kind_of_container_may_be_named(wanted: str) -> None:
    assert choose_container(POD, wanted) == wanted


@pytest.mark.parametrize("wanted, message", [
    ("", "a container name must be specified for pod web, choose one of: [main side] or one "
         "of the init containers: [init] or one of the ephemeral containers: [dbg]"),
    ("nope", "container nope is not valid for pod web"),
])
def test_refusals(wanted: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        choose_container(POD, wanted)
    assert (caught.value.code, caught.value.message) == (400, message)
