"""Container logs as ``kubectl logs`` shows them, read from CRI-format files.

A CRI log line is ``<RFC3339Nano> <stream> <P|F> <text>``; ``P`` marks a partial line that
continues in the next record. Files live at ``<pod dir>/logs/<container>/<restart>.log``:
the highest restart number is the current container, the one before it ``--previous``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from podling.util.timefmt import format_rfc3339_nano, parse_rfc3339_nano

FOLLOW_POLL_SECONDS = 0.2


class LogNotFound(Exception):
    """No such container log (message is the Kubernetes text)."""


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: dt.datetime | None = None
    limit_bytes: int | None = None


def log_files(container_dir: str) -> list[str]:
    """The container's log files, oldest restart first."""
    try:
        names = [n for n in os.listdir(container_dir) if re.fullmatch(r"\d+\.log", n)]
    except FileNotFoundError:
        return []
    return [os.path.join(container_dir, n) for n in sorted(names, key=lambda n: int(n[:-4]))]


def pick_file(container_dir: str, *, previous: bool, pod: str, container: str) -> str:
    files = log_files(container_dir)
    if previous:
        if len(files) < 2:
            raise LogNotFound(f'previous terminated container "{container}" in pod "{pod}" '
                              f'not found')
        return files[-2]
    if not files:
        raise LogNotFound(f'container "{container}" in pod "{pod}" is waiting to start: '
                          f'ContainerCreating')
    return files[-1]


def parse_record(line: str) -> tuple[str, str, bool, str] | None:
    """(timestamp, stream, partial, text) of one CRI record, or None if malformed."""
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else ""
    return parts[0], parts[1], parts[2] == "P", text


def _since(options: LogOptions, now: dt.datetime) -> dt.datetime | None:
    """The earliest time of a line shown: the later of ``now - sinceSeconds`` and
    ``sinceTime`` (kubelet NewLogOptions)."""
    since = now - dt.timedelta(seconds=options.since_seconds) if options.since_seconds else None
    if options.since_time is not None and (since is None or options.since_time > since):
        since = options.since_time
    return since


def render(records: list[str], options: LogOptions, now: dt.datetime) -> list[str]:
    """Join partial records into lines and apply timestamps (RFC3339NanoFixed in UTC, as
    the kubelet writes them) and sinceSeconds / sinceTime."""
    lines, pending = [], ""
    since = _since(options, now)
    for record in records:
        parsed = parse_record(record)
        if parsed is None:
            continue
        stamp, _stream, partial, text = parsed
        pending += text
        if partial:
            continue
        when = parse_rfc3339_nano(stamp)
        if since is None or (when is not None and _not_before(when, since)):
            shown = format_rfc3339_nano(*when) if when is not None else stamp
            lines.append((f"{shown} " if options.timestamps else "") + pending + "\n")
        pending = ""
    return lines


def _not_before(when: tuple[dt.datetime, int], since: dt.datetime) -> bool:
    second, nanos = when
    return second + dt.timedelta(microseconds=nanos // 1000) >= since


async def read_logs(path: str, options: LogOptions, *,
                    running: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[bytes]:
    """Yield the log as ``kubectl logs`` expects it; with ``follow``, keep yielding new
    lines while ``running()`` says the container is still running. A file that the runtime
    starts afresh (conmon's size cap truncates or re-creates it) is followed from its start."""
    now = dt.datetime.now(dt.timezone.utc)
    budget = options.limit_bytes
    f = open(path, "rb")
    try:
        records = [r.decode("utf-8", "replace") for r in f.readlines()]
        lines = render(records, options, now)
        if options.tail_lines is not None:
            lines = list(deque(lines, maxlen=max(options.tail_lines, 0)))
        for chunk in lines:
            data, budget = _limited(chunk.encode(), budget)
            if data:
                yield data
            if budget == 0:
                return
        if not options.follow:
            return
        partial = b""
        while True:
            record = f.readline()
            if not record:
                if running is not None and not await running():
                    return
                if _started_afresh(path, f):
                    f.close()
                    f, partial = open(path, "rb"), b""
                    continue
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
                continue
            if not record.endswith(b"\n"):
                partial += record
                continue
            text = (partial + record).decode("utf-8", "replace")
            for chunk in render([text], LogOptions(timestamps=options.timestamps), now):
                data, budget = _limited(chunk.encode(), budget)
                if data:
                    yield data
                if budget == 0:
                    return
            partial = b""
    finally:
        f.close()


def _started_afresh(path: str, f) -> bool:
    """True when ``path`` is now another file than ``f``, or was truncated below our offset."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(f.fileno())
    return current.st_ino != mine.st_ino or current.st_size < f.tell()


def _limited(data: bytes, budget: int | None) -> tuple[bytes, int | None]:
    if budget is None:
        return data, None
    data = data[:budget]
    return data, budget - len(data)
