"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import functools
import shutil


def dies_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that the process gets SIGKILL when the thread that spawned it dies:
    through util-linux's ``setpriv --pdeathsig`` (PR_SET_PDEATHSIG survives its exec), which
    keeps the spawn cheap (no ``preexec_fn``: Python can then use vfork instead of copying
    the whole agent with fork, ~16 ms). Without setpriv, ``argv`` as it is."""
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


@functools.cache
def _setpriv() -> str:
    return shutil.which("setpriv") or ""
