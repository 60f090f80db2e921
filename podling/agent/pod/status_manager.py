"""The single writer of pod status to the API (docs/architecture.md §4).

The agent computes a status after every sync; the manager sends it to ``pods/status`` only
when it differs from what it last sent for that pod, and forgets pods that are gone.

:meth:`StatusManager.previous` is the status a sync carries over (as the kubelet's
generateAPIPodStatus starts from the status manager's cache, not from the informer): what
the agent last sent, plus the conditions other writers own from the pod as received. The
pod object a sync gets may predate the agent's last write; carrying over its stale
conditions would make two syncs in flight write two ``lastTransitionTime`` values in turn,
for ever.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from podling.api import errors
from podling.api.resources import PODS
from podling.api.types import ObjMap
from podling.util import timeline

log = logging.getLogger(__name__)


class StatusManager:
    def __init__(self, client) -> None:
        self._client = client
        self._sent: dict[str, str] = {}
        self._last: dict[str, dict[str, Any]] = {}

    def previous(self, pod: ObjMap, *, own_conditions: tuple[str, ...]) -> dict[str, Any]:
        """The status to carry over for ``pod`` (see the module docstring): the last one
        sent, with the API's conditions whose type is not in ``own_conditions``; the API's
        status when nothing was sent yet (e.g. after an agent restart). A fresh dict."""
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
        """Write ``status`` for ``pod`` (the object as received, ``PodView.raw``: its
        metadata names the target) if it changed; True when written.

        A pod that no longer exists (404) or was replaced (409 on the uid precondition) is
        not an error: the next sync sees the new state."""
        meta = pod["metadata"]
        uid = meta["uid"]
        encoded = json.dumps(status, sort_keys=True)
        if self._sent.get(uid) == encoded:
            return False
        patch = {"metadata": {"uid": uid}, "status": status}
        try:
            await self._client.patch(PODS, meta["name"], patch, namespace=meta.get("namespace"),
                                     patch_type="merge", subresource="status")
        except errors.ApiError as exc:
            if exc.code in (404, 409, 422):
                log.info("status of pod %s/%s not written: %s", meta.get("namespace"),
                         meta["name"], exc.message)
                return False
            raise
        self._sent[uid] = encoded
        self._last[uid] = json.loads(encoded)
        timeline.mark_status(uid, status)
        return True

    def forget(self, uid: str) -> None:
        self._sent.pop(uid, None)
        self._last.pop(uid, None)
