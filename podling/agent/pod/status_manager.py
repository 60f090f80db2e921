"""The single writer of pod status to the API (docs/architecture.md §4).

The agent computes a status after every sync and hands it to :meth:`StatusManager.set_status`,
which returns at once (kubelet ``SetPodStatus``): the write happens in the pod's writer task.
Writes are coalesced per pod: a status set while an earlier write of the pod is in flight
waits, and only the latest waiting one is written (a newer one replaces it); a status equal
to the one written (or waiting) is not written again. A write that fails for a reason other
than the pod being gone or replaced (404, 409, 422) is retried after RETRY_SECONDS, unless a
newer status replaced it meanwhile. :meth:`forget` drops a pod that is gone.

    set_status ─▶ [latest wanted, per pod] ─▶ writer task: PATCH pods/status ─▶ sent
                         ▲ a newer status replaces it            │ another one waits: again
                         └───────────────────────────────────────┘

:meth:`StatusManager.previous` is the status a sync carries over (as the kubelet's
generateAPIPodStatus starts from the status manager's cache, not from the informer): the last
one set, plus the conditions other writers own from the pod as received. The pod object a
sync gets may predate the agent's last write; carrying over its stale conditions would make
two syncs in flight write two ``lastTransitionTime`` values in turn, for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, NamedTuple

from podling.api import errors
from podling.api.resources import PODS
from podling.api.types import ObjMap
from podling.util import timeline

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0  # after a failed write


class _Wanted(NamedTuple):
    pod: ObjMap
    status: dict[str, Any]
    encoded: str


class StatusManager:
    def __init__(self, client, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self._client = client
        self._retry = retry_seconds
        self._sent: dict[str, str] = {}  # uid → the status written last (encoded)
        self._last: dict[str, dict[str, Any]] = {}  # uid → the status set last
        self._wanted: dict[str, _Wanted] = {}  # uid → the status to write next
        self._writers: dict[str, asyncio.Task[None]] = {}

    def previous(self, pod: ObjMap, *, own_conditions: tuple[str, ...]) -> dict[str, Any]:
        """The status to carry over for ``pod`` (see the module docstring): the last one
        set, with the API's conditions whose type is not in ``own_conditions``; the API's
        status when nothing was set yet (e.g. after an agent restart). A fresh dict."""
        api = dict(pod.get("status") or {})
        last = self._last.get(pod["metadata"]["uid"])
        if last is None:
            return api
        out = json.loads(json.dumps(last))
        others = [c for c in api.get("conditions") or [] if c.get("type") not in own_conditions]
        out["conditions"] = [c for c in out.get("conditions") or []
                             if c.get("type") in own_conditions] + others
        return out

    async def set_status(self, pod: ObjMap, status: dict[str, Any]) -> bool:
        """Have ``status`` written for ``pod`` (the object as received, ``PodView.raw``:
        its metadata names the target) unless it is the status written or waiting already;
        True when it will be written. Returns without waiting for the write."""
        uid = pod["metadata"]["uid"]
        encoded = json.dumps(status, sort_keys=True)
        waiting = self._wanted.get(uid)
        if encoded == (waiting.encoded if waiting is not None else self._sent.get(uid)):
            return False
        self._last[uid] = json.loads(encoded)
        self._wanted[uid] = _Wanted(pod, status, encoded)
        if uid not in self._writers:
            self._writers[uid] = asyncio.create_task(self._write(uid), name=f"status-{uid}")
        return True

    async def _write(self, uid: str) -> None:
        """Write the pod's wanted status until none waits (module docstring)."""
        try:
            while (wanted := self._wanted.pop(uid, None)) is not None:
                if self._sent.get(uid) == wanted.encoded:
                    continue
                if not await self._patch(wanted):
                    self._wanted.setdefault(uid, wanted)  # unless a newer one came
                    await asyncio.sleep(self._retry)
        finally:
            self._writers.pop(uid, None)

    async def _patch(self, wanted: _Wanted) -> bool:
        """One PATCH of pods/status; False when it should be retried."""
        meta = wanted.pod["metadata"]
        patch = {"metadata": {"uid": meta["uid"]}, "status": wanted.status}
        try:
            await self._client.patch(PODS, meta["name"], patch, namespace=meta.get("namespace"),
                                     patch_type="merge", subresource="status")
        except errors.ApiError as exc:
            if exc.code in (404, 409, 422):  # gone or replaced: the next sync sees it
                log.info("status of pod %s/%s not written: %s", meta.get("namespace"),
                         meta["name"], exc.message)
                return True
            log.warning("writing the status of pod %s/%s failed: %s; retrying",
                        meta.get("namespace"), meta["name"], exc.message)
            return False
        except Exception as exc:  # the API server unreachable
            log.warning("writing the status of pod %s/%s failed: %s; retrying",
                        meta.get("namespace"), meta["name"], exc)
            return False
        self._sent[meta["uid"]] = wanted.encoded
        timeline.mark_status(meta["uid"], wanted.status)
        return True

    async def flush(self) -> None:
        """Wait until no write is in flight or waiting (a failing one retries until then)."""
        while self._writers:
            await asyncio.gather(*list(self._writers.values()), return_exceptions=True)

    def forget(self, uid: str) -> None:
        """Drop the pod: its waiting write, if any, is abandoned."""
        writer = self._writers.pop(uid, None)
        if writer is not None:
            writer.cancel()
        self._wanted.pop(uid, None)
        self._sent.pop(uid, None)
        self._last.pop(uid, None)

    async def close(self) -> None:
        """Abandon every write in flight (the next agent computes the status afresh)."""
        writers = list(self._writers.values())
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        self._writers.clear()
