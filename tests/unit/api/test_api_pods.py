"""api.pods: the terminal-phase helpers every layer shares."""

from __future__ import annotations

import pytest

from podling.api import pods


@pytest.mark.parametrize("status, terminal", [
    (None, False), ({}, False), ({"phase": "Pending"}, False), ({"phase": "Running"}, False),
    ({"phase": "Unknown"}, False), ({"phase": "Succeeded"}, True), ({"phase": "Failed"}, True),
])
def test_is_terminal(status, terminal: bool) -> None:
    pod = {"metadata": {"name": "p"}, "status": status}
    assert pods.is_terminal(pod) is terminal
    assert pods.is_terminal_phase(pods.phase(pod)) is terminal
