"""util.timefmt: the two Kubernetes timestamp shapes."""

from __future__ import annotations

import datetime as dt

from podling.util.timefmt import epoch_rfc3339, format_rfc3339, parse_rfc3339

T0 = 1_800_000_000.25


def test_epoch_seconds_and_micro() -> None:
    assert epoch_rfc3339(T0) == "2027-01-15T08:00:00Z"
    assert epoch_rfc3339(T0, micro=True) == "2027-01-15T08:00:00.250000Z"


def test_other_zones_are_written_in_utc() -> None:
    when = dt.datetime(2027, 1, 15, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_rfc3339(when) == "2027-01-15T08:00:00Z"
    assert parse_rfc3339(format_rfc3339(when)) == when
