"""Which sandbox of each pod has its network attached, and the pod's IPs from it.

The agent attaches a sandbox's network after the runtime started it (CNI ADD from its
network namespace), so a sandbox can be running with no network: the agent was killed
while attaching it. A CRI runtime's RunPodSandbox returns only once the network is up; the
kubelet never sees such a sandbox ready. Here :meth:`PodAttachments.as_observed` does the
same: a pod-network sandbox other than the one recorded as attached counts as not ready,
so the plan replaces it and the kill tears down whatever of its network was made (its IP
is given back). The record is kept in memory and in the pod directory (``pod-ips``), for
an agent restarted before it reported the IPs.
"""

from __future__ import annotations

import asyncio
import dataclasses

from podling.agent.kuberuntime import podfiles
from podling.runtime.interface import NamespaceMode, PodSandboxStatus, SandboxState


class PodAttachments:
    """uid → (the attached sandbox, its IPs), for the pods in ``pods_dir``."""

    def __init__(self, pods_dir: str) -> None:
        self.pods_dir = pods_dir
        self._known: dict[str, tuple[str | None, list[str]]] = {}

    def _of(self, uid: str) -> tuple[str | None, list[str]]:
        """The record, read from the pod directory once (only :meth:`remember` writes it
        afterwards, and it updates this copy too)."""
        if uid not in self._known:
            self._known[uid] = podfiles.load_pod_ips(podfiles.pod_dir(self.pods_dir, uid))
        return self._known[uid]

    async def remember(self, uid: str, sandbox_id: str, ips: tuple[str, ...]) -> None:
        """The network of ``sandbox_id`` is attached, with ``ips``."""
        self._known[uid] = (sandbox_id, list(ips))
        await asyncio.to_thread(podfiles.save_pod_ips, podfiles.pod_dir(self.pods_dir, uid),
                                sandbox_id, ips)

    async def detach(self, uid: str, sandbox_id: str) -> None:
        """The network of ``sandbox_id`` is about to be torn down: from now on no sandbox
        of the pod counts as attached (an agent killed before the sandbox is stopped must
        not keep it); the IPs stay, for the status of a pod that ended."""
        attached, ips = self._of(uid)
        if attached == sandbox_id:
            await self.remember(uid, "", tuple(ips))

    def ips(self, uid: str) -> list[str]:
        """The IPs of the pod's attached sandbox ([] when none is recorded)."""
        return list(self._of(uid)[1])

    def forget(self, uid: str) -> None:
        self._known.pop(uid, None)

    def as_observed(self, uid: str, sandboxes: list[PodSandboxStatus]
                    ) -> list[PodSandboxStatus]:
        """``sandboxes`` with every ready pod-network sandbox that is not the attached one
        shown not ready (see the module doc; after :meth:`detach`, none is). A pod recorded
        by an older podling (IPs and no sandbox) keeps its sandboxes as they are."""
        attached, ips = self._of(uid)
        if attached is None and ips:
            return sandboxes
        return [dataclasses.replace(s, state=SandboxState.NOTREADY)
                if s.state == SandboxState.READY and s.id != attached and
                s.namespace_options.network == NamespaceMode.POD else s
                for s in sandboxes]
