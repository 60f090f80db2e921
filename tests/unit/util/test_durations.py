"""Go's duration syntax, shared by the command line's flags and the API's ?timeout=."""

from __future__ import annotations

import pytest

from podling.util.durations import parse_go_duration


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("250us", 0.00025),
    ("2µs", 0.000002), ("10ns", 1e-8),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "1d", "s", "1m 30s", "-1s", "1h!"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)
