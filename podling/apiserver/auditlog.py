"""The audit log file: one JSON event per line, rotated by size (kube-apiserver's log backend
with ``--audit-log-format=json``, ``--audit-log-mode=blocking``).

``path`` ``-`` writes to standard output. Otherwise the file (mode 0600, its directories
0700) is appended to; a write that would take it past ``max_size_mb`` first renames it to
``<name>-<UTC time>.<ext>`` (``audit-2026-12-04T10-30-12.345.log``) and starts a new one.
``max_backups`` (0: all) and ``max_age_days`` (0: any age) prune the renamed files.
Lines are written with one ``write`` each and not fsynced; a failed write is logged and
the request goes on, as in Kubernetes' blocking mode.
"""

from __future__ import annotations

import datetime
import glob
import json
import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

MEGABYTE = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 100  # lumberjack's default, which kube-apiserver keeps for 0
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                 "\u2029": "\\u2029"}


def encode_line(event: dict[str, Any]) -> bytes:
    """An event as Go's encoding/json writes it: compact, ``<``, ``>``, ``&`` escaped, one
    trailing newline."""
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _HTML_ESCAPES.items():
        if char in text:
            text = text.replace(char, escaped)
    return (text + "\n").encode("utf-8", "replace")


def micro_time(timestamp: float) -> str:
    """A MicroTime: UTC, six fractional digits (cut, not rounded), ``Z``."""
    seconds, micros = divmod(int(timestamp * 1_000_000), 1_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros:06d}Z"


class AuditLog:
    """Appends encoded events to ``path`` (see the module doc)."""

    def __init__(self, path: str, *, max_size_mb: int = 0, max_backups: int = 0,
                 max_age_days: int = 0) -> None:
        self.path = path
        self.max_bytes = (max_size_mb or DEFAULT_MAX_SIZE_MB) * MEGABYTE
        self.max_backups, self.max_age_days = max_backups, max_age_days
        self._fd = -1
        self._size = 0
        if path != "-":
            self._open()

    def _open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o600)
        self._size = os.fstat(self._fd).st_size

    def write(self, event: dict[str, Any]) -> None:
        line = encode_line(event)
        if self.path == "-":
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
            return
        try:
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            os.write(self._fd, line)
            self._size += len(line)
        except OSError as exc:
            log.warning("audit log %s: write failed: %s", self.path, exc)

    def _rotate(self) -> None:
        os.close(self._fd)
        stem, ext = os.path.splitext(self.path)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")
        os.rename(self.path, f"{stem}-{stamp[:-3]}{ext}")
        self._open()
        self._prune(stem, ext)

    def _prune(self, stem: str, ext: str) -> None:
        backups = sorted(glob.glob(f"{glob.escape(stem)}-*{glob.escape(ext)}"), reverse=True)
        doomed = backups[self.max_backups:] if self.max_backups else []
        if self.max_age_days:
            cutoff = time.time() - self.max_age_days * 86400
            doomed += [b for b in backups if os.path.getmtime(b) < cutoff and b not in doomed]
        for path in doomed:
            try:
                os.unlink(path)
            except OSError as exc:
                log.warning("audit log: cannot remove %s: %s", path, exc)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
