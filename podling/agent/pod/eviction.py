"""Eviction of a pod whose emptyDir outgrows its ``sizeLimit`` (the kubelet eviction
manager's local storage check, for emptyDir volumes).

A disk emptyDir with a positive ``sizeLimit`` is measured by a du-like walk (the blocks of
each file, every inode once, not crossing into other file systems) at most every
``CHECK_SECONDS`` per pod, as often as the kubelet's eviction monitor runs. Usage above the
limit evicts the pod::

    usage ≤ limit ───▶ nothing (the pod is looked at again after CHECK_SECONDS)
    usage > limit ───▶ Warning event Evicted, every container killed with grace 0 (the
                       kubelet's 2 s minimum applies), phase Failed, status.reason
                       Evicted, message 'Usage of EmptyDir volume "<v>" exceeds the
                       limit "<sizeLimit>". '

An evicted pod stays evicted: later checks answer the same message without a new event.
A ``medium: Memory`` emptyDir is a tmpfs of the limit's size (writes past it fail with
ENOSPC), so it never exceeds the limit and is not walked.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Callable, NamedTuple

from podling.agent.kuberuntime.volumes import empty_dir_path
from podling.api.quantity import QuantityError, canonical_quantity, parse_quantity
from podling.api.views import PodView

REASON = "Evicted"
MESSAGE_FORMAT = 'Usage of EmptyDir volume "{name}" exceeds the limit "{limit}". '
CHECK_SECONDS = 10.0


class Limited(NamedTuple):
    """A disk emptyDir with a sizeLimit: its name, the limit in bytes and as written
    canonically (``1Mi``)."""

    name: str
    limit: int
    text: str


class Eviction(NamedTuple):
    """The outcome of a check that evicts: the message, and whether this check found it
    (then the caller records the event)."""

    message: str
    new: bool


def limited_empty_dirs(pod: PodView) -> list[Limited]:
    """The pod's disk emptyDirs with a positive sizeLimit."""
    found = []
    for vol in pod.spec.volumes:
        spec = vol.empty_dir
        if spec is None or spec.size_limit is None or spec.medium == "Memory":
            continue
        try:
            limit = int(parse_quantity(spec.size_limit))
            text = canonical_quantity(spec.size_limit)
        except QuantityError:
            continue
        if limit > 0:
            found.append(Limited(vol.name, limit, text))
    return found


def disk_usage(path: str) -> int:
    """Bytes allocated under ``path`` (``du -s``): st_blocks × 512 of every inode once,
    staying on ``path``'s file system; 0 when it does not exist."""
    try:
        device = os.lstat(path).st_dev
    except OSError:
        return 0
    seen: set[int] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # removed while walking
            if st.st_dev != device:
                if name in dirnames:
                    dirnames.remove(name)
                continue
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


class EmptyDirEviction:
    """The per-pod checks (see the module docstring). Calls for one pod never overlap."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 usage: Callable[[str], int] = disk_usage) -> None:
        self._clock = clock
        self._usage = usage
        self._checked: dict[str, float] = {}
        self._evicted: dict[str, str] = {}

    def requeue_after(self, pod: PodView) -> float | None:
        """When the pod must be synced again to be measured, if it has limits at all."""
        return CHECK_SECONDS if limited_empty_dirs(pod) else None

    async def check(self, pod: PodView, pod_dir: str) -> Eviction | None:
        """The eviction of ``pod``, or None while its emptyDirs fit."""
        uid = pod.metadata.uid
        if uid in self._evicted:
            return Eviction(self._evicted[uid], new=False)
        limited = limited_empty_dirs(pod)
        now = self._clock()
        if not limited or now - self._checked.get(uid, now - CHECK_SECONDS) < CHECK_SECONDS:
            return None
        self._checked[uid] = now
        for item in limited:
            used = await asyncio.to_thread(self._usage, empty_dir_path(pod_dir, item.name))
            if used > item.limit:
                message = MESSAGE_FORMAT.format(name=item.name, limit=item.text)
                self._evicted[uid] = message
                return Eviction(message, new=True)
        return None

    def forget(self, uid: str) -> None:
        self._checked.pop(uid, None)
        self._evicted.pop(uid, None)
