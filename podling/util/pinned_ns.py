"""IPC and UTS namespaces made before any process lives in them, kept by a bind mount of their
nsfs file (what CRI-O's ``pinns`` does), in-process like :mod:`.netns`.

A pod's containers join its sandbox's IPC and UTS namespaces. Pinned, those exist as soon as
the sandbox does, so the containers can be created while the pause process is still being
started (they join the files, not ``/proc/<pause>/ns``), and the pause joins them too.

    pin({"ipc": path, "uts": path})   new namespaces, each bind-mounted at its path (a new file)
    unpin(path)                       unmount and delete one; idempotent

Errors are OSError with the syscall's errno; ``pin`` leaves nothing behind on failure.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Mapping

from .libc import libc, os_error
from .mounts import MS_BIND, mount, unmount
from .netns import in_fresh_thread

CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
FLAGS = {"ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}


def pin(paths: Mapping[str, str]) -> None:
    """New namespaces of the kinds in ``paths`` ("ipc", "uts"), each bind-mounted at its path
    (created; must not exist). On failure nothing is left (no file, no mount)."""
    made: list[str] = []
    try:
        for path in paths.values():
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            with open(path, "x"):
                made.append(path)
        flags = 0
        for kind in paths:
            flags |= FLAGS[kind]
        in_fresh_thread(lambda: _pin_here(flags, paths))
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                unpin(path)
        raise


def unpin(path: str) -> None:
    """Unmount and delete a pinned namespace file. Idempotent."""
    unmount(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _pin_here(flags: int, paths: Mapping[str, str]) -> None:
    if libc().unshare(flags) != 0:
        raise os_error("unshare")
    task = f"/proc/self/task/{threading.get_native_id()}/ns"
    for kind, path in paths.items():
        mount(f"{task}/{kind}", path, None, MS_BIND)
