"""Failpoints: named places where podling can be made to fail on purpose, for fault campaigns
and tests. Off unless the environment names them; then a place asks :func:`fire` what to do.

    PODLING_FAILPOINTS="cni.add=error;registry.blob=corrupt"     # fixed for the process
    PODLING_FAILPOINTS_FILE=/tmp/fp                              # the same syntax, in a file
                                                                 # read again when it changes

A term is ``NAME=[COUNT*]ACTION[(ARG)]``; ``COUNT`` makes it fire that many times, then
never (until the file changes). What each action means is up to the place:

==================  ===========================================================================
place               actions
==================  ===========================================================================
``storage.write``   ``enospc``: the write fails as on a full disk (SQLite) or a full etcd
``runc.create``     ``error``: runc exits 1; ``hang``: runc never answers (its timeout ends it)
``cni.add``         ``error``: the plugin exits 1; ``hang``: it never answers
``registry.blob``   ``drop``: the connection breaks mid-blob; ``corrupt``: a byte changes
==================  ===========================================================================
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

ENV = "PODLING_FAILPOINTS"
FILE_ENV = "PODLING_FAILPOINTS_FILE"
_TERM = re.compile(r"^\s*([\w.-]+)\s*=\s*(?:(\d+)\*)?([a-z]+)(?:\(([^)]*)\))?\s*$")


@dataclass(frozen=True)
class Action:
    """What a failpoint asks for: ``kind`` (``error``, ``hang``, …) and its ``arg``."""

    kind: str
    arg: str = ""


class FailpointSyntaxError(ValueError):
    pass


def parse(text: str) -> dict[str, tuple[Action, int | None]]:
    """``NAME=[COUNT*]ACTION[(ARG)]`` terms separated by ``;`` or newlines → name →
    (action, how many times, None: always)."""
    points: dict[str, tuple[Action, int | None]] = {}
    for term in re.split(r"[;\n]", text):
        if not term.strip() or term.strip().startswith("#"):
            continue
        match = _TERM.match(term)
        if match is None:
            raise FailpointSyntaxError(f"failpoint {term.strip()!r}: expected "
                                       "NAME=[COUNT*]ACTION[(ARG)]")
        name, count, kind, arg = match.groups()
        points[name] = (Action(kind, arg or ""), int(count) if count else None)
    return points


def _parsed(text: str) -> dict[str, tuple[Action, int | None]]:
    """:func:`parse`, but a bad term is logged and ignores the whole text."""
    try:
        return parse(text) if text else {}
    except FailpointSyntaxError as exc:
        log.warning("%s; no failpoints from it", exc)
        return {}


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: dict[str, tuple[Action, int | None]] = {}
        self._file_stamp: tuple[float, int] | None = None
        self.reload()

    def reload(self) -> None:
        """Read the environment (and the file) again; counts start over."""
        self._env = os.environ.get(ENV, "")
        self._file = os.environ.get(FILE_ENV, "")
        self._file_stamp = None
        self._points = _parsed(self._env)
        self._refresh()

    def _refresh(self) -> None:
        if not self._file:
            return
        try:
            st = os.stat(self._file)
            stamp = (st.st_mtime, st.st_size)
        except OSError:
            stamp = (0.0, -1)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        text = ""
        if stamp[1] >= 0:
            try:
                with open(self._file) as f:
                    text = f.read()
            except OSError:
                text = ""
        self._points = {**_parsed(self._env), **_parsed(text)}

    def fire(self, name: str) -> Action | None:
        if not self._env and not self._file:
            return None
        with self._lock:
            self._refresh()
            found = self._points.get(name)
            if found is None:
                return None
            action, left = found
            if left is not None:
                if left <= 0:
                    return None
                self._points[name] = (action, left - 1)
            return action


_registry = _Registry()


def fire(name: str) -> Action | None:
    """The action the failpoint ``name`` asks for now, or None (the usual case: at once,
    when no failpoint is configured). Thread-safe."""
    return _registry.fire(name)


def reload() -> None:
    """Read :data:`ENV` and :data:`FILE_ENV` again (tests that change the environment)."""
    _registry.reload()


def stand_in(directory: str, name: str, action: Action, *, stdout: str = "",
             stderr: str = "", only_for: str = "", otherwise: str = "") -> str:
    """The path of a program to run instead of a real one (runc, a CNI plugin) when a
    failpoint fires: for ``hang`` one that never answers; otherwise one that prints
    ``stdout`` and ``stderr`` and exits 1. With ``only_for``, it does so only when one of
    its arguments is that word, and runs ``otherwise`` (the real program) for the rest.
    Written into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"failpoint-{name}-{action.kind}")
    script = ""
    if only_for:
        script = (f'case " $* " in *" {only_for} "*) ;; '
                  f'*) exec {_shell_quoted(otherwise)} "$@" ;; esac\n')
    if action.kind == "hang":
        script += "while :; do sleep 1; done\n"  # the script stays, so it can be found
    else:
        script += "".join(f"printf '%s\\n' {_shell_quoted(text)}{redirect}\n"
                          for text, redirect in ((stdout, ""), (stderr, " >&2")) if text)
        script += "exit 1\n"
    with open(path + ".tmp", "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path + ".tmp", 0o755)
    os.replace(path + ".tmp", path)
    return path


def _shell_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
