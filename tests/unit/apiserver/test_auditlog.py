"""The audit log file: Go's JSON encoding of events, MicroTime, rotation and pruning."""

from __future__ import annotations

import json
import os
import stat

from podling.apiserver.auditlog import AuditLog, encode_line, micro_time


def test_lines_are_compact_with_html_characters_escaped() -> None:
    line = encode_line({"requestURI": "/api?a=1&b=<2>", "user": {"username": "zoë"}})
    assert line == ('{"requestURI":"/api?a=1\\u0026b=\\u003c2\\u003e","user":{"username":"zoë"}}'
                    '\n').encode()
    assert json.loads(line)["requestURI"] == "/api?a=1&b=<2>"


def test_micro_time_is_utc_with_six_digits_cut_not_rounded() -> None:
    assert micro_time(1796342400.1234567) == "2026-12-04T00:00:00.123456Z"
    assert micro_time(1796342400) == "2026-12-04T00:00:00.000000Z"


def test_the_log_is_private_rotated_by_size_and_pruned(tmp_path) -> None:
    path = tmp_path / "logs" / "audit.log"
    log = AuditLog(str(path), max_size_mb=1, max_backups=2)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    event = {"kind": "Event", "padding": "x" * 100_000}
    for _ in range(35):  # about 3.4 MB: three rotations
        log.write(event)
    log.close()
    backups = sorted(p.name for p in path.parent.iterdir() if p.name != "audit.log")
    assert len(backups) == 2 and all(b.startswith("audit-") and b.endswith(".log")
                                     for b in backups)
    sizes = [os.path.getsize(path.parent / b) for b in backups]
    assert all(size <= 1024 * 1024 for size in sizes + [os.path.getsize(path)])
    with open(path) as f:
        assert all(json.loads(line) == event for line in f)
