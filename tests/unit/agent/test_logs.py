"""Container logs from CRI-format files: rendering, options, and following a file that the
runtime starts afresh (conmon's size cap)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os

import pytest

from podling.agent.kuberuntime.logs import LogOptions, read_logs

STAMP = "2026-11-27T12:55:51.203941239+00:00"


def record(text: str, *, partial: bool = False, stream: str = "stdout") -> str:
    return f"{STAMP} {stream} {'P' if partial else 'F'} {text}\n"


async def collect(path: str, options: LogOptions, **kw) -> bytes:
    return b"".join([chunk async for chunk in read_logs(path, options, **kw)])


async def test_lines_partials_tail_timestamps_and_limit(tmp_path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("a") + record("b", partial=True) + record("c") + record("d"))
    assert await collect(str(path), LogOptions()) == b"a\nbc\nd\n"
    assert await collect(str(path), LogOptions(tail_lines=1)) == b"d\n"
    assert await collect(str(path), LogOptions(timestamps=True, tail_lines=1)) == \
        b"2026-11-27T12:55:51.203941239Z d\n"
    assert await collect(str(path), LogOptions(limit_bytes=3)) == b"a\nb"


@pytest.mark.parametrize("stamp, shown", [
    ("2026-11-27T12:55:51.203941239+00:00", "2026-11-27T12:55:51.203941239Z"),
    ("2026-11-27T12:55:51.2Z", "2026-11-27T12:55:51.200000000Z"),  # always nine digits
    ("2026-11-27T12:55:51Z", "2026-11-27T12:55:51.000000000Z"),
    ("2026-11-27T13:55:51.000000001+01:00", "2026-11-27T12:55:51.000000001Z"),  # in UTC
])
async def test_timestamps_are_rfc3339_nano_fixed_in_utc(tmp_path, stamp, shown) -> None:
    path = tmp_path / "0.log"
    path.write_text(f"{stamp} stdout F hi\n")
    assert await collect(str(path), LogOptions(timestamps=True)) == f"{shown} hi\n".encode()


@pytest.mark.parametrize("options, expected", [
    (LogOptions(since_time=dt.datetime(2026, 11, 27, 12, 0, 1, tzinfo=dt.timezone.utc)),
     b"b\nc\n"),
    (LogOptions(since_time=dt.datetime(2026, 11, 27, 13, 0, 1, tzinfo=dt.timezone(
        dt.timedelta(hours=1)))), b"b\nc\n"),  # another offset, the same instant
    (LogOptions(since_time=dt.datetime(2026, 11, 27, 12, 0, 3, tzinfo=dt.timezone.utc)), b""),
])
async def test_since_time_skips_earlier_lines(tmp_path, options, expected) -> None:
    path = tmp_path / "0.log"
    path.write_text("2026-11-27T12:00:00.999999999+00:00 stdout F a\n"
                    "2026-11-27T12:00:01.000000000+00:00 stdout F b\n"
                    "2026-11-27T13:00:02.5+01:00 stdout F c\n")
    assert await collect(str(path), options) == expected


async def test_follow_ends_when_the_container_stops(tmp_path) -> None:
    path = tmp_path / "0.log"
    path.write_text(record("first"))
    states = iter([True, False])

    async def running() -> bool:
        return next(states, False)

    out = await asyncio.wait_for(collect(str(path), LogOptions(follow=True), running=running),
                                 10)
    assert out == b"first\n"


async def follow_across(tmp_path, restart) -> bytes:
    """Follow a log while ``restart(path)`` starts the file afresh, then write 'after'."""
    path = tmp_path / "0.log"
    path.write_text(record("before-" + "x" * 100))
    done, first = asyncio.Event(), asyncio.Event()

    async def running() -> bool:
        return not done.is_set()

    chunks: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_logs(str(path), LogOptions(follow=True), running=running):
            chunks.append(chunk)
            first.set()
            if chunk == b"after\n":
                done.set()

    task = asyncio.create_task(follow())
    await asyncio.wait_for(first.wait(), 10)  # the old content was read before the restart
    restart(str(path))
    await asyncio.wait_for(task, 10)
    return b"".join(chunks)


async def test_follow_continues_after_truncation(tmp_path) -> None:
    def truncate(path: str) -> None:
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(record("after"))

    assert await follow_across(tmp_path, truncate) == b"before-" + b"x" * 100 + b"\nafter\n"


async def test_follow_continues_after_the_file_is_recreated(tmp_path) -> None:
    def recreate(path: str) -> None:
        os.unlink(path)
        with open(path, "w") as f:
            f.write(record("after"))

    assert await follow_across(tmp_path, recreate) == b"before-" + b"x" * 100 + b"\nafter\n"
