"""Which pods this node has admitted, and the admission of new ones (the kubelet's
``canAdmitPod`` over the pods it already runs).

    decide(pod) ─┬─ refused before ────────────────────────▶ refused (same status, no event)
                 ├─ admitted before, or ran here already ──▶ admitted
                 ├─ the Node cannot be read ───────────────▶ retry later
                 └─ admission.admit(pod, node, admitted) ──▶ admitted | refused (new)

A pod is judged once: a decision sticks until :meth:`Admitter.forget`. Deciding is atomic
among pods synced concurrently (no await between the check and the bookkeeping), so two
pods cannot both take the last CPU. The checks themselves are in :mod:`.admission`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from podling.agent.node import admission
from podling.api.types import Obj
from podling.api.views import NodeView, PodView
from podling.util import timeline
from podling.util.timefmt import epoch_rfc3339

log = logging.getLogger(__name__)
GetNode = Callable[[], Awaitable[Obj | None]]


@dataclass(frozen=True)
class AdmitResult:
    """``admit``, or not: then ``status`` is the Failed pod status to report, ``reason`` and
    ``message`` the Warning event's, and ``new`` says this sync refused it (record the event
    once). ``retry``: the Node could not be read, nothing was decided."""

    admit: bool
    reason: str = ""
    message: str = ""
    status: Obj | None = None
    new: bool = False
    retry: bool = False


class Admitter:
    """The admission bookkeeping of one node. ``get_node`` reads the Node now (None when it
    cannot be read). Called from the pod workers' one event loop."""

    def __init__(self, get_node: GetNode, *, unsafe_sysctls: tuple[str, ...] = ()) -> None:
        self._get_node = get_node
        self._unsafe_sysctls = unsafe_sysctls  # --allowed-unsafe-sysctls
        self._admitted: dict[str, PodView] = {}  # uid → the latest copy of an admitted pod
        self._rejected: dict[str, Obj] = {}  # uid → the status of a refused pod

    async def decide(self, pod: PodView, *, has_sandbox: bool, now: float) -> AdmitResult:
        """Admit ``pod`` (a pod this node already ran counts as admitted), or refuse it
        with the kubelet's status; see the module docstring. ``now`` stamps a refused pod's
        first startTime."""
        uid = pod.metadata.uid
        if pod.status.phase != "Pending":
            self._admitted.setdefault(uid, pod)  # ran here before (a restart): counts at once
        if uid in self._rejected:
            return AdmitResult(False, status=self._rejected[uid])
        if uid not in self._admitted and admission.needs_admission(pod, has_sandbox):
            node = await self._get_node()
            if node is None:
                return AdmitResult(False, retry=True)
            # no await from here on: admitting is atomic among the pods synced concurrently
            refusal = admission.admit(pod, NodeView.from_obj(node), self._admitted.values(),
                                      unsafe_sysctls=self._unsafe_sysctls)
            if refusal is not None:
                return self._refuse(pod, refusal, now)
        self._admitted[uid] = pod
        timeline.mark(uid, "agent.admitted")
        return AdmitResult(True)

    def _refuse(self, pod: PodView, refusal: admission.Rejection, now: float) -> AdmitResult:
        meta = pod.metadata
        log.info("pod %s/%s rejected: %s", meta.namespace or None, meta.name, refusal.message)
        start = epoch_rfc3339(now)
        status = refusal.status(pod.status.start_time, start_time=start)
        self._rejected[meta.uid] = status
        return AdmitResult(False, refusal.reason, refusal.message, status=status, new=True)

    def forget(self, uid: str) -> None:
        """The pod is gone: it no longer counts, and a new pod with its uid is judged anew."""
        self._admitted.pop(uid, None)
        self._rejected.pop(uid, None)
